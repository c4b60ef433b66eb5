//! Randomized scenarios against the library, with every scheduler: services of any scheduler
//! and `-b` flags over TCP, UDP, SCTP or a firewall mark, with or without persistence (and a
//! netmask, and with or without the SIP persistence engine fed INVITEs with and without a
//! Call-ID), DR or NAT servers with weights from 0 and thresholds, clients that send SYNs alone
//! or whole handshakes, close with FIN or RST and come back on the same port (SYN reuse), SCTP
//! chunks of every event alone or as whole associations (INIT reuse after CLOSED), servers that
//! answer, time that passes, and edits and deletions of servers and services while their
//! connections live. Whatever the kernel would have chosen, after every step
//! [`Director::check_invariants`] must hold (counters equal the table, templates outlive their
//! connections by no more than their timeout, the dest trash empties in time) and nothing may
//! panic. The expectations of single behaviours live in the core's parity tests.

use std::net::IpAddr;

use lvs::core::addr::{Af, ServiceKey};
use lvs::core::dest::{FwdMethod, RealServer};
use lvs::core::neigh::{MacAddr, Neighbour};
use lvs::core::proto::sctp::chunk;
use lvs::core::proto::tcp::flags;
use lvs::core::service::{PersistEngine, SchedFlags, ServiceConfig};
use lvs::core::testkit::{sctp, udp, Tcp, DIRECTOR_MAC, GW_MAC};
use lvs::core::wire::{Frame, DEFAULT_HEADROOM};
use lvs::core::PortConfig;
use lvs::{Director, DirectorConfig, Instant};
use proptest::prelude::*;

const VIP: [u8; 4] = [203, 0, 113, 100];
const MARK: u32 = 7;

fn vip() -> IpAddr {
    IpAddr::from(VIP)
}

fn rip(i: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, 11 + i])
}

fn rs_mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 1, 11 + i])
}

/// How the service is reached.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Tcp,
    Udp,
    Sctp,
    Fwmark,
}

#[derive(Clone, Debug)]
struct Setup {
    sched: &'static str,
    flags: u8,
    kind: Kind,
    persist: Option<(u32, u8)>,
    /// With `persist`: the SIP persistence engine (`--pe sip`).
    sip: bool,
    nat: bool,
    servers: Vec<(u32, u32)>,
}

#[derive(Clone, Debug)]
enum Step {
    /// A client segment: client, port, flags.
    Segment(u8, u8, u8),
    /// A whole handshake and, if `close`, its FIN exchange (replies only reach NAT).
    Handshake(u8, u8, bool),
    /// A server's reply to a client port.
    Reply(u8, u8, u8, u8),
    /// A UDP datagram from a client port.
    Datagram(u8, u8),
    /// A SIP INVITE from a client port with one of three Call-IDs, or (3) none.
    Invite(u8, u8, u8),
    /// An SCTP packet from a client port with one chunk of a type.
    Chunk(u8, u8, u8),
    /// An SCTP packet from a server to a client port with one chunk of a type.
    ChunkReply(u8, u8, u8, u8),
    /// A whole SCTP association set up (INIT .. COOKIE ACK, then DATA) and, if `close`, shut
    /// down (replies only reach NAT).
    Association(u8, u8, bool),
    /// Seconds pass, every timer running at its deadline.
    Sleep(u32),
    /// `-e` of a server's weight and upper threshold.
    Edit(u8, u32, u32),
    /// `-d` of a server, or `-a` again if it was deleted.
    ToggleServer(u8),
    /// `-D` of the service, or `-A` with its servers again if it was deleted.
    ToggleService,
    /// `-E` to another scheduler.
    Reschedule(&'static str),
}

fn setup() -> impl Strategy<Value = Setup> {
    let names = prop::sample::select(lvs::sched::NAMES.to_vec());
    let kind = prop::sample::select(vec![Kind::Tcp, Kind::Udp, Kind::Sctp, Kind::Fwmark]);
    let persist =
        prop::option::of((prop::sample::select(vec![1u32, 30, 300]), prop::sample::select(vec![32u8, 24, 16])));
    let servers = prop::collection::vec((0u32..4, prop::sample::select(vec![0u32, 1, 2, 5])), 1..4);
    (names, 0u8..4, kind, persist, any::<bool>(), any::<bool>(), servers).prop_map(
        |(sched, flags, kind, persist, sip, nat, servers)| Setup { sched, flags, kind, persist, sip, nat, servers },
    )
}

/// Chunk types of every state-machine event, and one the tables do not know.
fn chunks() -> impl Strategy<Value = u8> {
    prop::sample::select(vec![
        chunk::DATA,
        chunk::INIT,
        chunk::INIT_ACK,
        chunk::COOKIE_ECHO,
        chunk::COOKIE_ACK,
        chunk::SHUTDOWN,
        chunk::SHUTDOWN_ACK,
        chunk::SHUTDOWN_COMPLETE,
        chunk::ERROR,
        chunk::ABORT,
        0xc0,
    ])
}

fn step() -> impl Strategy<Value = Step> {
    let fl = prop::sample::select(vec![flags::SYN, flags::ACK, flags::FIN | flags::ACK, flags::RST, 0x18]);
    prop_oneof![
        4 => (0..4u8, 0..3u8, fl.clone()).prop_map(|(c, p, f)| Step::Segment(c, p, f)),
        3 => (0..4u8, 0..3u8, any::<bool>()).prop_map(|(c, p, x)| Step::Handshake(c, p, x)),
        1 => (0..3u8, 0..4u8, 0..3u8, fl).prop_map(|(s, c, p, f)| Step::Reply(s, c, p, f)),
        2 => (0..4u8, 0..3u8).prop_map(|(c, p)| Step::Datagram(c, p)),
        2 => (0..4u8, 0..3u8, 0..4u8).prop_map(|(c, p, call)| Step::Invite(c, p, call)),
        2 => (0..4u8, 0..3u8, chunks()).prop_map(|(c, p, k)| Step::Chunk(c, p, k)),
        1 => (0..3u8, 0..4u8, 0..3u8, chunks()).prop_map(|(s, c, p, k)| Step::ChunkReply(s, c, p, k)),
        2 => (0..4u8, 0..3u8, any::<bool>()).prop_map(|(c, p, x)| Step::Association(c, p, x)),
        2 => prop::sample::select(vec![1u32, 10, 61, 130, 400, 1000]).prop_map(Step::Sleep),
        1 => (0..3u8, 0..4u32, prop::sample::select(vec![0u32, 1, 3])).prop_map(|(s, w, x)| Step::Edit(s, w, x)),
        1 => (0..3u8).prop_map(Step::ToggleServer),
        1 => Just(Step::ToggleService),
        1 => prop::sample::select(lvs::sched::NAMES.to_vec()).prop_map(Step::Reschedule),
    ]
}

struct Scenario {
    d: Director,
    cfg: ServiceConfig,
    servers: Vec<RealServer>,
    deleted: Vec<bool>,
    service_up: bool,
    now: u64,
}

impl Scenario {
    fn new(s: &Setup) -> Self {
        let port = PortConfig::new(MacAddr(DIRECTOR_MAC)).with_addr(IpAddr::from([192, 0, 2, 1]));
        let mut d = Director::new(DirectorConfig::default().port(port).port(port), lvs::sched::by_name);
        d.set_gateway(Af::V4, Neighbour { mac: MacAddr(GW_MAC), port: 0 });
        d.set_classifier(Box::new(|m| if m.dst == vip() && m.dport == 80 { MARK } else { 0 }));
        let key = match s.kind {
            Kind::Tcp => ServiceKey::tcp(vip(), 80),
            Kind::Udp => ServiceKey::Inet { proto: lvs::core::addr::Proto::Udp, addr: vip(), port: 80 },
            Kind::Sctp => ServiceKey::Inet { proto: lvs::core::addr::Proto::Sctp, addr: vip(), port: 80 },
            Kind::Fwmark => ServiceKey::Fwmark { mark: MARK, af: Af::V4 },
        };
        let mut cfg = ServiceConfig::new(key, s.sched);
        cfg.sched_flags = SchedFlags(s.flags);
        if let Some((t, mask)) = s.persist {
            cfg = cfg.persistent(t).netmask(mask);
            if s.sip {
                cfg.pe = Some(PersistEngine::Sip);
            }
        }
        let fwd = if s.nat { FwdMethod::Masq } else { FwdMethod::Route };
        let servers: Vec<RealServer> = s
            .servers
            .iter()
            .enumerate()
            .map(|(i, (w, x))| RealServer::new(rip(i as u8), 80, fwd, *w).with_thresholds(*x, 0))
            .collect();
        for i in 0..servers.len() as u8 {
            d.set_neighbour(rip(i), Neighbour { mac: rs_mac(i), port: 1 });
        }
        let mut sc = Scenario { d, cfg, deleted: vec![false; servers.len()], servers, service_up: false, now: 1 };
        // Flags a scheduler does not take are an error, as ipvsadm's: then the service is down.
        sc.toggle_service();
        sc
    }

    fn toggle_service(&mut self) {
        if self.service_up {
            self.d.del_service(&self.cfg.key).unwrap();
            self.service_up = false;
            return;
        }
        if self.d.add_service(self.cfg.clone()).is_err() {
            return;
        }
        self.service_up = true;
        for (rs, gone) in self.servers.iter().zip(&mut self.deleted) {
            *gone = self.d.add_dest(&self.cfg.key, *rs).is_err();
        }
    }

    fn client(c: u8, p: u8) -> (IpAddr, u16) {
        (IpAddr::from([198, 51, 100 + c / 2, 2 + c]), 1000 + u16::from(p))
    }

    fn send(&mut self, bytes: &[u8]) {
        let mut f = Frame::new(DEFAULT_HEADROOM, bytes);
        let _ = self.d.process(Instant::from_secs(self.now), &mut f);
    }

    fn segment(&mut self, c: (IpAddr, u16), f: u8) {
        self.send(&Tcp::new(c, (vip(), 80), f).build());
    }

    fn reply(&mut self, s: u8, c: (IpAddr, u16), f: u8) {
        let mut t = Tcp::new((rip(s), 80), c, f);
        t.src_mac = rs_mac(s).0;
        self.send(&t.build());
    }

    fn chunk(&mut self, c: (IpAddr, u16), kind: u8) {
        self.send(&sctp(c, (vip(), 80), &[(kind, &[0; 8])]));
    }

    fn chunk_reply(&mut self, s: u8, c: (IpAddr, u16), kind: u8) {
        let mut b = sctp((rip(s), 80), c, &[(kind, &[0; 8])]);
        b[6..12].copy_from_slice(&rs_mac(s).0);
        self.send(&b);
    }

    fn run(&mut self, s: &Step) {
        match *s {
            Step::Segment(c, p, f) => self.segment(Self::client(c, p), f),
            Step::Handshake(c, p, close) => {
                let cl = Self::client(c, p);
                self.segment(cl, flags::SYN);
                for i in 0..self.servers.len() as u8 {
                    self.reply(i, cl, flags::SYN | flags::ACK);
                }
                self.segment(cl, flags::ACK);
                if close {
                    self.segment(cl, flags::FIN | flags::ACK);
                    for i in 0..self.servers.len() as u8 {
                        self.reply(i, cl, flags::FIN | flags::ACK);
                    }
                    self.segment(cl, flags::ACK);
                }
            }
            Step::Reply(srv, c, p, f) => {
                if usize::from(srv) < self.servers.len() {
                    self.reply(srv, Self::client(c, p), f);
                }
            }
            Step::Datagram(c, p) => self.send(&udp(Self::client(c, p), (vip(), 80), b"q")),
            Step::Invite(c, p, call) => {
                let header = if call < 3 { format!("Call-ID: call-{call}@example.com\r\n") } else { String::new() };
                let msg = format!("INVITE sip:bob@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\n{header}\r\n");
                self.send(&udp(Self::client(c, p), (vip(), 80), msg.as_bytes()))
            }
            Step::Chunk(c, p, k) => self.chunk(Self::client(c, p), k),
            Step::ChunkReply(srv, c, p, k) => {
                if usize::from(srv) < self.servers.len() {
                    self.chunk_reply(srv, Self::client(c, p), k);
                }
            }
            Step::Association(c, p, close) => {
                let cl = Self::client(c, p);
                let mut steps = vec![
                    (false, chunk::INIT),
                    (true, chunk::INIT_ACK),
                    (false, chunk::COOKIE_ECHO),
                    (true, chunk::COOKIE_ACK),
                    (false, chunk::DATA),
                ];
                if close {
                    steps.extend([
                        (false, chunk::SHUTDOWN),
                        (true, chunk::SHUTDOWN_ACK),
                        (false, chunk::SHUTDOWN_COMPLETE),
                    ]);
                }
                for (reply, k) in steps {
                    if !reply {
                        self.chunk(cl, k);
                        continue;
                    }
                    for i in 0..self.servers.len() as u8 {
                        self.chunk_reply(i, cl, k);
                    }
                }
            }
            Step::Sleep(secs) => {
                self.now += u64::from(secs);
                let end = Instant::from_secs(self.now);
                // Bounded: every deadline moves time on.
                for _ in 0..100_000 {
                    match self.d.next_deadline().filter(|t| *t <= end) {
                        Some(t) => self.d.tick(t),
                        None => break,
                    }
                }
                self.d.tick(end);
            }
            Step::Edit(i, w, x) => {
                if let Some(rs) = self.servers.get_mut(usize::from(i)) {
                    *rs = RealServer::new(rs.endpoint.addr, 80, rs.fwd, w).with_thresholds(x, 0);
                    if self.service_up && !self.deleted[usize::from(i)] {
                        self.d.edit_dest(&self.cfg.key, *rs).unwrap();
                    }
                }
            }
            Step::ToggleServer(i) => {
                let i = usize::from(i);
                if i < self.servers.len() && self.service_up {
                    if self.deleted[i] {
                        self.deleted[i] = self.d.add_dest(&self.cfg.key, self.servers[i]).is_err();
                    } else {
                        self.d.del_dest(&self.cfg.key, &self.servers[i].endpoint).unwrap();
                        self.deleted[i] = true;
                    }
                }
            }
            Step::ToggleService => self.toggle_service(),
            Step::Reschedule(name) => {
                let mut cfg = self.cfg.clone();
                cfg.scheduler = name.into();
                if self.service_up && self.d.edit_service(cfg.clone()).is_ok() {
                    self.cfg = cfg;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn any_scenario_keeps_the_directors_books(s in setup(), steps in prop::collection::vec(step(), 1..60)) {
        let mut sc = Scenario::new(&s);
        for st in &steps {
            sc.run(st);
            let now = Instant::from_secs(sc.now);
            prop_assert_eq!(sc.d.check_invariants(now), Ok(()), "after {:?}", st);
        }
        // Long after the last packet only the trash and the estimator may be left.
        sc.run(&Step::Sleep(100_000));
        prop_assert_eq!(sc.d.conn_count(), 0);
        prop_assert_eq!(sc.d.check_invariants(Instant::from_secs(sc.now)), Ok(()));
    }
}
