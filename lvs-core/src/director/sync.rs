//! The director's side of connection sync (`ip_vs_sync.c`, with [`crate::sync`] holding the
//! formats and the send queue): daemons started and stopped, the master's record of a packet's
//! connection (`ip_vs_sync_conn`), the backup's application of received records
//! (`ip_vs_proc_conn`), and the full resync the kernel does not have.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::Director;
use crate::addr::{from_raw, raw, Af, Proto, ServiceKey};
use crate::conn::table::InKey;
use crate::conn::{cf, Addrs, Conn, ConnId, NIL};
use crate::dest::{DestId, FwdMethod};
use crate::error::Error;
use crate::persist::sip::{CallId, PersistEngine};
use crate::proto::{sctp, tcp::TcpState};
use crate::sync::wire::{self, flags as kf, Abort, Entry, MessageError, Record, Skip, Version};
use crate::sync::{self, Candidate, DaemonConfig, Datagram, Mark, Master, Role, SyncParams};
use crate::time::Instant;
use crate::wire::ipproto;

/// The kernel's timeout for a synced template that came without one (3 minutes).
const TEMPLATE_TIMEOUT_S: u32 = 180;
/// The longest timeout an entry can hold (milliseconds in a `u32`).
const MAX_TIMEOUT_S: u32 = u32::MAX / 1000;
/// How often a joining backup repeats its resync request until a master answers.
const REQUEST_RETRY_NS: u64 = 1_000_000_000;
/// How many times it asks.
const REQUEST_TRIES: u8 = 5;

/// Beyond the kernel: the three control messages of the full resync. Each is a version-1
/// header with a non-zero spare field, which a kernel backup reads as an empty version-0
/// message and ignores (the `header-spare` case of the recorded traces).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncMessage {
    /// A backup asks for the whole table.
    Request,
    /// A master starts streaming it.
    Start,
    /// A master has sent every entry.
    Done,
}

impl ResyncMessage {
    /// The two bytes in the spare field that name the message.
    fn tag(self) -> [u8; 2] {
        match self {
            ResyncMessage::Request => *b"RQ",
            ResyncMessage::Start => *b"RS",
            ResyncMessage::Done => *b"RD",
        }
    }

    /// The datagram for `syncid`.
    pub fn encode(self, syncid: u8) -> Vec<u8> {
        let [a, b] = self.tag();
        alloc::vec![0, syncid, 0, wire::V1_HEADER as u8, 0, 1, a, b]
    }

    /// The message and its syncid, if `buf` is one.
    pub fn decode(buf: &[u8]) -> Option<(ResyncMessage, u8)> {
        let [0, syncid, 0, 8, 0, 1, a, b] = *buf else { return None };
        [ResyncMessage::Request, ResyncMessage::Start, ResyncMessage::Done]
            .into_iter()
            .find(|m| m.tag() == [a, b])
            .map(|m| (m, syncid))
    }
}

/// What a backup did with one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Records that made or updated an entry.
    pub applied: usize,
    /// Records skipped (unknown protocol, invalid state, persistence engine, mandatory option,
    /// the expiry of an entry already moved to another server, a full table).
    pub skipped: usize,
    /// Why the rest of the message was dropped, if it was.
    pub aborted: Option<Abort>,
}

/// Why a whole sync datagram changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefused {
    /// No backup daemon runs (a master still answers resync requests).
    #[error("no backup daemon")]
    NotBackup,
    /// The header was refused.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// Another sync id than the backup's (which is not 0).
    #[error("syncid {0} is not ours")]
    Syncid(u8),
}

/// Counters of both sides of sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Master: records queued.
    pub sent_records: u64,
    /// Master: datagrams handed out.
    pub sent_messages: u64,
    /// Master: full messages dropped at `sync_qlen_max`.
    pub queue_full: u64,
    /// Master: IPv6 entries a version-0 message cannot carry.
    pub not_v0: u64,
    /// Backup: datagrams taken.
    pub messages: u64,
    /// Backup: entries made.
    pub created: u64,
    /// Backup: entries updated.
    pub updated: u64,
    /// Backup: entries made without a matching real server (kept, unbound, as the kernel does).
    pub unbound: u64,
    /// Backup: records skipped.
    pub skipped: u64,
    /// Backup: messages cut short.
    pub aborted: u64,
    /// Datagrams refused whole (header, syncid, no backup).
    pub refused: u64,
    /// Master: resync requests answered.
    pub resync_requests: u64,
    /// Master: entries streamed by a resync.
    pub resync_records: u64,
    /// Backup: resyncs completed.
    pub resyncs_done: u64,
}

impl SyncStats {
    /// Adds a master's send-side counters.
    fn add_master(&mut self, m: &Master) {
        let ms = m.stats();
        self.sent_records += ms.records;
        self.sent_messages += ms.messages;
        self.queue_full += ms.queue_full;
        self.not_v0 += ms.not_v0;
    }
}

/// The full resync a master is streaming.
struct Stream {
    phase: Phase,
    /// The next slab slot to look at.
    cursor: usize,
    /// Credit in record-nanoseconds (one record costs 1e9 × 1 / rate seconds).
    credit: u64,
    last: u64,
}

/// Where a resync stream stands: templates first (so a backup has them before their
/// connections), then connections, then every record sent and only the `Done` message left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Templates,
    Connections,
    Sent,
}

/// The sync daemons of a director and their state.
#[derive(Default)]
pub(crate) struct SyncState {
    params: SyncParams,
    master: Option<(DaemonConfig, Master)>,
    backup: Option<DaemonConfig>,
    stats: SyncStats,
    control: VecDeque<Datagram>,
    stream: Option<Stream>,
    /// A backup's pending resync request: when to ask next, and how many more times.
    request: Option<(u64, u8)>,
}

impl Director {
    /// Starts a sync daemon (`ipvsadm --start-daemon`); `mtu` is that of the sync interface
    /// (a backup reads messages up to it). A director may be master and backup at once. A
    /// backup with [`SyncParams::resync_rate`] set asks the masters for their whole table.
    ///
    /// # Errors
    /// [`Error::DaemonRunning`] when that role already runs.
    pub fn start_sync(&mut self, role: Role, cfg: &DaemonConfig, mtu: u16) -> Result<(), Error> {
        let cfg = cfg.resolved(role, mtu);
        let s = &mut self.sync;
        match role {
            Role::Master if s.master.is_none() => {
                let m = Master::new(cfg.syncid, cfg.maxlen, s.params.ports, s.params.qlen_max);
                s.master = Some((cfg, m));
            }
            Role::Backup if s.backup.is_none() => {
                s.backup = Some(cfg);
                if s.params.resync_rate > 0 {
                    s.request = Some((0, REQUEST_TRIES));
                }
            }
            _ => return Err(Error::DaemonRunning(role.name())),
        }
        Ok(())
    }

    /// Stops a sync daemon (`ipvsadm --stop-daemon`). A stopping master drops what it had not
    /// sent, as the kernel does.
    ///
    /// # Errors
    /// [`Error::NoDaemon`] when that role does not run.
    pub fn stop_sync(&mut self, role: Role) -> Result<(), Error> {
        let s = &mut self.sync;
        let was = match role {
            Role::Master => {
                s.stream = None;
                // A stopped master's counters are kept.
                s.master.take().map(|(_, m)| s.stats.add_master(&m)).is_some()
            }
            Role::Backup => {
                s.request = None;
                s.backup.take().is_some()
            }
        };
        if was {
            Ok(())
        } else {
            Err(Error::NoDaemon(role.name()))
        }
    }

    /// The daemon running in `role`, with its settings in force (`ipvsadm -L --daemon`).
    pub fn sync_daemon(&self, role: Role) -> Option<&DaemonConfig> {
        match role {
            Role::Master => self.sync.master.as_ref().map(|(c, _)| c),
            Role::Backup => self.sync.backup.as_ref(),
        }
    }

    /// The sync sysctls in force.
    pub fn sync_params(&self) -> &SyncParams {
        &self.sync.params
    }

    /// Sets the sync sysctls. `sync_ports` and `sync_qlen_max` take effect when a master
    /// (re)starts, as in the kernel.
    ///
    /// # Errors
    /// [`Error::BadSyncParam`] for a value out of range.
    pub fn set_sync_params(&mut self, p: SyncParams) -> Result<(), Error> {
        p.validate()?;
        self.sync.params = p;
        Ok(())
    }

    /// Sync counters.
    pub fn sync_stats(&self) -> SyncStats {
        let mut s = self.sync.stats;
        if let Some((_, m)) = &self.sync.master {
            s.add_master(m);
        }
        s
    }

    /// The next sync datagram to send at `now`, if any: resync control messages, full
    /// messages, a partly filled message that has waited 2 s, and the next part of a resync
    /// stream. Call it until it says `None` after every burst and tick.
    pub fn poll_sync(&mut self, now: Instant) -> Option<Datagram> {
        let t = now.as_nanos();
        if let Some((at, left)) = self.sync.request {
            if t >= at {
                let syncid = self.sync.backup.as_ref().map_or(0, |b| b.syncid);
                self.sync.request = (left > 1).then_some((t + REQUEST_RETRY_NS, left - 1));
                self.sync.control.push_back(Datagram {
                    from: Role::Backup,
                    socket: 0,
                    bytes: ResyncMessage::Request.encode(syncid),
                });
            }
        }
        if let Some(d) = self.sync.control.pop_front() {
            return Some(d);
        }
        self.stream_resync(t);
        let (_, m) = self.sync.master.as_mut()?;
        let d = m.poll(t);
        if d.is_none() && self.sync.stream.as_ref().is_some_and(|s| s.phase == Phase::Sent) {
            self.sync.stream = None;
            let syncid = self.sync.master.as_ref().map_or(0, |(c, _)| c.syncid);
            return Some(Datagram { from: Role::Master, socket: 0, bytes: ResyncMessage::Done.encode(syncid) });
        }
        d
    }

    /// When sync next needs [`Director::poll_sync`]: a partly filled message falling due, the
    /// next resync credit, a resync request to repeat.
    pub(super) fn sync_deadline(&self) -> Option<u64> {
        let s = &self.sync;
        let flush = s.master.as_ref().and_then(|(_, m)| m.next_deadline());
        let stream = s.stream.as_ref().map(|st| {
            let rate = u64::from(s.params.resync_rate.max(1));
            st.last + 1_000_000_000u64.saturating_sub(st.credit) / rate
        });
        let request = s.request.map(|(at, _)| at);
        [flush, stream, request].into_iter().flatten().min()
    }

    /// The master's step for a packet on `id` with `pkts` client packets so far
    /// (`ip_vs_sync_conn`): the connection if it is due, then its template with the template's
    /// own count. Version 0 sends a template only along with its connection.
    pub(super) fn sync_conn(&mut self, now: Instant, id: ConnId, pkts: u32) {
        let p = self.sync.params;
        let now_ms = (now.as_nanos() / 1_000_000) as u32;
        let (mut cur, mut pkts) = (id, pkts);
        loop {
            let Some(c) = self.conns.get(cur) else { return };
            // FullNAT entries are not synced: the kernel's formats cannot carry the local
            // address and sequence offsets a backup would need.
            let skip = c.flags & (cf::ONE_PACKET | cf::FULLNAT) != 0 || (p.version == Version::V0 && c.af() == Af::V6);
            let due = !skip && self.sync_needed(&p, cur, pkts, now_ms);
            if due {
                self.queue_record(now, cur);
            } else if p.version == Version::V0 {
                return;
            }
            let Some(c) = self.conns.get(cur) else { return };
            if c.control() == NIL {
                return;
            }
            let next = ConnId(c.control());
            pkts = match self.conns.get_mut(next) {
                Some(t) if t.is_template() => {
                    t.in_pkts = t.in_pkts.wrapping_add(1);
                    t.in_pkts
                }
                Some(_) => p.threshold,
                None => return,
            };
            cur = next;
        }
    }

    fn sync_needed(&mut self, p: &SyncParams, id: ConnId, pkts: u32, now_ms: u32) -> bool {
        let Some(c) = self.conns.get(id) else { return false };
        let persistent = c.control() != NIL && self.conns.get(ConnId(c.control())).is_some_and(Conn::is_template);
        let cand = Candidate {
            template: c.is_template(),
            persistent,
            proto: c.proto,
            state: c.state,
            timeout_ms: c.timeout_ms,
        };
        let mut mark = Mark { old_state: c.old_state(), endtime: self.conns.sync_end(id) };
        let yes = sync::needed(p, &cand, &mut mark, pkts, now_ms);
        if let Some(c) = self.conns.get_mut(id) {
            c.set_old_state(mark.old_state);
        }
        self.conns.set_sync_end(id, mark.endtime);
        yes
    }

    /// Puts entry `id` into the master's current message. A SIP template carries its Call-ID
    /// and the engine's name as the `PE_DATA` and `PE_NAME` options (`ip_vs_sync_conn_v1`;
    /// version 0 has no room for them and sends the template without).
    fn queue_record(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.get(id) else { return };
        let call_id = self.sip.get(id).copied();
        let mut rec = self.record_of(c);
        if let Some(call_id) = &call_id {
            rec.pe_data = Some(call_id.as_bytes());
            rec.pe_name = Some(PersistEngine::Sip.name().as_bytes());
        }
        let version = self.sync.params.version;
        if let Some((_, m)) = self.sync.master.as_mut() {
            let socket = id.0 as usize % usize::from(m.sockets());
            m.add(now.as_nanos(), socket, version, &rec);
        }
    }

    /// An entry as a record: the kernel's flag bits, the state, the timeout in seconds, the
    /// firewall mark of a fwmark service.
    fn record_of(&self, c: &Conn) -> Record<'static> {
        let (af, a) = (c.af(), self.conns.addrs(c));
        let mut f = match c.fwd() {
            FwdMethod::Masq => kf::MASQ,
            FwdMethod::Local => kf::LOCALNODE,
            FwdMethod::Tunnel => kf::TUNNEL,
            FwdMethod::Route => kf::DROUTE,
            // Never sent (see `sync_conn`); a template of a FullNAT server only names the
            // server, which the backup looks up by address.
            FwdMethod::FullNat => kf::MASQ,
        };
        for (ours, theirs) in [
            (cf::NOOUTPUT, kf::NOOUTPUT),
            (cf::INACTIVE, kf::INACTIVE),
            (cf::TEMPLATE, kf::TEMPLATE),
            (cf::ONE_PACKET, kf::ONE_PACKET),
            (cf::SYNC, kf::SYNC),
        ] {
            if c.flags & ours != 0 {
                f |= theirs;
            }
        }
        let fwmark = c
            .dest_id()
            .and_then(|d| self.dests.get(d))
            .and_then(|d| self.svc(d.svc))
            .and_then(|s| s.cfg.key.fwmark())
            .unwrap_or(0);
        Record {
            proto: c.proto,
            flags: f,
            state: u16::from(c.state),
            caddr: from_raw(af, &a.caddr),
            vaddr: from_raw(af, &a.vaddr),
            daddr: from_raw(c.daf(), &a.daddr),
            cport: c.cport,
            vport: c.vport,
            dport: c.dport,
            fwmark,
            timeout: c.timeout_ms / 1000,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    }

    /// Takes a received sync datagram at `now` (`ip_vs_process_message`): a backup applies its
    /// records; a master with resync enabled answers a resync request.
    ///
    /// # Errors
    /// [`SyncRefused`] when the whole datagram changed nothing; it is counted.
    pub fn handle_sync(&mut self, now: Instant, buf: &[u8]) -> Result<SyncOutcome, SyncRefused> {
        if let Some((m, syncid)) = ResyncMessage::decode(buf) {
            self.resync_message(now, m, syncid);
            return Ok(SyncOutcome::default());
        }
        let r = self.apply_message(now, buf);
        match &r {
            Ok(o) => {
                self.sync.stats.messages += 1;
                self.sync.stats.aborted += u64::from(o.aborted.is_some());
            }
            Err(_) => self.sync.stats.refused += 1,
        }
        r
    }

    fn apply_message(&mut self, now: Instant, buf: &[u8]) -> Result<SyncOutcome, SyncRefused> {
        let Some(b) = self.sync.backup.as_ref() else { return Err(SyncRefused::NotBackup) };
        let mine = b.syncid;
        // The kernel receives into a buffer of maxlen bytes: the rest of a longer datagram is
        // cut off, and the size check then decides.
        let buf = &buf[..buf.len().min(usize::from(b.maxlen))];
        let msg = wire::parse(buf)?;
        if mine != 0 && msg.syncid != mine {
            return Err(SyncRefused::Syncid(msg.syncid));
        }
        let mut out = SyncOutcome::default();
        for e in msg.entries() {
            match e {
                Ok(Entry::Record(r)) => match self.apply_record(now, &r, msg.version) {
                    Ok(()) => out.applied += 1,
                    Err(()) => out.skipped += 1,
                },
                Ok(Entry::Skip(Skip::MandatoryOption)) => out.skipped += 1,
                Err(a) => out.aborted = Some(a),
            }
        }
        self.sync.stats.skipped += out.skipped as u64;
        Ok(out)
    }

    /// One record (`ip_vs_proc_sync_conn` checks, then `ip_vs_proc_conn`).
    fn apply_record(&mut self, now: Instant, r: &Record<'_>, version: Version) -> Result<(), ()> {
        let mut kflags = match version {
            Version::V1 => r.flags & kf::BACKUP_MASK,
            Version::V0 => r.flags & !kf::HASHED,
        } | kf::SYNC;
        let template = kflags & kf::TEMPLATE != 0;
        if !template {
            let states = match r.proto {
                ipproto::TCP => TcpState::COUNT as u16,
                ipproto::UDP => 1,
                ipproto::SCTP => sctp::STATES,
                _ => return Err(()),
            };
            if r.state >= states {
                return Err(());
            }
        }
        // `ip_vs_conn_fill_param_sync`: engine data (when not empty) needs the name of an
        // engine this director has — "no engine found" otherwise, "Invalid PE parameters"
        // without a name — and the record is skipped. A kernel master sends it with templates
        // only; a connection record that carries it is applied as any other here (a kernel
        // backup would file a new one by Call-ID, where no packet looks for it).
        let call_id = match (r.pe_data.filter(|d| !d.is_empty()), r.pe_name) {
            (None, _) => None,
            (Some(_), None) => return Err(()),
            (Some(data), Some(name)) => {
                let engine = core::str::from_utf8(name).ok().and_then(PersistEngine::by_name).ok_or(())?;
                match engine {
                    PersistEngine::Sip if template => Some(CallId::new(data).ok_or(())?),
                    PersistEngine::Sip => None,
                }
            }
        };
        let v6 = r.is_v6();
        let key = InKey {
            v6,
            tmpl: template,
            proto: r.proto,
            caddr: raw(&r.caddr),
            cport: r.cport,
            vaddr: raw(&r.vaddr),
            vport: r.vport,
        };
        let mut found = match &call_id {
            Some(c) => self.sip.find(&self.conns, &key, c.as_bytes()),
            None => self.conns.find_in(&key),
        };
        if let (false, Some(id)) = (template, found) {
            let moved =
                self.conns.get(id).is_some_and(|c| c.dport != r.dport || self.conns.addrs(c).daddr != raw(&r.daddr));
            if moved {
                if kflags & kf::INACTIVE != 0 {
                    // The expiry of an entry that was already replaced.
                    return Err(());
                }
                self.expire_now(id);
                found = None;
            }
        }
        let id = match found {
            Some(id) => {
                self.update_synced(id, kflags, template);
                self.sync.stats.updated += 1;
                id
            }
            None => {
                let dest = self.find_synced_dest(r, kflags);
                if dest.is_none() {
                    self.sync.stats.unbound += 1;
                }
                kflags &= !kf::HASHED;
                let (mut c, a) = self.synced_conn(r, kflags, dest);
                if call_id.is_some() {
                    c.flags = (c.flags & !cf::IN_HASHED) | cf::PE_SIP;
                }
                let id = self.insert(c, &a).ok_or(())?;
                if let Some(c) = call_id {
                    self.sip.insert(id, c);
                }
                self.sync.stats.created += 1;
                id
            }
        };
        let threshold = self.sync.params.threshold;
        let timeouts = self.timeouts;
        let Some(c) = self.conns.get_mut(id) else { return Err(()) };
        let was_half_open = super::defense::half_open(c);
        c.in_pkts = threshold;
        c.state = r.state as u8;
        let is_half_open = super::defense::half_open(c);
        c.set_old_state(c.state);
        let secs = if r.timeout != 0 {
            r.timeout.min(MAX_TIMEOUT_S)
        } else if template {
            TEMPLATE_TIMEOUT_S
        } else {
            match r.proto {
                ipproto::TCP => timeouts.tcp[usize::from(c.state)],
                ipproto::UDP => timeouts.udp,
                _ => sctp::timeout(c.state),
            }
        };
        c.timeout_ms = secs * 1000;
        self.conns.arm(id, crate::time::after_ms(now, secs.saturating_mul(1000)));
        self.count_half_open(was_half_open, is_half_open);
        Ok(())
    }

    /// An entry the backup already has: its INACTIVE bit follows the record, moving the
    /// server's counters; an unbound one tries to bind (`ip_vs_try_bind_dest`).
    fn update_synced(&mut self, id: ConnId, kflags: u32, template: bool) {
        let Some(c) = self.conns.get_mut(id) else { return };
        let inactive = kflags & kf::INACTIVE != 0;
        if inactive != (c.flags & cf::INACTIVE != 0) {
            if let (false, Some(d)) = (template, c.dest_id().and_then(|d| self.dests.get_mut(d))) {
                if inactive {
                    d.active = d.active.saturating_sub(1);
                    d.inactive += 1;
                } else {
                    d.inactive = d.inactive.saturating_sub(1);
                    d.active += 1;
                }
            }
            c.flags ^= cf::INACTIVE;
            if let (false, Some(d)) = (template, c.dest_id()) {
                self.counts_moved(d);
            }
        }
        let Some(c) = self.conns.get(id) else { return };
        if c.dest != NIL {
            return;
        }
        let (af, c) = (c.af(), c.clone());
        let r = self.record_of(&c);
        let Some(dest) = self.find_synced_dest(&r, kflags) else { return };
        let own = self.conn_flags(dest, af);
        let Some(c) = self.conns.get_mut(id) else { return };
        c.dest = dest.0;
        c.flags = (c.flags & !(cf::FWD_MASK | cf::NOOUTPUT)) | (own & (cf::FWD_MASK | cf::NOOUTPUT));
        let c = c.clone();
        self.bind_dest(&c);
    }

    /// The real server a record names (`ip_vs_find_dest`): the service by fwmark, then by
    /// protocol, address and port, then port 0; in it the server by address and port — port 0
    /// first for a fwmark service not forwarded by NAT.
    fn find_synced_dest(&self, r: &Record<'_>, kflags: u32) -> Option<DestId> {
        let af = Af::of(&r.vaddr);
        let mut si = None;
        if r.fwmark != 0 {
            si = self.svc_index.get(&ServiceKey::Fwmark { mark: r.fwmark, af }).copied();
        }
        if si.is_none() {
            let proto = Proto::from_number(r.proto)?;
            si = self
                .svc_index
                .get(&ServiceKey::Inet { proto, addr: r.vaddr, port: r.vport })
                .or_else(|| self.svc_index.get(&ServiceKey::Inet { proto, addr: r.vaddr, port: 0 }))
                .copied();
        }
        let svc = self.svc(si?)?;
        let port = if r.fwmark != 0 && kflags & kf::FWD_MASK != kf::MASQ { 0 } else { r.dport };
        let lookup = |p: u16| {
            svc.order.iter().copied().find(|d| {
                self.dests.get(*d).is_some_and(|d| d.cfg.endpoint.addr == r.daddr && d.cfg.endpoint.port == p)
            })
        };
        lookup(port).or_else(|| lookup(port ^ r.dport))
    }

    /// A new entry for a record (`ip_vs_conn_new` from a sync message): a bound entry takes its
    /// forwarding method from the local server, an unbound one keeps the master's.
    fn synced_conn(&self, r: &Record<'_>, kflags: u32, dest: Option<DestId>) -> (Conn, Addrs) {
        let af = Af::of(&r.caddr);
        let template = kflags & kf::TEMPLATE != 0;
        let mut flags = cf::SYNC | cf::IN_HASHED;
        let fwd = match dest {
            Some(d) => {
                let own = self.conn_flags(d, af);
                flags |= own & (cf::FWD_MASK | cf::NOOUTPUT | cf::V6 | cf::DEST_V6);
                if template {
                    flags |= own & cf::INACTIVE;
                }
                self.dests.get(d).map_or(FwdMethod::Route, |d| d.cfg.fwd)
            }
            None => {
                let fwd = match kflags & kf::FWD_MASK {
                    kf::MASQ => FwdMethod::Masq,
                    kf::LOCALNODE => FwdMethod::Local,
                    kf::TUNNEL => FwdMethod::Tunnel,
                    _ => FwdMethod::Route,
                };
                flags |= Conn::fwd_bits(fwd);
                if kflags & kf::NOOUTPUT != 0 {
                    flags |= cf::NOOUTPUT;
                }
                if af == Af::V6 {
                    flags |= cf::V6 | cf::DEST_V6;
                }
                fwd
            }
        };
        if kflags & kf::INACTIVE != 0 {
            flags |= cf::INACTIVE;
        }
        if template {
            flags |= cf::TEMPLATE;
        } else if fwd == FwdMethod::Masq {
            flags |= cf::OUT_HASHED;
        }
        let a = Addrs { caddr: raw(&r.caddr), vaddr: raw(&r.vaddr), daddr: raw(&r.daddr) };
        let c = Conn {
            cport: r.cport,
            vport: r.vport,
            dport: r.dport,
            proto: r.proto,
            state: r.state as u8,
            flags,
            dest: dest.map_or(NIL, |d| d.0),
            ..Conn::BLANK
        };
        (c, a)
    }

    /// A resync control message: a master starts streaming; a backup stops asking.
    fn resync_message(&mut self, now: Instant, m: ResyncMessage, syncid: u8) {
        match m {
            ResyncMessage::Request => {
                let Some((cfg, _)) = self.sync.master.as_ref() else { return };
                if self.sync.params.resync_rate == 0 || (syncid != 0 && syncid != cfg.syncid) {
                    return;
                }
                let mine = cfg.syncid;
                self.sync.stats.resync_requests += 1;
                self.sync.stream = Some(Stream { phase: Phase::Templates, cursor: 0, credit: 0, last: now.as_nanos() });
                self.sync.control.push_back(Datagram {
                    from: Role::Master,
                    socket: 0,
                    bytes: ResyncMessage::Start.encode(mine),
                });
            }
            ResyncMessage::Start => {
                if self.sync.backup.as_ref().is_some_and(|b| b.syncid == 0 || b.syncid == syncid) {
                    self.sync.request = None;
                }
            }
            ResyncMessage::Done => {
                if self.sync.backup.is_some() {
                    self.sync.stats.resyncs_done += 1;
                }
            }
        }
    }

    /// Streams the next entries of a resync as the rate allows: templates first, then
    /// connections, walking the table in slot order. It adds records only while no full
    /// message waits, so a resync holds at most one message beyond the current one.
    fn stream_resync(&mut self, t: u64) {
        let rate = u64::from(self.sync.params.resync_rate);
        let version = self.sync.params.version;
        let Some(st) = self.sync.stream.as_mut() else { return };
        if st.phase == Phase::Sent || rate == 0 {
            return;
        }
        // Credit for at most a tenth of a second (and at least one full message) builds up, so
        // a caller that polls late does not get a burst.
        let cap = (rate / 10).max(40) * 1_000_000_000;
        st.credit = (st.credit + t.saturating_sub(st.last).saturating_mul(rate)).min(cap);
        st.last = t;
        loop {
            let Some(st) = self.sync.stream.as_mut() else { return };
            let Some((_, m)) = self.sync.master.as_ref() else { return };
            if st.credit < 1_000_000_000 || m.has_queued() {
                return;
            }
            let templates = st.phase == Phase::Templates;
            let conns = &self.conns;
            let found = (st.cursor..conns.slots()).find(|i| {
                conns.live(*i).is_some_and(|c| {
                    c.is_template() == templates
                        && c.flags & (cf::ONE_PACKET | cf::FULLNAT) == 0
                        && !(version == Version::V0 && c.af() == Af::V6)
                })
            });
            match found {
                Some(i) => {
                    st.cursor = i + 1;
                    st.credit -= 1_000_000_000;
                    self.sync.stats.resync_records += 1;
                    self.queue_record(Instant(t), ConnId(i as u32));
                }
                None if templates => (st.phase, st.cursor) = (Phase::Connections, 0),
                None => {
                    st.phase = Phase::Sent;
                    if let Some((_, m)) = self.sync.master.as_mut() {
                        m.flush();
                    }
                    return;
                }
            }
        }
    }
}

impl SyncState {
    /// The sysctls in force.
    pub(crate) fn params(&self) -> &SyncParams {
        &self.params
    }

    /// Whether a master daemon runs.
    pub(crate) fn is_master(&self) -> bool {
        self.master.is_some()
    }
}
