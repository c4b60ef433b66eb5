//! Synthetic traffic shared by the pipeline benchmark and the rate tool: a director with four
//! real servers behind `203.0.113.100:80` (or `[2001:db8::100]:80`) and any number of
//! established flows, and the data segments of those flows.

use std::net::IpAddr;

use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::Tcp;
use lvs::core::{DirectorConfig, Instant, PortConfig};

/// The virtual service's address in family `af`.
pub(crate) fn vip(af: Af) -> IpAddr {
    match af {
        Af::V4 => "203.0.113.100".parse().unwrap(),
        Af::V6 => "2001:db8::100".parse().unwrap(),
    }
}

/// The client end of flow `i` in family `af` (16 K ports per address).
pub(crate) fn client(af: Af, i: u32) -> (IpAddr, u16) {
    let host = i >> 14;
    let addr = match af {
        Af::V4 => IpAddr::from((0x0a00_0000u32 + host).to_be_bytes()),
        Af::V6 => IpAddr::from((0x2001_0db8_00ff_0000_0000_0000_0000_0000u128 + u128::from(host)).to_be_bytes()),
    };
    (addr, 1024 + (i & 0x3fff) as u16)
}

/// A data segment of flow `i` with a 64-byte payload.
pub(crate) fn data(af: Af, i: u32) -> Vec<u8> {
    let mut t = Tcp::new(client(af, i), (vip(af), 80), flags::ACK);
    t.payload = &[0x55; 64];
    t.build()
}

/// A director forwarding by `method` (`dr`, `nat`, `tun`; `gue`, `gre`: tunnels with checksums) to servers behind port `out`, with
/// the given flows of family `af` established (SYN then ACK) and a day-long ESTABLISHED timeout.
pub(crate) fn director(af: Af, method: &str, flows: impl Iterator<Item = u32>, out: u16) -> lvs::Director {
    // Two ports (clients on 0, servers on `out`), one MAC and address of each family for both.
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]))
        .with_addr("192.0.2.1".parse().unwrap())
        .with_addr("2001:db8:1::1".parse().unwrap());
    let mut d = lvs::director(DirectorConfig { ports: vec![port; 2], max_conns: 4 << 20, ..DirectorConfig::default() });
    d.set_gateway(af, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    let flag = match method {
        "dr" => "-g",
        "nat" => "-m",
        "gue" => "-i --tun-type gue --tun-port 6080 --tun-csum",
        "gre" => "-i --tun-type gre --tun-csum",
        _ => "-i",
    };
    let service = match vip(af) {
        IpAddr::V4(a) => format!("{a}:80"),
        IpAddr::V6(a) => format!("[{a}]:80"),
    };
    let mut rules = format!("-A -t {service} -s wlc\n");
    for i in 1..=4u8 {
        let (rs, text): (IpAddr, String) = match af {
            Af::V4 => (format!("192.0.2.1{i}").parse().unwrap(), format!("192.0.2.1{i}:80")),
            Af::V6 => (format!("2001:db8:1::1{i}").parse().unwrap(), format!("[2001:db8:1::1{i}]:80")),
        };
        d.set_neighbour(rs, Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: out });
        rules.push_str(&format!("-a -t {service} -r {text} {flag} -w 1\n"));
    }
    lvs::core::config::restore(&mut d, &rules).unwrap();
    d.set_timeouts(86_400, 0, 0);
    let flows: Vec<u32> = flows.collect();
    d.reserve(flows.len() + (1 << 16));
    for i in flows {
        for f in [flags::SYN, flags::ACK] {
            let _ = d.process(Instant::from_secs(1), &mut Tcp::new(client(af, i), (vip(af), 80), f).frame());
        }
    }
    d
}
