//! Aggregate forwarding of directors behind ECMP against one (root): the ECMP lab's topology
//! (`common/ecmp.rs`), a UDP service on the VIP scheduled by `mh` with `mh-port` to four DR
//! servers, and a generator in the client namespace sending 64-byte datagrams from 256 source
//! ports as fast as it can for a few seconds, first through one director, then through three.
//! Prints, per director, the datagrams it forwarded and its process's CPU time per datagram.
//!
//! ```text
//! sudo cargo run --release --example ecmp_bench -- [--secs N]
//! ```
//!
//! The directors are the built `examples/director` of the same profile. On a small machine the
//! generator, the router's kernel and the directors share the cores, so the aggregate says
//! more about the machine than the directors; the CPU per datagram is the figure that should
//! stay the same per director.

#[path = "common/built.rs"]
mod built;
#[path = "common/ecmp.rs"]
#[allow(dead_code)] // the lab's leave and kill steps
mod ecmp;
#[path = "common/netns.rs"]
#[allow(dead_code)]
mod netns;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecmp::{server_ip, Bgp, Director, Lab, SERVERS, VIP};

/// Source ports the generator sends from: flows for the router's hash and `mh-port`.
const FLOWS: u16 = 256;
/// The service's port (discard: the servers have no listener and drop the datagrams).
const PORT: u16 = 9;

fn rules() -> String {
    let mut r = format!("-A -u {VIP}:{PORT} -s mh -b mh-port\n");
    for s in 0..SERVERS {
        r += &format!("-a -u {VIP}:{PORT} -r {}:{PORT} -g -w 1\n", server_ip(s));
    }
    r
}

/// Sends from the client namespace for `secs`: the datagrams sent.
fn generate(lab: &Lab, secs: Duration) -> u64 {
    let ns = lab.client.name().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sender = std::thread::spawn(move || {
        lvs::dataplane::netns::enter(&ns).expect("the client namespace");
        let socks: Vec<UdpSocket> =
            (0..FLOWS).map(|p| UdpSocket::bind(("0.0.0.0", 20_000 + p)).expect("a client port")).collect();
        let to = SocketAddr::from((VIP, PORT));
        let (payload, mut sent) = ([0u8; 64], 0u64);
        while !flag.load(Ordering::Relaxed) {
            for s in &socks {
                sent += u64::from(s.send_to(&payload, to).is_ok());
            }
        }
        sent
    });
    std::thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("the generator")
}

fn run(count: usize, secs: Duration) -> Result<(), String> {
    let lab = Lab::build(&format!("bench{count}"), count);
    let directors: Vec<Director> = (0..count).map(|i| Director::start(&lab, i, &rules(), &[], Bgp::None)).collect();
    lab.route(&(0..count).collect::<Vec<_>>());
    let before: Vec<_> = directors.iter().map(|d| (d.stats().1, d.cpu())).collect();
    let start = Instant::now();
    let sent = generate(&lab, secs);
    let took = start.elapsed().as_secs_f64();
    let mut total = 0;
    println!("{count} director(s), {secs:?}: {sent} datagrams sent ({:.0} /s)", sent as f64 / took);
    for (i, (d, (pkts0, cpu0))) in directors.iter().zip(before).enumerate() {
        let (pkts, cpu) = (d.stats().1 - pkts0, d.cpu() - cpu0);
        total += pkts;
        let per = if pkts == 0 { 0.0 } else { cpu.as_nanos() as f64 / pkts as f64 };
        println!(
            "  D{}: {pkts} forwarded ({:.0} /s), CPU {:.2} s, {per:.0} ns of CPU per datagram",
            i + 1,
            pkts as f64 / took,
            cpu.as_secs_f64()
        );
    }
    println!("  aggregate: {total} forwarded ({:.0} /s)", total as f64 / took);
    Ok(())
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut secs = Duration::from_secs(5);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => {
                let v = args.next().ok_or("--secs needs a value")?;
                secs = Duration::from_secs(v.parse().map_err(|_| format!("--secs {v:?}: whole seconds"))?);
            }
            _ => return Err(format!("unknown option {a:?}; usage: ecmp_bench [--secs N]")),
        }
    }
    for count in [1, 3] {
        run(count, secs)?;
    }
    Ok(())
}
