//! The SYN proxy of NAT and FullNAT services (Alibaba LVS `ip_vs_synproxy.c`:
//! `ip_vs_synproxy_syn_rcv`, `ip_vs_synproxy_ack_rcv`, `ip_vs_synproxy_synack_rcv`; DPVS
//! `dp_vs_synproxy_*`): a client's SYN is answered by the director with a cookie SYN-ACK and
//! leaves nothing behind; the client's ACK, when its cookie is good, opens the connection and
//! the director sends the real server a SYN of its own with the options the client offered;
//! the server's SYN-ACK is answered by the director and fixes the splice — the offset between
//! the two initial sequence numbers, the two timestamp clocks and the two window scales — that
//! every later segment of the connection goes through. Client data that comes before the
//! server answered is held (one segment) and delivered as the handshake's last ACK; a server
//! that refuses (RST) has the director reset the client.
//!
//! The splice lives beside the connection entry, keyed by its handle, as FullNAT's does.

use alloc::vec::Vec;

use hashbrown::HashMap;

use super::{Director, Verdict};
use crate::addr::from_raw;
use crate::conn::{cf, ConnId};
use crate::error::Reason;
use crate::laddr::ClientAddr;
use crate::proto::tcp::flags;
use crate::synproxy::{self, Cookies, Flow};
use crate::time::Instant;
use crate::wire::{self, field, Frame, PacketMeta};
use crate::xmit::icmp::IcmpKind;
use crate::xmit::seqadj::{self, SeqAdj};
use crate::xmit::synproxy::{self as sx, OptAdj, Segment, TcpOpts};
use crate::xmit::{fnat, set_macs};

/// The window the cookie SYN-ACK and the director's SYN offer (unscaled, as in any SYN).
const SYN_WINDOW: u16 = 65535;
/// The MSS assumed for a SYN without the option (RFC 9293: 536 for IPv4, 1220 for IPv6).
const DEFAULT_MSS_V4: u16 = 536;
const DEFAULT_MSS_V6: u16 = 1220;

/// Counters of the SYN proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynproxyStats {
    /// SYNs answered with a cookie SYN-ACK.
    pub cookies_sent: u64,
    /// ACKs whose cookie was good: connections opened.
    pub cookies_good: u64,
    /// ACKs whose cookie was not (also counted as [`Reason::BadCookie`] drops).
    pub cookies_bad: u64,
    /// Client segments held until the real server answered.
    pub held: u64,
    /// Real servers that refused the director's SYN: the client was reset.
    pub server_resets: u64,
}

/// Where a SYN-proxied connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The cookie was good but the client has sent no data yet (`synproxy_defer`): no SYN to
    /// the server so far.
    Deferred,
    /// The director's SYN went to the server.
    SynSent,
    /// The server answered: segments go through the splice.
    Open,
}

/// One SYN-proxied connection's splice.
#[derive(Clone, Debug)]
struct Splice {
    phase: Phase,
    /// The client's initial sequence number.
    client_isn: u32,
    /// The director's initial sequence number toward the client (the cookie).
    cookie: u32,
    /// The options of the SYN to the server: the client's, as the cookie proved them.
    syn: TcpOpts,
    /// The timestamp value the cookie SYN-ACK sent (the client's echo of it).
    ts_cookie: u32,
    /// The client's latest timestamp value and window field, for the ACK the director sends
    /// the server on its behalf.
    ts_client: u32,
    win_client: u16,
    /// The window scale the director offered the client, when scaling was agreed with it.
    wscale_offered: Option<u8>,
    /// Server → client sequence offset (the cookie minus the server's initial number); the
    /// client's acknowledgements and SACK edges go back by it.
    seq: SeqAdj,
    /// What else changes client → server and server → client.
    c2s: OptAdj,
    s2c: OptAdj,
    /// A client segment waiting for the server.
    held: Option<Vec<u8>>,
}

/// The SYN proxy's cookies, splices and counters.
pub(crate) struct SynproxyState {
    cookies: Cookies,
    conns: HashMap<u32, Splice, ahash::RandomState>,
    stats: SynproxyStats,
}

impl SynproxyState {
    pub(crate) fn new(secret: [u8; 16], hasher: ahash::RandomState) -> Self {
        SynproxyState {
            cookies: Cookies::new(secret),
            conns: HashMap::with_hasher(hasher),
            stats: SynproxyStats::default(),
        }
    }

    /// Drops the splice of a connection that is freed.
    pub(crate) fn forget(&mut self, id: ConnId) {
        self.conns.remove(&id.0);
    }
}

/// Bytes of TCP payload in the segment `meta` describes.
fn payload_len(data: &[u8], meta: &PacketMeta) -> usize {
    let l4 = usize::from(meta.l4);
    let doff = field::byte(data, l4 + field::TCP_DOFF).map_or(0, |b| usize::from(b >> 4) * 4);
    (usize::from(meta.l3) + usize::from(meta.ip_len)).saturating_sub(l4 + doff)
}

impl Director {
    /// A new secret for the SYN proxy's cookies (the application rotates it, say every
    /// minute or two); cookies made with the one before stay good until they age out.
    pub fn set_synproxy_secret(&mut self, secret: [u8; 16]) {
        self.synproxy.cookies.rotate(secret);
    }

    /// The SYN proxy's counters.
    pub fn synproxy_stats(&self) -> &SynproxyStats {
        &self.synproxy.stats
    }

    /// A TCP segment with no connection, for SYN-proxied service `si`: a SYN is answered with a
    /// cookie, an ACK with a good cookie opens the connection, anything else is refused as
    /// without the proxy.
    pub(super) fn synproxy_new(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, si: u32) -> Verdict {
        let f = meta.tcp_flags & (flags::SYN | flags::ACK | flags::RST);
        if f == flags::SYN {
            self.synproxy_syn(now, frame, meta, si)
        } else if f == flags::ACK {
            self.synproxy_ack(now, frame, meta, si)
        } else {
            self.reset(frame, meta)
        }
    }

    /// The MSS the director offers for service `si`: FullNAT leaves room for what it adds.
    fn synproxy_mss(&self, si: u32, meta: &PacketMeta) -> u16 {
        let fullnat = self.svc(si).is_some_and(|s| {
            s.order.iter().any(|d| self.dests.get(*d).is_some_and(|d| d.cfg.fwd == crate::dest::FwdMethod::FullNat))
        });
        let cut = match self.svc(si).map(|s| s.cfg.client_addr) {
            Some(ClientAddr::Toa) if fullnat => fnat::toa(&meta.src, meta.sport).1 as u16,
            Some(ClientAddr::Proxy(v)) if fullnat => {
                let r = wire::proxy::ProxyRepr {
                    version: v,
                    stream: true,
                    src: (meta.src, meta.sport),
                    dst: (meta.dst, meta.dport),
                };
                r.emit().as_bytes().len() as u16
            }
            _ => 0,
        };
        self.cfg.synproxy_mss.saturating_sub(cut).max(synproxy::MSSTAB_V4[0])
    }

    /// `ip_vs_synproxy_syn_rcv`: the cookie SYN-ACK, written over the SYN, back to the client.
    fn synproxy_syn(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, si: u32) -> Verdict {
        let data = frame.data();
        let Some((seq, _)) = seqadj::seq_ack(data, meta) else { return self.drop(Reason::Malformed) };
        let o = sx::parse_opts(data, meta);
        let flow = Flow { client: (meta.src, meta.sport), vip: (meta.dst, meta.dport) };
        let default_mss = if meta.af == crate::Af::V4 { DEFAULT_MSS_V4 } else { DEFAULT_MSS_V6 };
        let cookie = self.synproxy.cookies.issue(&flow, seq, o.mss.unwrap_or(default_mss), now);
        // Without timestamps nothing can carry window scaling and SACK: both are left out, as
        // Linux's cookies leave them (`tcp_clear_options`).
        let ts = o.ts.map(|(tsval, _)| (synproxy::ts_encode(synproxy::ts_clock(now), o.wscale, o.sack), tsval));
        let answer = TcpOpts {
            mss: Some(self.synproxy_mss(si, meta)),
            wscale: ts.and(o.wscale).map(|_| self.cfg.synproxy_wscale.min(synproxy::MAX_WSCALE)),
            sack: ts.is_some() && o.sack,
            ts,
        };
        let mut buf = [0u8; 24];
        let n = answer.emit(&mut buf);
        let seg = Segment {
            src: (meta.dst, meta.dport),
            dst: (meta.src, meta.sport),
            seq: cookie,
            ack: seq.wrapping_add(1),
            flags: flags::SYN | flags::ACK,
            window: SYN_WINDOW,
            opts: buf.get(..n).unwrap_or_default(),
        };
        let Some(nh) = self.neigh.route(&meta.src) else { return self.drop(Reason::UnknownNeighbour) };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        if seg.emit(frame, meta).and_then(|()| set_macs(frame.data_mut(), nh.mac, me)).is_err() {
            return self.drop(Reason::Malformed);
        }
        self.synproxy.stats.cookies_sent += 1;
        Verdict::Transmit { port: nh.port, dest: None }
    }

    /// `ip_vs_synproxy_ack_rcv`: a good cookie schedules the connection and sends the server
    /// the director's SYN (unless deferred until data); a bad one is dropped unanswered.
    fn synproxy_ack(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, si: u32) -> Verdict {
        let data = frame.data();
        let Some((seq, ack)) = seqadj::seq_ack(data, meta) else { return self.drop(Reason::Malformed) };
        let flow = Flow { client: (meta.src, meta.sport), vip: (meta.dst, meta.dport) };
        let Some(mss) = self.synproxy.cookies.check(&flow, seq, ack, now) else {
            self.synproxy.stats.cookies_bad += 1;
            return self.drop(Reason::BadCookie);
        };
        let o = sx::parse_opts(data, meta);
        let (wscale, sack) = o.ts.map_or((None, false), |(_, tsecr)| synproxy::ts_decode(tsecr));
        let payload = payload_len(data, meta) > 0;
        let mut sp = Splice {
            phase: Phase::SynSent,
            client_isn: seq.wrapping_sub(1),
            cookie: ack.wrapping_sub(1),
            syn: TcpOpts { mss: Some(mss), wscale, sack, ts: o.ts.map(|(tsval, _)| (tsval, 0)) },
            ts_cookie: o.ts.map_or(0, |t| t.1),
            ts_client: o.ts.map_or(0, |t| t.0),
            win_client: sx::window(data, meta),
            wscale_offered: wscale.map(|_| self.cfg.synproxy_wscale.min(synproxy::MAX_WSCALE)),
            seq: SeqAdj::NONE,
            c2s: OptAdj::default(),
            s2c: OptAdj::default(),
            held: payload.then(|| data.to_vec()),
        };
        let id = match self.schedule(now, si, data, meta) {
            Ok(id) => id,
            Err(Reason::NoDest) => return self.refuse(frame, meta, Reason::NoDest, IcmpKind::PortUnreachable),
            Err(r) => return self.drop(r),
        };
        self.synproxy.stats.cookies_good += 1;
        if let Some(c) = self.conns.get_mut(id) {
            c.flags |= cf::SYNPROXY;
        }
        if payload {
            self.synproxy.stats.held += 1;
        }
        if self.cfg.synproxy_defer && !payload {
            sp.phase = Phase::Deferred;
            self.synproxy.conns.insert(id.0, sp);
            return self.drop(Reason::SynproxyHeld);
        }
        self.synproxy.conns.insert(id.0, sp);
        self.synproxy_send_syn(now, frame, meta, id)
    }

    /// The director's SYN to the server, written over a client segment of connection `id`
    /// (addressed as the client's, so the connection's method rewrites it as any).
    fn synproxy_send_syn(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let Some(sp) = self.synproxy.conns.get_mut(&id.0) else { return self.drop(Reason::DestUnavailable) };
        sp.phase = Phase::SynSent;
        let mut buf = [0u8; 24];
        let n = sp.syn.emit(&mut buf);
        let seg = Segment {
            src: (meta.src, meta.sport),
            dst: (meta.dst, meta.dport),
            seq: sp.client_isn,
            ack: 0,
            flags: flags::SYN,
            window: SYN_WINDOW,
            opts: buf.get(..n).unwrap_or_default(),
        };
        self.synproxy_emit(now, frame, meta, id, &seg)
    }

    /// Writes `seg` (a client → virtual service segment) over the frame and sends it along
    /// connection `id` as a client packet.
    fn synproxy_emit(
        &mut self,
        now: Instant,
        frame: &mut Frame,
        meta: &PacketMeta,
        id: ConnId,
        seg: &Segment<'_>,
    ) -> Verdict {
        if seg.emit(frame, meta).is_err() {
            return self.drop(Reason::Malformed);
        }
        match wire::parse(frame.data()) {
            Ok(m) => self.synproxy_client(now, frame, &m, id),
            Err(_) => self.drop(Reason::Malformed),
        }
    }

    /// A client segment of SYN-proxied connection `id`: spliced once the server answered;
    /// before, the first data segment is held (and sends a deferred connection's SYN), and any
    /// other segment — the client retransmitting — sends the server the director's SYN again
    /// (the client's retransmissions drive the director's).
    pub(super) fn synproxy_client(
        &mut self,
        now: Instant,
        frame: &mut Frame,
        meta: &PacketMeta,
        id: ConnId,
    ) -> Verdict {
        let Some(sp) = self.synproxy.conns.get(&id.0) else { return self.in_path(now, frame, meta, id) };
        let (phase, seq, adj, held) = (sp.phase, sp.seq, sp.c2s, sp.held.is_some());
        let f = meta.tcp_flags;
        match phase {
            Phase::Open => {
                let data = frame.data_mut();
                if seqadj::adjust(data, meta, &SeqAdj::NONE, &seq, false)
                    .and_then(|()| sx::adjust(data, meta, &adj))
                    .is_err()
                {
                    return self.drop(Reason::Malformed);
                }
                self.in_path(now, frame, meta, id)
            }
            _ if f & flags::SYN != 0 && f & flags::ACK == 0 => self.in_path(now, frame, meta, id),
            Phase::Deferred | Phase::SynSent => {
                if f & flags::RST != 0 {
                    self.expire_now(id);
                    return self.drop(Reason::SynproxyHeld);
                }
                let data = frame.data();
                if payload_len(data, meta) == 0 {
                    if phase == Phase::Deferred {
                        return self.drop(Reason::SynproxyHeld);
                    }
                } else if !held {
                    let copy = data.to_vec();
                    if let Some(sp) = self.synproxy.conns.get_mut(&id.0) {
                        sp.held = Some(copy);
                    }
                    self.synproxy.stats.held += 1;
                    // The SYN is on its way: only a deferred connection sends it now.
                    if phase == Phase::SynSent {
                        return self.drop(Reason::SynproxyHeld);
                    }
                }
                self.synproxy_send_syn(now, frame, meta, id)
            }
        }
    }

    /// A server segment of SYN-proxied connection `id` (`fullnat` says which reply path it
    /// takes): spliced once open; before, the server's SYN-ACK fixes the splice and is
    /// answered with the held client segment or an ACK, and its RST resets the client.
    pub(super) fn synproxy_server(
        &mut self,
        now: Instant,
        frame: &mut Frame,
        meta: &PacketMeta,
        id: ConnId,
        fullnat: bool,
    ) -> Verdict {
        let Some(sp) = self.synproxy.conns.get(&id.0) else { return self.reply(now, frame, meta, id, fullnat) };
        let (phase, seq, adj, isn) = (sp.phase, sp.seq, sp.s2c, sp.client_isn);
        let f = meta.tcp_flags;
        if phase == Phase::Open {
            let data = frame.data_mut();
            if seqadj::adjust(data, meta, &seq, &SeqAdj::NONE, false)
                .and_then(|()| sx::adjust(data, meta, &adj))
                .is_err()
            {
                return self.drop(Reason::Malformed);
            }
            return self.reply(now, frame, meta, id, fullnat);
        }
        let Some((sseq, sack)) = seqadj::seq_ack(frame.data(), meta) else { return self.drop(Reason::Malformed) };
        if f & flags::RST != 0 && phase == Phase::SynSent {
            return self.synproxy_refused(now, frame, meta, id);
        }
        if f & (flags::SYN | flags::ACK) != (flags::SYN | flags::ACK) || sack != isn.wrapping_add(1) {
            return self.drop(Reason::SynproxyHeld);
        }
        let o = sx::parse_opts(frame.data(), meta);
        let Some(sp) = self.synproxy.conns.get_mut(&id.0) else { return self.drop(Reason::DestUnavailable) };
        let off = sp.cookie.wrapping_sub(sseq);
        sp.seq = SeqAdj { pos: 0, before: off, after: off };
        let ts_off = match (sp.syn.ts, o.ts) {
            (Some(_), Some((tsval, _))) => sp.ts_cookie.wrapping_sub(tsval),
            _ => 0,
        };
        // Window shifts as each end applies them: the client's agreed with the director, the
        // server's agreed with the director's SYN (which offered the client's).
        let (c_snd, c_rcv) = match (sp.syn.wscale, sp.wscale_offered) {
            (Some(c), Some(d)) => (c, d),
            _ => (0, 0),
        };
        let (s_snd, s_rcv) = match (sp.syn.wscale, o.wscale) {
            (Some(c), Some(s)) => (s.min(synproxy::MAX_WSCALE), c),
            _ => (0, 0),
        };
        sp.c2s = OptAdj { tsval: 0, tsecr: ts_off, win_from: c_snd, win_to: s_rcv };
        sp.s2c = OptAdj { tsval: ts_off, tsecr: 0, win_from: s_snd, win_to: c_rcv };
        sp.phase = Phase::Open;
        let held = sp.held.take();
        let ack_opts = sp.syn.ts.and(o.ts).map(|(tsval, _)| (sp.ts_client, tsval.wrapping_add(ts_off)));
        let (isn, cookie, win) = (sp.client_isn, sp.cookie, sp.win_client);
        self.reply_seen(now, meta, id);
        if fullnat {
            self.fnat_server_isn(id, sseq);
        }
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::DestUnavailable) };
        let (af, a) = (c.af(), self.conns.addrs(c));
        let (client, vip) = ((from_raw(af, &a.caddr), c.cport), (from_raw(af, &a.vaddr), c.vport));
        if let Some(h) = held {
            frame.load(frame.headroom(), &h);
            return match wire::parse(frame.data()) {
                Ok(m) => self.synproxy_client(now, frame, &m, id),
                Err(_) => self.drop(Reason::Malformed),
            };
        }
        let mut buf = [0u8; 24];
        let n = TcpOpts { ts: ack_opts, ..TcpOpts::default() }.emit(&mut buf);
        let seg = Segment {
            src: client,
            dst: vip,
            seq: isn.wrapping_add(1),
            ack: cookie.wrapping_add(1),
            flags: flags::ACK,
            window: win,
            opts: buf.get(..n).unwrap_or_default(),
        };
        self.synproxy_emit(now, frame, meta, id, &seg)
    }

    /// The server refused the director's SYN: its RST is counted as a reply (a refused SYN)
    /// and becomes the client's reset, from the virtual service, in the director's numbers.
    fn synproxy_refused(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId) -> Verdict {
        let cookie = self.synproxy.conns.get(&id.0).map_or(0, |s| s.cookie);
        self.reply_seen(now, meta, id);
        self.synproxy.stats.server_resets += 1;
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::DestUnavailable) };
        let (af, a) = (c.af(), self.conns.addrs(c));
        let (client, vip) = ((from_raw(af, &a.caddr), c.cport), (from_raw(af, &a.vaddr), c.vport));
        self.expire_now(id);
        let seg = Segment {
            src: vip,
            dst: client,
            seq: cookie.wrapping_add(1),
            ack: 0,
            flags: flags::RST,
            window: 0,
            opts: &[],
        };
        let Some(nh) = self.neigh.route(&client.0) else { return self.drop(Reason::UnknownNeighbour) };
        let Some(me) = self.port_mac(nh.port) else { return self.drop(Reason::UnknownPort) };
        if seg.emit(frame, meta).and_then(|()| set_macs(frame.data_mut(), nh.mac, me)).is_err() {
            return self.drop(Reason::Malformed);
        }
        Verdict::Transmit { port: nh.port, dest: None }
    }

    /// A server's reply on its usual path: FullNAT's or NAT's.
    fn reply(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, id: ConnId, fullnat: bool) -> Verdict {
        if fullnat {
            self.fnat_out(now, frame, meta, id)
        } else {
            self.out_path(now, frame, meta, id)
        }
    }
}

#[cfg(test)]
#[path = "synproxy_tests.rs"]
mod tests;
