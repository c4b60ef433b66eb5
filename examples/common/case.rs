//! Runs a recorded case — a folder in the format of the kernel traces (`topology.txt`,
//! `steps.txt`, `input-N.pcap`, `expected-K/`) — through a [`Director`] configured the same way,
//! and produces, for every snapshot K, the same files the case has in `expected-K/` plus what the
//! director transmitted during each replay. Diffing the two folders shows where the library and
//! the kernel differ.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use lvs::core::addr::{Af, Proto, ServiceKey};
use lvs::core::config::{list, parse_command, ListOptions};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::tcp::flags;
use lvs::core::wire::{self, ipproto, Frame, PacketMeta, DEFAULT_HEADROOM};
use lvs::core::{Director, DirectorConfig, Instant, PortConfig, Verdict};
use lvs::dataplane::pcap::{read_capture, CaptureError, CaptureWriter, Captured};

/// Why a case could not be run.
#[derive(Debug)]
pub(crate) enum CaseError {
    /// A file of the case is missing or unreadable.
    Io(PathBuf, std::io::Error),
    /// A capture could not be read.
    Capture(PathBuf, CaptureError),
    /// A line of `topology.txt` or `steps.txt` could not be understood.
    Bad(String),
}

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaseError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CaseError::Capture(p, e) => write!(f, "{}: {e}", p.display()),
            CaseError::Bad(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CaseError {}

fn read(path: &Path) -> Result<String, CaseError> {
    fs::read_to_string(path).map_err(|e| CaseError::Io(path.to_path_buf(), e))
}

/// `topology.txt`: key=value lines, keys may repeat.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    entries: Vec<(String, String)>,
}

impl Topology {
    /// Parses the file's text.
    pub(crate) fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Topology { entries }
    }

    /// The first value of a key.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn ip(&self, key: &str) -> Result<IpAddr, CaseError> {
        let v = self.get(key).ok_or_else(|| CaseError::Bad(format!("topology lacks {key}")))?;
        let v = v.split('/').next().unwrap_or(v);
        v.parse().map_err(|_| CaseError::Bad(format!("topology {key}: bad address '{v}'")))
    }

    fn mac(&self, key: &str) -> Result<MacAddr, CaseError> {
        let v = self.get(key).ok_or_else(|| CaseError::Bad(format!("topology lacks {key}")))?;
        v.parse().map_err(|_| CaseError::Bad(format!("topology {key}: bad MAC '{v}'")))
    }

    /// Real servers `rsI_ip` / `rsI_mac`, in order.
    fn real_servers(&self) -> Result<Vec<(IpAddr, MacAddr)>, CaseError> {
        let mut out = Vec::new();
        for i in 1.. {
            if self.get(&format!("rs{i}_ip")).is_none() {
                break;
            }
            out.push((self.ip(&format!("rs{i}_ip"))?, self.mac(&format!("rs{i}_mac"))?));
        }
        Ok(out)
    }
}

/// A classifier from a `fwmark_match` line such as `tcp to 203.0.113.0/24 dport 80,443`.
fn classifier(mark: u32, spec: &str) -> Result<lvs::core::director::Classifier, CaseError> {
    let bad = || CaseError::Bad(format!("fwmark_match: cannot read '{spec}'"));
    let w: Vec<&str> = spec.split_whitespace().collect();
    let [proto, "to", net, "dport", ports] = w.as_slice() else { return Err(bad()) };
    let proto = match *proto {
        "tcp" => ipproto::TCP,
        "udp" => ipproto::UDP,
        _ => return Err(bad()),
    };
    let (addr, len) = match net.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().map_err(|_| bad())?, l.parse::<u8>().map_err(|_| bad())?),
        None => {
            let a = net.parse::<IpAddr>().map_err(|_| bad())?;
            (a, Af::of(&a).max_prefix())
        }
    };
    let ports: Vec<u16> = ports.split(',').map(|p| p.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    Ok(Box::new(move |m: &PacketMeta| {
        let hit = m.proto == proto
            && lvs::core::addr::mask_addr(&m.dst, len) == lvs::core::addr::mask_addr(&addr, len)
            && ports.contains(&m.dport);
        if hit {
            mark
        } else {
            0
        }
    }))
}

/// A director configured as the case's topology says.
///
/// # Errors
/// [`CaseError::Bad`] for a topology that lacks what a director needs.
pub(crate) fn director_for(topo: &Topology) -> Result<Director, CaseError> {
    let port = PortConfig::new(topo.mac("director_mac")?).with_addr(topo.ip("director_ip")?);
    let mut d = lvs::director(DirectorConfig::default().port(port));
    let gw = topo.ip("gateway_ip")?;
    let gw_n = Neighbour { mac: topo.mac("gateway_mac")?, port: 0 };
    d.set_neighbour(gw, gw_n);
    d.set_gateway(Af::of(&gw), gw_n);
    for (ip, mac) in topo.real_servers()? {
        d.set_neighbour(ip, Neighbour { mac, port: 0 });
    }
    if let (Some(mark), Some(spec)) = (topo.get("fwmark"), topo.get("fwmark_match")) {
        let mark = mark.parse().map_err(|_| CaseError::Bad(format!("bad fwmark '{mark}'")))?;
        d.set_classifier(classifier(mark, spec)?);
    }
    Ok(d)
}

/// What a run produced.
#[derive(Debug, Default)]
pub(crate) struct CaseRun {
    /// For each snapshot K (in order): `(K, [(file name, contents)])`.
    pub(crate) snapshots: Vec<(usize, Vec<(String, String)>)>,
    /// For each replay N: `(N, frames the director transmitted)`.
    pub(crate) outputs: Vec<(usize, Vec<Captured>)>,
}

/// Tracks `assign.csv`: one row per connection in arrival order.
#[derive(Default)]
struct Assign {
    seen: HashSet<(u8, IpAddr, u16, IpAddr, u16)>,
    rows: String,
}

impl Assign {
    fn observe(&mut self, d: &Director, meta: &PacketMeta, v: &Verdict) {
        let new_conn = match meta.proto {
            ipproto::TCP => meta.tcp_flags & flags::SYN != 0 && meta.tcp_flags & flags::ACK == 0,
            ipproto::UDP => true,
            _ => false,
        };
        if !new_conn {
            return;
        }
        let ops = meta.proto == ipproto::UDP
            && d.service(&ServiceKey::Inet { proto: Proto::Udp, addr: meta.dst, port: meta.dport })
                .is_some_and(|s| s.config.one_packet);
        if !self.seen.insert((meta.proto, meta.src, meta.sport, meta.dst, meta.dport)) && !ops {
            return;
        }
        let rs = match v {
            Verdict::Transmit { dest: Some(id), .. } | Verdict::Fragmented { dest: Some(id), .. } => {
                d.dest(*id).map(|dv| {
                    let port = if dv.port() == 0 { meta.dport } else { dv.port() };
                    format!("{},{port}", dv.addr())
                })
            }
            _ => None,
        };
        let _ = writeln!(
            self.rows,
            "{},{},{},{},{}",
            meta.src,
            meta.sport,
            meta.dst,
            meta.dport,
            rs.as_deref().unwrap_or("none,0")
        );
    }
}

/// Calls `tick` at every deadline up to `now`, as the kernel's timers would fire.
fn advance(d: &mut Director, now: Instant) {
    for _ in 0..1_000_000 {
        match d.next_deadline() {
            Some(t) if t <= now => d.tick(t),
            _ => break,
        }
    }
    d.tick(now);
}

/// `lcn.csv`: the connection listing as CSV, sorted by protocol, client address and port.
fn lcn_csv(d: &Director, now: Instant) -> String {
    let mut rows: Vec<_> = d
        .connections(now)
        .into_iter()
        .map(|c| {
            let proto = match c.proto {
                6 => "TCP",
                17 => "UDP",
                _ => "IP",
            };
            (proto, c.client.addr, c.client.port, c)
        })
        .collect();
    rows.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut out = String::from("proto,client_ip,client_port,vip,vport,rs_ip,rs_port,state\n");
    for (proto, _, _, c) in rows {
        let _ = writeln!(
            out,
            "{proto},{},{},{},{},{},{},{}",
            c.client.addr, c.client.port, c.virt.addr, c.virt.port, c.dest.addr, c.dest.port, c.state
        );
    }
    out
}

/// `times.txt` values: `(lcn time, stats time)` in nanoseconds.
fn snapshot_times(dir: &Path, k: usize) -> Result<(u64, u64), CaseError> {
    let text = read(&dir.join(format!("expected-{k}/times.txt")))?;
    let get = |key: &str| -> Result<u64, CaseError> {
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim))
            .ok_or_else(|| CaseError::Bad(format!("times.txt lacks {key}")))?;
        let secs: f64 = v.parse().map_err(|_| CaseError::Bad(format!("bad time '{v}'")))?;
        Ok((secs * 1e6).round() as u64 * 1000)
    };
    Ok((get("lcn ")?, get("stats ")?))
}

/// Runs the case in `dir`.
///
/// # Errors
/// [`CaseError`] when the case folder cannot be read or a step cannot be carried out.
pub(crate) fn run_case(dir: &Path) -> Result<CaseRun, CaseError> {
    let topo = Topology::parse(&read(&dir.join("topology.txt"))?);
    let mut d = director_for(&topo)?;
    let gw_mac = topo.mac("gateway_mac")?;
    let steps = read(&dir.join("steps.txt"))?;
    let mut run = CaseRun::default();
    let mut assign = Assign::default();
    let mut now = Instant::ZERO;
    let mut frame = Frame::with_capacity(DEFAULT_HEADROOM + 2048);
    for line in steps.lines() {
        let line = line.split(" #").next().unwrap_or("").trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["ipvsadm", args @ ..] => {
                let c = parse_command(args).map_err(|e| CaseError::Bad(format!("{line}: {e}")))?;
                d.execute(&c).map_err(|e| CaseError::Bad(format!("{line}: {e}")))?;
            }
            ["replay", file] => {
                let n: usize = file
                    .trim_start_matches("input-")
                    .trim_end_matches(".pcap")
                    .parse()
                    .map_err(|_| CaseError::Bad(format!("bad replay step '{line}'")))?;
                let path = dir.join(file);
                let frames = read_capture(&path).map_err(|e| CaseError::Capture(path.clone(), e))?;
                let mut sent = Vec::new();
                for f in frames {
                    now = Instant::from_nanos(f.ts_ns);
                    advance(&mut d, now);
                    frame.load(DEFAULT_HEADROOM, &f.data);
                    let meta = wire::parse(&f.data).ok();
                    let v = d.process(now, &mut frame);
                    if let (Some(m), true) = (meta, f.data.get(6..12) == Some(&gw_mac.0[..])) {
                        assign.observe(&d, &m, &v);
                    }
                    if let Verdict::Transmit { .. } | Verdict::Fragmented { .. } = v {
                        sent.push(Captured { ts_ns: f.ts_ns, data: frame.data().to_vec() });
                        let rest = d.fragments().iter().map(|g| Captured { ts_ns: f.ts_ns, data: g.data().to_vec() });
                        sent.extend(rest);
                    }
                }
                run.outputs.push((n, sent));
            }
            ["sleep", _] => {}
            ["snapshot", k] => {
                let k: usize = k.parse().map_err(|_| CaseError::Bad(format!("bad snapshot step '{line}'")))?;
                let (t_lcn, t_stats) = snapshot_times(dir, k)?;
                now = now.max(Instant::from_nanos(t_lcn));
                advance(&mut d, now);
                let mut files = vec![
                    (
                        "assign.csv".to_string(),
                        format!("client_ip,client_port,vip,vport,rs_ip,rs_port\n{}", assign.rows),
                    ),
                    ("lcn.csv".to_string(), lcn_csv(&d, now)),
                    ("Lcn.txt".to_string(), list(&d, now, ListOptions::Connections)),
                    ("Ln.txt".to_string(), list(&d, now, ListOptions::Plain)),
                    ("Ln-nosort.txt".to_string(), list(&d, now, ListOptions::NoSort)),
                ];
                now = now.max(Instant::from_nanos(t_stats));
                advance(&mut d, now);
                files.push(("stats.txt".to_string(), list(&d, now, ListOptions::Stats)));
                run.snapshots.push((k, files));
            }
            _ => return Err(CaseError::Bad(format!("unknown step '{line}'"))),
        }
    }
    Ok(run)
}

/// Writes a run as `OUT/expected-K/<files>` and `OUT/output-N.pcap`.
///
/// # Errors
/// [`CaseError::Io`] when a file cannot be written.
pub(crate) fn write_run(run: &CaseRun, out: &Path) -> Result<(), CaseError> {
    let io = |p: &Path, e: std::io::Error| CaseError::Io(p.to_path_buf(), e);
    for (k, files) in &run.snapshots {
        let dir = out.join(format!("expected-{k}"));
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        for (name, text) in files {
            let p = dir.join(name);
            fs::write(&p, text).map_err(|e| io(&p, e))?;
        }
    }
    for (n, frames) in &run.outputs {
        let p = out.join(format!("output-{n}.pcap"));
        let mut w = CaptureWriter::create(&p).map_err(|e| CaseError::Capture(p.clone(), e))?;
        for f in frames {
            w.write(f.ts_ns, &f.data).map_err(|e| CaseError::Capture(p.clone(), e))?;
        }
        w.into_inner();
    }
    Ok(())
}
