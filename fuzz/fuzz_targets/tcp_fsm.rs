//! Any sequence of client and server segments on one NAT and one DR connection keeps the
//! ActiveConn/InActConn counters equal to the live connections, whatever the flags.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_core::addr::Af;
use lvs_core::neigh::{MacAddr, Neighbour};
use lvs_core::testkit::Tcp;
use lvs_core::{DirectorConfig, Instant, PortConfig};

fuzz_target!(|data: &[u8]| {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1]));
    let mut d = lvs::director(DirectorConfig { ports: vec![port; 2], ..DirectorConfig::default() });
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    d.set_neighbour("192.0.2.11".parse().unwrap(), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 1 });
    lvs_core::config::restore(&mut d, "-A -t 203.0.113.100:80 -s rr\n-a -t 203.0.113.100:80 -r 192.0.2.11:80 -m -w 1\n-A -t 203.0.113.100:81 -s rr\n-a -t 203.0.113.100:81 -r 192.0.2.11:81 -g -w 1\n").unwrap();
    let vip = "203.0.113.100".parse().unwrap();
    let client = "198.51.100.2".parse().unwrap();
    let rs = "192.0.2.11".parse().unwrap();
    let mut now = 1u64;
    for b in data {
        let flags = b & 0x1f;
        let port = 80 + u16::from(b >> 7);
        let t = if b & 0x40 != 0 {
            let mut t = Tcp::new((rs, port), (client, 5000), flags);
            t.src_mac = [2, 0, 0, 0, 1, 1];
            t
        } else {
            Tcp::new((client, 5000), (vip, port), flags)
        };
        let mut f = t.frame();
        let _ = d.process(Instant::from_secs(now), &mut f);
        now += u64::from(b & 0x20 != 0) * 40;
        d.tick(Instant::from_secs(now));
        let live = d.connections(Instant::from_secs(now)).len() as u32;
        let counted: u32 =
            d.services().flat_map(|s| s.dests.dests().map(|x| x.active() + x.inactive()).collect::<Vec<_>>()).sum();
        assert_eq!(live, counted);
    }
});
