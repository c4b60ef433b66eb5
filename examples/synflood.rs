//! A SYN flood against a SYN-proxied NAT service, simulated: 1,000 established flows, then
//! spoofed SYNs at 1 M/s (simulated time) with a legitimate client every 10,000 of them, and
//! the figures issue 16 asks for. `cargo run --release --example synflood -- [SPOOFED_SYNS]`
//! (10,000,000 by default).

#[path = "common/synflood.rs"]
mod synflood;

fn main() {
    let spoofed = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000u64);
    let started = std::time::Instant::now();
    let r = synflood::run(1_000, spoofed, 10_000);
    let wall = started.elapsed();
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    println!("spoofed SYNs          {} ({} cookie SYN-ACKs)", r.spoofed, r.cookies_sent);
    println!(
        "legitimate clients    {}/{} connected ({:.2} %)",
        r.legit_ok,
        r.legit_tried,
        pct(r.legit_ok, r.legit_tried)
    );
    println!(
        "established flows     {}/{} survived ({:.2} %)",
        r.survived,
        r.established,
        pct(r.survived, r.established)
    );
    println!("table entries         {} ({} not made by a legitimate client)", r.entries, r.spoofed_entries);
    println!("simulated             {:.1} s; wall {:.1} s", r.spoofed as f64 / 1e6, wall.as_secs_f64());
}
