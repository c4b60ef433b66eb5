//! A SYN flood against a director, in simulated time, with the figures the kernel's flood
//! defences are judged by.
//!
//! ```text
//! cargo run --release --example flood -- dr            # or nat; --defense off for the kernel's defaults
//! cargo run --release --example flood -- dr --syns 1000000 --seed 7
//! ```
//!
//! 1,000 flows are established first (NAT: with the server's SYN-ACK through the director) and
//! each sends a data segment every second throughout. Then spoofed SYNs from random addresses
//! and ports arrive at 1 M/s of simulated time (10 million by default); every 10,000 of them, a
//! legitimate client opens a connection: its SYN, the server's SYN-ACK half a millisecond later
//! (NAT only: in DR it bypasses the director), its ACK a millisecond after the SYN and a request
//! 10 ms after that. A legitimate connection succeeds when all of its segments are forwarded to
//! one real server; an established flow survives when every one of its segments is. The
//! director ticks every simulated millisecond, as an application driven by `next_deadline`
//! under load would. The run is deterministic: the same seed gives the same figures.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant as Wall;

use lvs::core::addr::Af;
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::testkit::Tcp;
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::{Defense, DefenseMode, DestId, DirectorConfig, Instant, PortConfig, Reason};
use lvs::{Director, Verdict};

const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 100);
const ESTABLISHED: u32 = 1_000;
const LEGIT_EVERY: u64 = 10_000;
/// Nanoseconds between spoofed SYNs: 1 M/s.
const SYN_GAP_NS: u64 = 1_000;
const MS: u64 = 1_000_000;
const START_NS: u64 = 2_000_000_000;

struct Options {
    nat: bool,
    defense: bool,
    syns: u64,
    seed: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options { nat: false, defense: true, syns: 10_000_000, seed: 0x5eed };
    let mut args = std::env::args().skip(1);
    let mut method = None;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "dr" | "nat" => method = Some(a),
            "--defense" => o.defense = value("--defense")? != "off",
            "--syns" => o.syns = value("--syns")?.parse().map_err(|e| format!("--syns: {e}"))?,
            "--seed" => o.seed = value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    o.nat = method.ok_or("usage: flood dr|nat [--defense off] [--syns N] [--seed S]")? == "nat";
    Ok(o)
}

/// xorshift64*: the spoofed addresses and ports, deterministic from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn server(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11 + i))
}

fn director(o: &Options) -> Director {
    let port = PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1])).with_addr("192.0.2.1".parse().unwrap());
    let off = Defense {
        drop_entry: DefenseMode::Off,
        drop_packet: DefenseMode::Off,
        secure_tcp: DefenseMode::Off,
        ..Defense::default()
    };
    let defense = if o.defense { Defense::default() } else { off };
    let cfg = DirectorConfig { ports: vec![port; 2], rng_seed: o.seed, defense, ..DirectorConfig::default() };
    let mut d = lvs::director(cfg);
    d.set_gateway(Af::V4, Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 });
    let flag = if o.nat { "-m" } else { "-g" };
    let mut rules = format!("-A -t {VIP}:80 -s wlc\n");
    for i in 0..4 {
        d.set_neighbour(server(i), Neighbour { mac: MacAddr([2, 0, 0, 0, 1, i]), port: 1 });
        rules.push_str(&format!("-a -t {VIP}:80 -r {}:80 {flag} -w 1\n", server(i)));
    }
    lvs::core::config::restore(&mut d, &rules).unwrap();
    d
}

/// A client's segment to the VIP, or a server's reply to the client.
fn segment(client: (IpAddr, u16), from_server: Option<IpAddr>, f: u8, payload: &[u8]) -> Vec<u8> {
    let vip = (IpAddr::V4(VIP), 80);
    let mut t = match from_server {
        Some(rs) => Tcp::new((rs, 80), client, f),
        None => Tcp::new(client, vip, f),
    };
    t.payload = payload;
    t.build()
}

/// The IPv4 header checksum of a frame without VLAN tags, recomputed after a rewrite.
fn fix_ip_checksum(f: &mut [u8]) {
    f[24] = 0;
    f[25] = 0;
    let mut sum: u32 = f[14..34].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Legitimate client `k`: 198.51.100.0/24, 16 K ports per address.
fn legit_client(k: usize) -> (IpAddr, u16) {
    (IpAddr::V4(Ipv4Addr::from(0xc633_6400 + (k as u32 >> 14))), 1024 + (k as u16 & 0x3fff))
}

/// One step of a legitimate connection, due at a simulated time.
struct Step {
    at: u64,
    conn: usize,
    /// The server's SYN-ACK (NAT), which goes to the client (no server), not a client segment.
    reply: bool,
    frame: Vec<u8>,
}

#[derive(Default)]
struct Figures {
    legit: usize,
    legit_ok: usize,
    spoofed_entries: u64,
    survived: usize,
    peak_bytes: usize,
    peak_entries: usize,
}

fn transmitted(v: Verdict) -> Option<Option<DestId>> {
    match v {
        Verdict::Transmit { dest, .. } => Some(dest),
        _ => None,
    }
}

fn run(o: &Options) -> (Figures, Director) {
    let mut d = director(o);
    let mut fig = Figures::default();
    let mut frame = Frame::new(DEFAULT_HEADROOM, &[]);
    let mut send = |d: &mut Director, now: u64, bytes: &[u8]| {
        frame.load(DEFAULT_HEADROOM, bytes);
        d.process(Instant::from_nanos(now), &mut frame)
    };
    // The established flows: 10.0.x.y:40000, handshake at 1 s.
    let est: Vec<(IpAddr, u16)> =
        (0..ESTABLISHED).map(|i| (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i + 1)), 40_000)).collect();
    let mut est_dest = vec![None; est.len()];
    let mut est_ok = vec![true; est.len()];
    for (i, c) in est.iter().enumerate() {
        let syn = transmitted(send(&mut d, 1_000_000_000, &segment(*c, None, flags::SYN, &[])));
        est_dest[i] = syn.flatten();
        if let (true, Some(rs)) = (o.nat, est_dest[i].and_then(|x| d.dest(x)).map(|v| v.addr())) {
            let _ = send(&mut d, 1_000_500_000, &segment(*c, Some(rs), flags::SYN | flags::ACK, &[]));
        }
        let ack = transmitted(send(&mut d, 1_001_000_000, &segment(*c, None, flags::ACK, &[])));
        est_ok[i] = syn.is_some() && ack == syn;
    }
    let est_data: Vec<Vec<u8>> = est.iter().map(|c| segment(*c, None, flags::ACK, &[0x55; 64])).collect();

    // The flood.
    let mut rng = Rng(o.seed | 1);
    let mut spoof = segment((IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)), 1), None, flags::SYN, &[]);
    let mut steps: VecDeque<Step> = VecDeque::new();
    let mut legit_dest: Vec<Option<DestId>> = Vec::new();
    let mut legit_ok: Vec<bool> = Vec::new();
    let mut next_tick = START_NS;
    let mut next_data = START_NS;
    let end = START_NS + o.syns * SYN_GAP_NS;
    let mut n = 0u64;
    let mut now = START_NS;
    while now < end + 100 * MS {
        if now >= next_tick {
            d.tick(Instant::from_nanos(now));
            let t = d.table_stats();
            fig.peak_bytes = fig.peak_bytes.max(t.bytes);
            fig.peak_entries = fig.peak_entries.max(t.entries);
            next_tick += MS;
        }
        if now >= next_data {
            for (i, b) in est_data.iter().enumerate() {
                let v = transmitted(send(&mut d, now, b));
                est_ok[i] &= v.is_some() && v == Some(est_dest[i]);
            }
            next_data += 1_000 * MS;
        }
        while steps.front().is_some_and(|s| s.at <= now) {
            let s = steps.pop_front().unwrap();
            let v = transmitted(send(&mut d, now, &s.frame));
            match (v, legit_dest[s.conn]) {
                (Some(None), Some(_)) if s.reply => {}
                (Some(Some(dest)), None) if legit_ok[s.conn] => {
                    legit_dest[s.conn] = Some(dest);
                    // NAT: the server's SYN-ACK comes back through the director.
                    if let (true, Some(rs)) = (o.nat, d.dest(dest).map(|v| v.addr())) {
                        let c = legit_client(s.conn);
                        let at = now + MS / 2;
                        let frame = segment(c, Some(rs), flags::SYN | flags::ACK, &[]);
                        let pos = steps.partition_point(|x| x.at <= at);
                        steps.insert(pos, Step { at, conn: s.conn, reply: true, frame });
                    }
                }
                (Some(Some(dest)), Some(known)) if dest == known => {}
                _ => legit_ok[s.conn] = false,
            }
        }
        if n < o.syns {
            if n % LEGIT_EVERY == LEGIT_EVERY / 2 {
                let k = legit_dest.len();
                let c = legit_client(k);
                legit_dest.push(None);
                legit_ok.push(true);
                steps.push_back(Step { at: now, conn: k, reply: false, frame: segment(c, None, flags::SYN, &[]) });
                steps.push_back(Step { at: now + MS, conn: k, reply: false, frame: segment(c, None, flags::ACK, &[]) });
                let req = segment(c, None, flags::ACK, b"GET / HTTP/1.1\r\n\r\n");
                steps.push_back(Step { at: now + 11 * MS, conn: k, reply: false, frame: req });
            }
            // Spoofed: any address outside 10/8 and 198.51.100/24, any port above 1023.
            let r = rng.next();
            let mut a = (r >> 32) as u32;
            if a >> 24 == 10 || a >> 8 == 0xc6_3364 {
                a ^= 0x8000_0000;
            }
            spoof[26..30].copy_from_slice(&a.to_be_bytes());
            spoof[34..36].copy_from_slice(&(1024 + (r as u16 % 64_512)).to_be_bytes());
            fix_ip_checksum(&mut spoof);
            if transmitted(send(&mut d, now, &spoof)).is_some() {
                fig.spoofed_entries += 1;
            }
            n += 1;
            now += SYN_GAP_NS;
        } else {
            now += MS;
        }
    }
    // Steps a run cut short still count against their connections.
    for s in steps {
        legit_ok[s.conn] = false;
    }
    fig.legit = legit_ok.len();
    fig.legit_ok = legit_ok.iter().zip(&legit_dest).filter(|(ok, d)| **ok && d.is_some()).count();
    fig.survived = est_ok.iter().filter(|ok| **ok).count();
    (fig, d)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let wall = Wall::now();
    let (f, d) = run(&o);
    let method = if o.nat { "NAT" } else { "DR" };
    let defense = if o.defense { "defaults (automatic)" } else { "off (the kernel's defaults)" };
    println!("{method}, defences {defense}: {} spoofed SYNs at 1 M/s, seed {}", o.syns, o.seed);
    println!(
        "legitimate connections that succeed: {} of {} ({:.1} %)",
        f.legit_ok,
        f.legit,
        100.0 * f.legit_ok as f64 / f.legit.max(1) as f64
    );
    println!("established flows surviving:         {} of {ESTABLISHED}", f.survived);
    println!("entries created by spoofed SYNs:     {}", f.spoofed_entries);
    println!(
        "peak table:                          {} entries, {:.1} MiB",
        f.peak_entries,
        f.peak_bytes as f64 / (1 << 20) as f64
    );
    let s = d.defense();
    println!(
        "defences at the end:                 drop_entry {:?}, drop_packet {:?} (rate {}), secure_tcp {:?}",
        s.drop_entry, s.drop_packet, s.drop_rate, s.secure_tcp
    );
    println!("entries dropped by the walk: {}, replaced in a full table: {}", s.entries_dropped, s.entries_replaced);
    for r in Reason::ALL {
        let n = d.drops()[r.index()];
        if n > 0 {
            println!("drops {:<18} {n}", r.as_str());
        }
    }
    println!("(simulated {:.1} s in {:.1} s)", (o.syns * SYN_GAP_NS) as f64 / 1e9, wall.elapsed().as_secs_f64());
}
