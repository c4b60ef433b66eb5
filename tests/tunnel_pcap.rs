//! GUE and GRE tunnels read by another program: what the director sends to GRE and GUE servers
//! (IPv4 and IPv6 outer headers, with and without checksums) is written to a pcap file and
//! decoded by `tcpdump -vv`, which checks the outer and inner IPv4 header checksums, the
//! UDP checksum of GUE and the inner TCP checksum. tcpdump 4.99 has a GRE dissector, so it
//! reads the client's packet inside GRE; it has none for GUE (no `-T gue`, no well-known
//! port), so for GUE it checks the outer UDP datagram only — the GUE bytes themselves are
//! checked against the kernel's `ipvs_gue_encap` in `lvs-core`'s director tests.
//!
//! This machine's kernel has no fou, ipip or ip_gre modules, so no kernel decapsulates these
//! packets here.

#[path = "../examples/common/root.rs"]
mod root;

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::testkit::{Tcp, DIRECTOR_MAC};
use lvs::core::{Af, FwdMethod, PortConfig, RealServer, ServiceConfig, ServiceKey, TunConfig, TunCsum};
use lvs::{DirectorConfig, Instant, Verdict};
use pcap_file::pcap::{PcapPacket, PcapWriter};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What the director sends for a SYN from `client` to `vip`:80 with one server `rip` behind
/// `tun`.
fn tunnelled(vip: &str, client: &str, rip: &str, tun: TunConfig) -> Vec<u8> {
    let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(ip("192.0.2.1")).with_addr(ip("2001:db8:2::1"));
    let mut d = lvs::director(DirectorConfig::default().port(port));
    let key = ServiceKey::tcp(ip(vip), 80);
    d.add_service(ServiceConfig::new(key, "rr")).unwrap();
    d.add_dest(&key, RealServer::new(ip(rip), 80, FwdMethod::Tunnel, 1).with_tunnel(tun)).unwrap();
    d.set_neighbour(ip(rip), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    let mut t = Tcp::new((ip(client), 40000), (ip(vip), 80), 0x02);
    t.payload = payload;
    let mut f = t.frame();
    assert!(matches!(d.process(Instant::from_secs(1), &mut f), Verdict::Transmit { .. }));
    f.data().to_vec()
}

#[test]
fn tcpdump_decodes_gre_and_checks_gue_checksums() {
    if !root::can_run(false, &["tcpdump"]) {
        return;
    }
    let frames = [
        tunnelled("203.0.113.100", "198.51.100.2", "192.0.2.11", TunConfig::gre(TunCsum::NoCsum)),
        tunnelled("203.0.113.100", "198.51.100.2", "192.0.2.11", TunConfig::gre(TunCsum::Csum)),
        tunnelled("2001:db8:113::100", "2001:db8:51::2", "2001:db8:2::11", TunConfig::gre(TunCsum::Csum)),
        tunnelled("203.0.113.100", "198.51.100.2", "192.0.2.11", TunConfig::gue(6080, TunCsum::Csum)),
        tunnelled("203.0.113.100", "198.51.100.2", "192.0.2.11", TunConfig::gue(6080, TunCsum::NoCsum)),
        tunnelled("203.0.113.100", "198.51.100.2", "2001:db8:2::11", TunConfig::gue(6080, TunCsum::RemCsum)),
    ];
    let path = std::env::temp_dir().join(format!("lvs-tunnel-pcap-{}.pcap", std::process::id()));
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_secs(i as u64), f.len() as u32, f)).unwrap();
    }
    drop(w);
    let out = Command::new("tcpdump").args(["-nn", "-vv", "-r"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "tcpdump: {}", String::from_utf8_lossy(&out.stderr));
    // One record per frame, each starting with its timestamp (the frame's index in seconds).
    for i in 0..frames.len() {
        assert!(text.contains(&format!("\n00:00:0{i}.000000 IP")) || i == 0, "record {i}:\n{text}");
    }
    assert!(!text.contains("bad"), "a checksum tcpdump found wrong:\n{text}");
    assert!(!text.contains("[|"), "a truncated header:\n{text}");
    let gre = text.matches("GREv0").count();
    assert_eq!(gre, 3, "three GRE packets:\n{text}");
    assert_eq!(text.matches("checksum present").count(), 2, "two with the C bit:\n{text}");
    // The client's segment inside GRE, its TCP checksum verified (tcpdump prints GRE's own
    // checksum without checking it; lvs-core's tests sum it).
    assert_eq!(text.matches("198.51.100.2.40000 > 203.0.113.100.80: Flags [S]").count(), 2, "{text}");
    assert_eq!(text.matches("2001:db8:51::2.40000 > 2001:db8:113::100.80: Flags [S]").count(), 1, "{text}");
    assert_eq!(text.matches("(correct)").count(), 3, "the inner TCP checksums of the GRE packets:\n{text}");
    // GUE: UDP to port 6080, checksum verified when sent, absent with nocsum.
    assert_eq!(text.matches(".6080: [udp sum ok] UDP").count(), 2, "{text}");
    assert_eq!(text.matches(".6080: [no cksum] UDP").count(), 1, "{text}");
}
