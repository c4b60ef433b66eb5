//! The request path (`ip_vs_in`, `ip_vs_schedule` in `ip_vs_core.c`): parse → NAT reply index →
//! connection index (with the SYN-reuse rule) → for a new flow: service lookup (fwmark, then
//! `proto VIP:port`, then `proto VIP:0`), persistence and the scheduler → statistics → state
//! transition → timer → the connection's forwarding method.

use core::net::IpAddr;

use super::{Director, Symptom, Verdict};
use crate::addr::{raw, Af, ServiceKey};
use crate::conn::table::{InKey, OutKey, Peeked};
use crate::conn::{cf, Conn, ConnId, NIL};
use crate::dest::{DestId, FwdMethod, TunType, F_AVAILABLE};
use crate::error::Reason;
use crate::persist::sip::{CallId, PersistEngine};
use crate::persist::{self, template_key};
use crate::proto::sctp;
use crate::proto::tcp::{flags, TcpState};
use crate::sched::SchedCx;
use crate::service::ServiceView;
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::{self, ipproto, Frag, Frame, PacketMeta, ParseError};
use crate::xmit::icmp::IcmpKind;
use crate::xmit::tun::{TunError, Tunnel};
use crate::xmit::{decrement_ttl, dr, nat, tun, XmitError};

/// `is_new_conn` of `ip_vs_core.c`: a TCP SYN or an SCTP INIT, the packets that may start a
/// connection over an old one.
fn is_new_conn(meta: &PacketMeta) -> bool {
    match meta.proto {
        ipproto::TCP => meta.tcp_flags & flags::SYN != 0,
        ipproto::SCTP => meta.sctp_chunk == sctp::chunk::INIT,
        _ => false,
    }
}

/// The FTP data port (`FTPDATA`): active FTP data connections come from it and are never
/// scheduled.
const FTP_DATA_PORT: u16 = 20;

/// Frames a burst parses and probes before processing any (the burst size of the benchmarks
/// and of the runtime's receive rings' usual batch).
const PROBE_AHEAD: usize = 32;

/// What a burst's first pass found for a frame's tuple.
#[derive(Clone, Copy, Debug)]
enum Probe {
    /// Not probed (a single frame, or one whose answer no longer stands): look up afresh.
    Unknown,
    /// Filed in the client → virtual index under this entry, at the index epoch of now: what
    /// a fresh lookup would answer.
    In(ConnId),
    /// Filed in the client → virtual index under this entry at an earlier epoch: it still
    /// stands if the entry is still filed under the tuple.
    Was(ConnId),
    /// Missed the client → virtual index; filed in the NAT reply index under this entry.
    Out(ConnId),
    /// Missed the client → virtual index and, if NAT connections existed, the reply index.
    Miss,
}

/// The index lines a burst's first pass read for a frame's tuple.
#[derive(Clone, Copy, Debug)]
struct Peeks {
    /// The client → virtual index.
    inward: Peeked,
    /// The reply index, when NAT connections exist and the first names no candidate.
    reply: Option<Peeked>,
}

/// A frame after a burst's first pass (its parsed view, if any, waits beside it).
#[derive(Clone, Copy, Debug)]
enum Seen {
    /// Beyond the frames given (never processed).
    Skipped,
    /// Parsed, with what its probe found.
    Parsed(Probe),
    /// Not parsed.
    Unparsed(ParseError),
}

/// The client → virtual key of a packet (`ip_vs_conn_in_get` of its tuple).
pub(super) fn in_key(meta: &PacketMeta) -> InKey {
    InKey {
        v6: meta.af == Af::V6,
        tmpl: false,
        proto: meta.proto,
        caddr: raw(&meta.src),
        cport: meta.sport,
        vaddr: raw(&meta.dst),
        vport: meta.dport,
    }
}

/// The reply key of a packet, read as a real server's reply (`ip_vs_conn_out_get`).
fn out_key(meta: &PacketMeta) -> OutKey {
    OutKey {
        v6: meta.af == Af::V6,
        proto: meta.proto,
        daddr: raw(&meta.src),
        dport: meta.sport,
        caddr: raw(&meta.dst),
        cport: meta.dport,
    }
}

impl Director {
    /// Processes a burst: one verdict per frame. The extra fragments of every
    /// [`Verdict::Fragmented`] wait in [`Director::fragments`], in the order of the verdicts.
    pub fn process_burst(&mut self, now: Instant, frames: &mut [Frame], verdicts: &mut [Verdict]) {
        self.start_clock(now);
        self.frag_out.clear();
        for (frames, verdicts) in frames.chunks_mut(PROBE_AHEAD).zip(verdicts.chunks_mut(PROBE_AHEAD)) {
            // First pass: parse every frame and hash its tuple; then read each one's home group
            // in the indexes (one cache line, no entry); then the entries those lines name. The
            // loads of each step are independent of one another, and before each step the
            // prefetch hook, when there is one, is handed every line it will read, so their
            // cache misses overlap instead of meeting them one by one between rewrites.
            let mut seen = [Seen::Skipped; PROBE_AHEAD];
            let mut metas = [PacketMeta::BLANK; PROBE_AHEAD];
            let mut hashes = [None; PROBE_AHEAD];
            // Two lines per frame for the entries (a 48-byte entry may straddle two lines).
            let mut lines = [core::ptr::null(); 2 * PROBE_AHEAD];
            let mut n = 0;
            // Parsing and hashing are separate loops: a frame's fields are read only once the
            // stores that wrote them have drained, not straight after (a load that spans
            // several pending stores waits for all of them).
            for ((f, s), m) in frames.iter().zip(seen.iter_mut()).zip(metas.iter_mut()) {
                *s = match wire::parse_into(f.data(), m) {
                    Ok(()) => Seen::Parsed(Probe::Unknown),
                    Err(e) => Seen::Unparsed(e),
                };
            }
            for ((s, m), h) in seen.iter().zip(&metas).zip(hashes.iter_mut()) {
                if let Seen::Parsed(_) = s {
                    *h = self.hash_in(m);
                    if let (Some(hv), Some(slot)) = (*h, lines.get_mut(n)) {
                        if let Some(line) = self.conns.in_line(hv) {
                            *slot = line;
                            n += 1;
                        }
                    }
                }
            }
            self.prefetch(&lines[..n]);
            // The client → virtual home groups; where one names no candidate while NAT
            // connections exist, the frame may be a server's reply: hash its reply key and
            // prefetch that index's home group too, all of them before reading any.
            let mut inward = [None; PROBE_AHEAD];
            let mut reply_hashes = [None; PROBE_AHEAD];
            n = 0;
            for (((m, h), i), r) in metas.iter().zip(hashes).zip(inward.iter_mut()).zip(reply_hashes.iter_mut()) {
                let Some(hv) = h else { continue };
                let peeked = self.conns.peek_in(hv);
                if self.nat_conns > 0 && !peeked.candidate() {
                    let hv = self.conns.hash_out(&out_key(m));
                    if let (Some(line), Some(slot)) = (self.conns.out_line(hv), lines.get_mut(n)) {
                        *slot = line;
                        n += 1;
                    }
                    *r = Some(hv);
                }
                *i = Some(peeked);
            }
            self.prefetch(&lines[..n]);
            let mut peeks = [None; PROBE_AHEAD];
            n = 0;
            for ((i, r), p) in inward.into_iter().zip(reply_hashes).zip(peeks.iter_mut()) {
                let Some(inward) = i else { continue };
                let reply = r.map(|hv| self.conns.peek_out(hv));
                let first = inward.candidate_id().or_else(|| reply.and_then(|r| r.candidate_id()));
                let (head, tail) = first.and_then(|id| self.conns.entry_lines(id)).unzip();
                for line in [head, tail.flatten()].into_iter().flatten() {
                    if let Some(slot) = lines.get_mut(n) {
                        *slot = line;
                        n += 1;
                    }
                }
                *p = Some(Peeks { inward, reply });
            }
            self.prefetch(&lines[..n]);
            for ((s, m), p) in seen.iter_mut().zip(&metas).zip(peeks) {
                if let (Seen::Parsed(probe), Some(p)) = (s, p) {
                    *probe = self.probe(m, p);
                }
            }
            let epoch = self.conns.epoch();
            for (((f, v), s), m) in frames.iter_mut().zip(verdicts.iter_mut()).zip(seen).zip(&metas) {
                *v = match s {
                    Seen::Parsed(probe) => {
                        // What the first pass found stands while no index changed since; after a
                        // change a hit is checked against its entry, anything else looked up
                        // afresh.
                        let probe = match probe {
                            _ if epoch == self.conns.epoch() => probe,
                            Probe::In(id) => Probe::Was(id),
                            _ => Probe::Unknown,
                        };
                        self.process_meta(now, f, m, probe)
                    }
                    Seen::Unparsed(e) => self.unparsed(e),
                    Seen::Skipped => Verdict::NotMine,
                };
            }
        }
    }

    /// The hash of a parsed frame's client → virtual key, for a burst's first look; `None` for
    /// frames [`process`](Self::process) looks up no index for (ICMP, later fragments, other
    /// protocols).
    fn hash_in(&self, meta: &PacketMeta) -> Option<u64> {
        if meta.icmp.is_some()
            || !matches!(meta.proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP)
            || matches!(meta.frag, Frag::Later(_))
        {
            return None;
        }
        Some(self.conns.hash_in(&in_key(meta)))
    }

    /// Hands `lines` to the prefetch hook, if one is installed.
    #[inline]
    fn prefetch(&self, lines: &[*const u8]) {
        if let (Some(hook), false) = (self.cfg.prefetch, lines.is_empty()) {
            hook(lines);
        }
    }

    /// What the indexes hold for a parsed frame's tuple, finishing the lookups `p` began: the
    /// client → virtual index, then, while NAT connections exist, the reply index (the order
    /// of [`process`](Self::process)).
    fn probe(&self, meta: &PacketMeta, p: Peeks) -> Probe {
        if let Some(id) = self.conns.resolve_in(&in_key(meta), p.inward) {
            self.conns.touch(id);
            return Probe::In(id);
        }
        if self.nat_conns > 0 {
            let key = out_key(meta);
            let reply = match p.reply {
                Some(r) => self.conns.resolve_out(&key, r),
                None => self.conns.find_out(&key),
            };
            if let Some(id) = reply {
                self.conns.touch(id);
                return Probe::Out(id);
            }
        }
        Probe::Miss
    }

    fn unparsed(&mut self, e: ParseError) -> Verdict {
        match e {
            ParseError::NotIp => Verdict::NotMine,
            ParseError::Malformed => self.drop(Reason::Malformed),
        }
    }

    /// Processes one frame in place and says what to do with it.
    ///
    /// A minimal DR director: one port, one service with one real server, and a SYN from a client
    /// that goes out to the server with only its MACs rewritten.
    ///
    /// ```
    /// # use lvs_core::{sched::*, service::ServiceView, wire::PacketMeta, *};
    /// # struct First;
    /// # impl Scheduler for First {
    /// #     fn name(&self) -> &'static str { "first" }
    /// #     fn schedule(&mut self, _: &mut SchedCx<'_>, s: &ServiceView<'_>, _: &PacketMeta) -> Option<DestId> {
    /// #         s.dests().next().map(|d| d.id())
    /// #     }
    /// # }
    /// # fn factory(_: &str) -> Result<Box<dyn Scheduler>, SchedError> { Ok(Box::new(First)) }
    /// # fn syn() -> Frame {
    /// #     let mut b = [0u8; 54];
    /// #     b[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe]);
    /// #     b[12..24].copy_from_slice(&[8, 0, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6]);
    /// #     b[26..34].copy_from_slice(&[198, 51, 100, 2, 203, 0, 113, 100]);
    /// #     b[34..38].copy_from_slice(&[0x9c, 0x40, 0, 80]);
    /// #     b[46] = 0x50;
    /// #     b[47] = 0x02;
    /// #     Frame::new(wire::DEFAULT_HEADROOM, &b)
    /// # }
    /// let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr([2, 0, 0, 0, 0, 1])));
    /// let mut d = Director::new(cfg, factory); // lvs_sched::by_name in a real program
    /// let vip = ServiceKey::tcp("203.0.113.100".parse()?, 80);
    /// d.add_service(ServiceConfig::new(vip, "first"))?;
    /// let rip = "192.0.2.11".parse()?;
    /// d.add_dest(&vip, RealServer::new(rip, 80, FwdMethod::Route, 1))?;
    /// d.set_neighbour(rip, Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 0 });
    ///
    /// let mut frame = syn(); // 198.51.100.2:40000 → 203.0.113.100:80, SYN
    /// let now = Instant::from_secs(1);
    /// assert!(matches!(d.process(now, &mut frame), Verdict::Transmit { port: 0, dest: Some(_) }));
    /// assert_eq!(&frame.data()[..12], &[2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process(&mut self, now: Instant, frame: &mut Frame) -> Verdict {
        self.start_clock(now);
        self.frag_out.clear();
        match wire::parse(frame.data()) {
            Ok(meta) => self.process_meta(now, frame, &meta, Probe::Unknown),
            Err(e) => self.unparsed(e),
        }
    }

    /// `ip_vs_in` for a parsed frame; `probe` is what a burst's first pass found for its tuple.
    fn process_meta(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, probe: Probe) -> Verdict {
        if let Some(e) = meta.icmp {
            return self.icmp_in(frame, meta, &e);
        }
        if !matches!(meta.proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
            return Verdict::NotMine;
        }
        if let Frag::Later(id) = meta.frag {
            return self.later_fragment(now, frame, meta, id);
        }
        let key = in_key(meta);
        let mut found = match probe {
            Probe::In(id) => Some(id),
            Probe::Was(id) if self.conns.holds_in(id, &key) => Some(id),
            Probe::Out(_) | Probe::Miss => None,
            _ => self.conns.find_in(&key),
        };
        // A NAT or FullNAT reply can only miss the client-side index; probe the reply indexes
        // only then.
        if found.is_none() && (self.nat_conns > 0 || self.fnat.has_conns()) {
            let ok = out_key(meta);
            // The reply index holds NAT entries only: without any, it cannot answer. A `Miss`
            // stands at the epoch it was found at, which any change of NAT entries moves.
            let reply = match probe {
                Probe::Out(id) => Some(id),
                Probe::Miss => None,
                _ if self.nat_conns == 0 => None,
                _ => self.conns.find_out(&ok),
            };
            if let Some(id) = reply {
                if self.synproxied(id) {
                    return self.synproxy_server(now, frame, meta, id, false);
                }
                return self.out_path(now, frame, meta, id);
            }
            if let Some(id) = self.fnat.find_reply(&ok) {
                if self.synproxied(id) {
                    return self.synproxy_server(now, frame, meta, id, true);
                }
                return self.fnat_out(now, frame, meta, id);
            }
        }
        // With no service left the kernel's hooks are gone (5.7+ registers them only while a
        // service exists): a surviving connection's segment meets the director's own stack,
        // which resets it; anything else is the application's.
        if self.svc_index.is_empty() {
            return match found {
                Some(_) if meta.proto == ipproto::TCP => self.reset(frame, meta),
                _ => Verdict::NotMine,
            };
        }
        // An entry given up for a new flow (`ip_vs_conn_expire_now`) only has its timer fired
        // after this packet: it still counts on its server while the new flow is scheduled.
        let mut stale = None;
        if let Some(id) = found {
            if is_new_conn(meta) {
                if self.should_reschedule(id) {
                    stale = Some(id);
                    found = None;
                } else if let Some(c) = self.conns.get(id).filter(|c| c.state == TcpState::SynRecv as u8) {
                    if let (Some(d), 0) = (c.dest_id(), meta.tcp_flags & flags::ACK) {
                        self.suspect(d, Symptom::SynRetransmitted);
                    }
                }
            }
        }
        // The server check of `ip_vs_in_hook`: a connection to a server that is gone is
        // dropped with its packet, or, with `expire_nodest_conn`, expired and the packet
        // scheduled afresh (5.9+, without conntrack). An entry a sync master sent for a server
        // this director does not know has no server and is still forwarded.
        if let Some(id) = found {
            let dest = self.conns.get(id).and_then(Conn::dest_id);
            if dest.is_some_and(|d| !self.dest_available(d)) {
                if !self.cfg.expire_nodest_conn {
                    return self.drop(Reason::DestUnavailable);
                }
                stale = Some(id);
                found = None;
            }
        }
        let id = match found {
            Some(id) => id,
            None => {
                if let Some(s) = stale {
                    self.unhash_conn(s);
                }
                let new = self.new_flow(now, frame, meta, stale);
                if let Some(s) = stale {
                    self.expire_now(s);
                }
                match new {
                    Ok(id) => id,
                    Err(v) => return v,
                }
            }
        };
        if let Frag::First(fid) = meta.frag {
            self.frags.remember(now, meta, fid, id, key);
        }
        if self.synproxied(id) {
            return self.synproxy_client(now, frame, meta, id);
        }
        self.in_path(now, frame, meta, id)
    }

    /// Whether connection `id` was opened by the SYN proxy.
    fn synproxied(&self, id: ConnId) -> bool {
        self.conns.get(id).is_some_and(|c| c.flags & cf::SYNPROXY != 0)
    }

    /// Whether a server is still linked into its service (not deleted).
    pub(super) fn dest_available(&self, id: DestId) -> bool {
        self.dests.get(id).is_some_and(|d| d.flags & F_AVAILABLE != 0)
    }

    /// The SYN-reuse rule of `ip_vs_in_hook` (kernel 5.16+), without conntrack's drop: nothing
    /// is rescheduled with `conn_reuse_mode` 0; a connection to a quiesced server is with
    /// `expire_nodest_conn`; otherwise `is_new_conn_expected` decides, and it never reuses a
    /// connection a template controls (`cp->control`).
    fn should_reschedule(&self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(id) else { return false };
        let mode = self.cfg.conn_reuse_mode;
        if mode == 0 {
            return false;
        }
        if self.cfg.expire_nodest_conn {
            if let Some(d) = c.dest_id().and_then(|d| self.dests.get(d)) {
                if d.cfg.weight == 0 {
                    return true;
                }
            }
        }
        if c.control() != NIL {
            return false;
        }
        if c.proto == ipproto::SCTP {
            return c.state == sctp::state::CLOSED;
        }
        if c.proto != ipproto::TCP {
            return false;
        }
        let st = TcpState::from_u8(c.state);
        matches!(st, Some(TcpState::TimeWait | TcpState::Close))
            || (mode & 2 != 0 && st == Some(TcpState::FinWait) && c.flags & cf::NOOUTPUT != 0)
    }

    /// Finds the service of a packet with no connection: fwmark, then `proto VIP:port`, then
    /// `proto VIP:0` (`ip_vs_service_find`).
    pub(super) fn find_service(&self, frame: &Frame, meta: &PacketMeta) -> Option<u32> {
        let mark = if frame.mark != 0 { frame.mark } else { self.classifier.as_ref().map_or(0, |c| c(meta)) };
        if mark != 0 {
            if let Some(i) = self.svc_index.get(&ServiceKey::Fwmark { mark, af: meta.af }) {
                return Some(*i);
            }
        }
        let proto = crate::addr::Proto::from_number(meta.proto)?;
        let k = ServiceKey::Inet { proto, addr: meta.dst, port: meta.dport };
        if let Some(i) = self.svc_index.get(&k) {
            return Some(*i);
        }
        self.svc_index.get(&ServiceKey::Inet { proto, addr: meta.dst, port: 0 }).copied()
    }

    /// A packet without a connection: find its service, schedule it, create the connection
    /// (`tcp_conn_schedule`, `udp_conn_schedule`, `sctp_conn_schedule`).
    /// `ip_vs_schedule` never schedules a packet from the FTP data port (20), on any service:
    /// the packet goes on to the director's own stack (`NF_ACCEPT`), which is `NotMine` here.
    /// `stale` is the entry a rescheduled SYN gave up: the kernel only fires its timer after
    /// this packet, so a refusal still finds it (see [`Director::refuse_for`]).
    fn new_flow(
        &mut self,
        now: Instant,
        frame: &mut Frame,
        meta: &PacketMeta,
        stale: Option<ConnId>,
    ) -> Result<ConnId, Verdict> {
        let Some(si) = self.find_service(frame, meta) else { return Err(Verdict::NotMine) };
        if meta.proto == ipproto::TCP && self.svc(si).is_some_and(|s| s.cfg.synproxy) && matches!(meta.frag, Frag::None)
        {
            return Err(self.synproxy_new(now, frame, meta, si));
        }
        if meta.proto == ipproto::TCP {
            let f = meta.tcp_flags;
            let may = f & flags::RST == 0 && (f & flags::SYN != 0 || self.cfg.sloppy_tcp || self.schedules_midflow(si));
            if !may {
                return Err(self.reset(frame, meta));
            }
        }
        // `sctp_conn_schedule`: only an INIT (any chunk but ABORT with `sloppy_sctp`) is
        // scheduled; anything else goes on to the director's own stack.
        if meta.proto == ipproto::SCTP {
            let c = meta.sctp_chunk;
            if c == sctp::chunk::ABORT || !(c == sctp::chunk::INIT || self.cfg.sloppy_sctp) {
                return Err(Verdict::NotMine);
            }
        }
        // `tcp_conn_schedule`, `udp_conn_schedule`, `sctp_conn_schedule`: a new connection to a
        // service may be shed.
        if self.todrop() {
            return Err(self.drop(Reason::DropPacket));
        }
        if meta.sport == FTP_DATA_PORT {
            return Err(Verdict::NotMine);
        }
        match self.schedule(now, si, frame.data(), meta) {
            Ok(id) => Ok(id),
            Err(Reason::NoDest) => Err(self.refuse_for(frame, meta, Reason::NoDest, IcmpKind::PortUnreachable, stale)),
            Err(r) => Err(self.drop(r)),
        }
    }

    /// `ip_vs_schedule` and `ip_vs_sched_persist`, for the packet `meta` describes in `frame`
    /// (whose payload the SIP persistence engine reads).
    pub(super) fn schedule(
        &mut self,
        now: Instant,
        si: u32,
        frame: &[u8],
        meta: &PacketMeta,
    ) -> Result<ConnId, Reason> {
        let Some(svc) = self.svcs.get_mut(si as usize).and_then(Option::as_mut) else { return Err(Reason::NoDest) };
        let key = svc.cfg.key;
        let one_packet = svc.cfg.one_packet && meta.proto == ipproto::UDP;
        if svc.cfg.max_conn != 0 {
            let held = svc.order.iter().filter_map(|d| self.dests.get(*d)).map(|d| d.active + d.inactive).sum::<u32>();
            if held >= svc.cfg.max_conn {
                return Err(Reason::ServiceConnLimit);
            }
        }
        let Some(ptimeout) = svc.cfg.persistent else {
            if key.fwmark().is_none() && meta.dport != key.port() {
                return Err(Reason::PortMismatch);
            }
            let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
            let mut cx = SchedCx { now, rng: &mut self.rng };
            let dest = svc.sched.schedule(&mut cx, &view, meta).ok_or(Reason::NoDest)?;
            let dport = self.dests.get(dest).map_or(meta.dport, |d| d.cfg.endpoint.port);
            let dport = if dport == 0 { meta.dport } else { dport };
            return self.create_conn(now, meta, si, dest, dport, NIL, one_packet);
        };
        let tk = template_key(&key, svc.cfg.netmask, meta);
        // `ip_vs_conn_fill_param_persist`: the engine's parameter, or the packet is dropped.
        let call_id = match svc.cfg.pe {
            Some(PersistEngine::Sip) => {
                Some(wire::sip::datagram_call_id(frame, meta).and_then(CallId::new).ok_or(Reason::NoCallId)?)
            }
            None => None,
        };
        let expire_quiescent = self.cfg.expire_quiescent_template;
        let found = match &call_id {
            Some(c) => self.sip.find(&self.conns, &tk.key, c.as_bytes()),
            None => self.conns.find_in(&tk.key),
        };
        let tmpl = found.filter(|t| persist::check_template(&mut self.conns, &self.dests, expire_quiescent, *t));
        let (tid, dest) = match tmpl {
            Some(t) => {
                let dest = self.conns.get(t).and_then(Conn::dest_id).ok_or(Reason::NoDest)?;
                (t, dest)
            }
            None => {
                let Some(svc) = self.svcs.get_mut(si as usize).and_then(Option::as_mut) else {
                    return Err(Reason::NoDest);
                };
                let view = ServiceView::new(&svc.order, &self.dests, svc.cfg.sched_flags);
                let mut cx = SchedCx { now, rng: &mut self.rng };
                let dest = svc.sched.schedule(&mut cx, &view, meta).ok_or(Reason::NoDest)?;
                let d = self.dests.get(dest).ok_or(Reason::NoDest)?;
                let flags = self.conn_flags(dest, meta.af);
                let (t, a) = persist::new_template(&tk, dest, d, flags, ptimeout, call_id.is_some());
                let t = self.insert(t, &a).ok_or(Reason::TableFull)?;
                if let Some(c) = call_id {
                    self.sip.insert(t, c);
                }
                (t, dest)
            }
        };
        // Using a template re-arms it (`ip_vs_conn_put` on the template).
        let ms = self.conns.get(tid).map_or(0, |t| t.timeout_ms);
        self.conns.arm(tid, crate::time::after_ms(now, ms));
        let dport = match self.dests.get(dest) {
            Some(d) if meta.dport == key.port() && d.cfg.endpoint.port != 0 => d.cfg.endpoint.port,
            _ => meta.dport,
        };
        let id = self.create_conn(now, meta, si, dest, dport, tid.0, one_packet)?;
        if let Some(t) = self.conns.get_mut(tid) {
            t.add_controlled();
        }
        Ok(id)
    }

    /// Counts a packet in the global, service and server statistics — only while the server is
    /// available, as `ip_vs_in_stats` and `ip_vs_out_stats` do: nothing is counted for a
    /// deleted server.
    pub(super) fn count(&mut self, dest: DestId, bytes: u32, out: bool) {
        let Some(d) = self.dests.get_mut(dest).filter(|d| d.flags & F_AVAILABLE != 0) else { return };
        let svc = d.svc;
        let apply = |s: &mut Stats| if out { s.packet_out(bytes) } else { s.packet_in(bytes) };
        apply(&mut d.stats);
        apply(&mut self.stats);
        if let Some(s) = self.svc_mut(svc) {
            apply(&mut s.stats);
        }
    }

    /// Client → real server on connection `id`.
    pub(super) fn in_path(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::DestUnavailable) };
        let (dest, fwd, daddr, dport, control, one_packet) =
            (c.dest_id(), c.fwd(), self.conns.daddr(c), c.dport, c.control(), c.flags & cf::ONE_PACKET != 0);
        match dest {
            Some(d) => self.count(d, u32::from(meta.ip_len), false),
            None => self.stats.packet_in(u32::from(meta.ip_len)),
        }
        let ms = self.set_state(id, false, meta);
        self.conns.arm(id, crate::time::after_ms(now, ms));
        // `ip_vs_in`: a one-packet connection counts as at the threshold.
        let pkts = match self.conns.get_mut(id) {
            Some(_) if one_packet => self.sync.params().threshold,
            Some(c) => {
                c.in_pkts = c.in_pkts.wrapping_add(1);
                c.in_pkts
            }
            None => 0,
        };
        if self.sync.is_master() {
            self.sync_conn(now, id, pkts);
        } else if one_packet && control != NIL {
            if let Some(t) = self.conns.get_mut(ConnId(control)) {
                t.in_pkts = t.in_pkts.wrapping_add(1);
            }
        }
        let v = match fwd {
            FwdMethod::FullNat => self.fnat_in(frame, meta, id),
            _ => self.transmit(frame, meta, dest, fwd, &daddr, dport),
        };
        if one_packet {
            self.expire_now(id);
        }
        v
    }

    /// The flow hash of a packet to be tunnelled (`skb_get_hash`): addresses, protocol and —
    /// unless it is a fragment, which the kernel's flow dissector does not look into — ports,
    /// under the director's seeded hasher. Every fragment of a datagram and every packet of a
    /// connection hash alike.
    fn flow_hash(&self, meta: &PacketMeta) -> u32 {
        let ports = if meta.frag == Frag::None { (meta.sport, meta.dport) } else { (0, 0) };
        self.flow_hasher.hash_one((meta.src, meta.dst, meta.proto, ports)) as u32
    }

    /// Applies the forwarding method (`ip_vs_{dr,nat,tunnel}_xmit`): out of the port of the
    /// server's next hop (for an entry without a server, the next hop toward its address), with
    /// that port's MAC as the source.
    pub(super) fn transmit(
        &mut self,
        frame: &mut Frame,
        meta: &PacketMeta,
        dest: Option<DestId>,
        fwd: FwdMethod,
        daddr: &IpAddr,
        dport: u16,
    ) -> Verdict {
        if fwd == FwdMethod::Local {
            return Verdict::Local;
        }
        let nh = match dest {
            Some(d) => self.dests.get(d).and_then(|d| d.nh),
            None => Self::hop(&self.neigh, fwd, daddr),
        };
        let Some(nh) = nh else { return self.drop(Reason::UnknownNeighbour) };
        let Some(port) = self.port(nh.port).copied() else {
            return self.drop(Reason::UnknownPort);
        };
        let me = port.mac;
        let r = match fwd {
            FwdMethod::Route => dr::xmit(frame, meta, nh.mac, me),
            FwdMethod::Masq => nat::xmit_in(frame, meta, daddr, dport, nh.mac, me),
            FwdMethod::Tunnel => {
                let Some(src) = port.addr(Af::of(daddr)) else { return self.drop(Reason::UnknownNeighbour) };
                self.ip_id = self.ip_id.wrapping_add(1);
                // `ip_vs_tunnel_xmit` reads the server's own tunnel settings (a backup's
                // included: the sync protocol carries none). `__ip_vs_get_out_rt` in tunnel
                // mode drops an entry without a server (a synced one this director has no
                // server for) once the TTL is checked: without a server there is no type.
                let Some(cfg) = dest.and_then(|d| self.dests.get(d)).map(|d| d.cfg.tun) else {
                    return match decrement_ttl(frame.data_mut(), meta) {
                        Err(XmitError::TtlExpired) => {
                            self.refuse(frame, meta, Reason::TtlExpired, IcmpKind::TimeExceeded)
                        }
                        _ => self.drop(Reason::DestUnavailable),
                    };
                };
                let sport = if cfg.kind == TunType::Gue { tun::gue_src_port(self.flow_hash(meta)) } else { 0 };
                let t = Tunnel {
                    src,
                    dst: *daddr,
                    dst_mac: nh.mac,
                    src_mac: me,
                    mtu: self.cfg.tun_mtu,
                    id: self.ip_id,
                    encap: tun::encap(&cfg, meta.af, sport),
                };
                match tun::xmit(frame, meta, &t) {
                    Ok(()) => return self.send_tunnelled(frame, usize::from(meta.l3), nh.port, dest, Af::of(daddr)),
                    Err(TunError::Xmit(e)) => Err(e),
                    Err(TunError::TooBig { mtu }) => {
                        return self.refuse(frame, meta, Reason::MtuExceeded, IcmpKind::FragNeeded(mtu))
                    }
                    Err(TunError::TooLong) => return self.drop(Reason::MtuExceeded),
                }
            }
            FwdMethod::Local => Ok(()),
            // FullNAT needs its connection's side entry (`fnat_in`); fragments and ICMP
            // errors of FullNAT connections are not translated.
            FwdMethod::FullNat => return self.drop(Reason::Unsupported),
        };
        match r {
            Ok(()) => Verdict::Transmit { port: nh.port, dest },
            Err(XmitError::TtlExpired) => self.refuse(frame, meta, Reason::TtlExpired, IcmpKind::TimeExceeded),
            Err(XmitError::Bounds) => self.drop(Reason::NoHeadroom),
            Err(XmitError::Fragment) => self.drop(Reason::Unsupported),
        }
    }
}
