//! The kernel's flood defences (`/proc/sys/net/ipv4/vs`): `update_defense_level` and the
//! `defense_work` that runs it every second (`ip_vs_ctl.c`), `ip_vs_random_dropentry` and
//! `todrop_entry` (`ip_vs_conn.c`), `ip_vs_todrop` (`ip_vs_core.c`); `secure_tcp`'s tables are
//! in [`crate::proto::tcp`].
//!
//! The kernel measures pressure in free memory; a director measures it in free connection-table
//! entries, since its table is bounded ([`DirectorConfig::max_conns`](super::DirectorConfig)).
//! Two consequences of that bound go beyond the kernel, which has no table to fill:
//!
//! - while `drop_entry` is engaged, a new connection that finds the table full takes the place
//!   of a random half-open entry (what the next `defense_work` would have reclaimed), instead
//!   of being refused;
//! - `drop_packet` counts the half-open entries `drop_entry` can reclaim as available room, so
//!   it sheds new connections only when no room can be made for them.
//!
//! Unlike the kernel, whose strategies all default to 0 (off), every strategy defaults to
//! automatic (1): a library facing untrusted traffic defends itself without configuration.

use super::Director;
use crate::conn::{cf, Conn, ConnId, NIL};
use crate::proto::{self, tcp::TcpState};
use crate::time::Instant;
use crate::wire::ipproto;

/// `DEFENSE_TIMER_PERIOD`: how often the defence levels are re-evaluated (1 s).
const DEFENSE_PERIOD_NS: u64 = 1_000_000_000;

/// `todrop_entry` spares an entry that saw a packet in the last 60 s.
const TODROP_IDLE_MS: u32 = 60_000;

/// Random slots a new connection probes for a half-open entry to replace in a full table.
const EVICT_PROBES: usize = 64;

/// SCTP states `drop_entry` drops outright (`IP_VS_SCTP_S_INIT1`, `IP_VS_SCTP_S_INIT`) and the
/// one it may drop like an established TCP connection (`IP_VS_SCTP_S_ESTABLISHED`).
const SCTP_INIT1: u8 = 1;
const SCTP_INIT: u8 = 2;
const SCTP_ESTABLISHED: u8 = 8;

/// A defence strategy's mode (`proc_do_defense_mode`): the values 0–3 that the kernel's `drop_entry`, `drop_packet` and
/// `secure_tcp` sysctls take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DefenseMode {
    /// 0: never.
    Off = 0,
    /// 1: automatic — becomes [`DefenseMode::Engaged`] when the table runs short of free entries.
    Auto = 1,
    /// 2: on, and back to [`DefenseMode::Auto`] once free entries are plenty again.
    Engaged = 2,
    /// 3: always on.
    Always = 3,
}

impl DefenseMode {
    /// The strategy with the kernel's value `v` (0–3).
    pub fn from_u8(v: u8) -> Option<DefenseMode> {
        [DefenseMode::Off, DefenseMode::Auto, DefenseMode::Engaged, DefenseMode::Always].get(usize::from(v)).copied()
    }
}

/// The flood defences of `/proc/sys/net/ipv4/vs`, by the kernel's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defense {
    /// `amemthresh`: the director is under pressure while fewer connection-table entries than
    /// this are free (the kernel counts free memory pages). Keep it below
    /// [`max_conns`](super::DirectorConfig::max_conns): the default, an eighth of the default
    /// table, suits that table.
    pub amemthresh: usize,
    /// `am_droprate`: with `drop_packet` at [`DefenseMode::Always`], one new connection in this
    /// many is dropped (kernel default 10).
    pub am_droprate: u32,
    /// `drop_entry`: drop random half-open entries (SYN_RECV, SYNACK, unassured templates)
    /// every second, and idle lightly used ones.
    pub drop_entry: DefenseMode,
    /// `drop_packet`: drop one new connection in `amemthresh / (amemthresh - available)`.
    pub drop_packet: DefenseMode,
    /// `secure_tcp`: step TCP through the kernel's `tcp_states_dos` tables.
    pub secure_tcp: DefenseMode,
}

impl Default for Defense {
    /// Every strategy automatic (the kernel's are off), `amemthresh` an eighth of the default
    /// table, `am_droprate` 10.
    fn default() -> Self {
        Defense {
            amemthresh: super::DEFAULT_MAX_CONNS / 8,
            am_droprate: 10,
            drop_entry: DefenseMode::Auto,
            drop_packet: DefenseMode::Auto,
            secure_tcp: DefenseMode::Auto,
        }
    }
}

/// What the defences are doing, as the last evaluation left them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefenseStatus {
    /// `drop_entry` now (an automatic strategy reads [`DefenseMode::Engaged`] while it acts).
    pub drop_entry: DefenseMode,
    /// `drop_packet` now.
    pub drop_packet: DefenseMode,
    /// `secure_tcp` now.
    pub secure_tcp: DefenseMode,
    /// Whether entries are being dropped (`ipvs->dropentry`).
    pub dropping_entries: bool,
    /// One new connection in this many is dropped; 0 = none (`ipvs->drop_rate`).
    pub drop_rate: u32,
    /// Whether the `secure_tcp` tables are in force.
    pub secure_tables: bool,
    /// Entries `drop_entry` dropped in its walks.
    pub entries_dropped: u64,
    /// Half-open entries a new connection replaced in a full table.
    pub entries_replaced: u64,
}

/// The defences' live state (`ipvs->dropentry`, `drop_rate`, `drop_counter`, `old_secure_tcp`
/// and the sysctls that automatic mode flips).
pub(super) struct DefenseState {
    cfg: Defense,
    dropentry: bool,
    drop_rate: u32,
    drop_counter: u32,
    secure: bool,
    /// `todrop_counter`: one countdown per incoming-packet count 0..=8.
    todrop_counter: [i8; 9],
    /// When `defense_work` runs next.
    next: Option<u64>,
    entries_dropped: u64,
    entries_replaced: u64,
}

impl DefenseState {
    pub(super) fn new(cfg: Defense) -> Self {
        DefenseState {
            cfg,
            dropentry: false,
            drop_rate: 0,
            drop_counter: 0,
            secure: false,
            todrop_counter: [0; 9],
            next: None,
            entries_dropped: 0,
            entries_replaced: 0,
        }
    }

    /// Whether the `secure_tcp` tables are in force.
    pub(super) fn secure(&self) -> bool {
        self.secure
    }

    /// When `defense_work` runs next, once the clock started.
    pub(super) fn deadline(&self) -> Option<u64> {
        self.next
    }

    /// Starts the one-second period at the first time the director is told.
    pub(super) fn start(&mut self, now: u64) {
        if self.next.is_none() {
            self.next = Some(now.saturating_add(DEFENSE_PERIOD_NS));
        }
    }

    /// `update_defense_level`, with `free` entries free of which `reclaimable` more could be
    /// made by `drop_entry`.
    fn update(&mut self, free: usize, reclaimable: usize) {
        let thresh = self.cfg.amemthresh;
        let nomem = free < thresh;
        let (level, on) = switch(self.cfg.drop_entry, nomem);
        self.cfg.drop_entry = level;
        self.dropentry = on;
        // What a new connection can have: free entries, and while entries are dropped, the
        // half-open ones it may replace.
        let avail = if self.dropentry { free.saturating_add(reclaimable) } else { free };
        let (level, on) = switch(self.cfg.drop_packet, avail < thresh);
        self.cfg.drop_packet = level;
        self.drop_rate = match level {
            DefenseMode::Always => self.cfg.am_droprate,
            _ if on => u32::try_from(thresh / (thresh - avail)).unwrap_or(u32::MAX),
            _ => 0,
        };
        if on && level != DefenseMode::Always {
            self.drop_counter = self.drop_rate;
        }
        let (level, _) = switch(self.cfg.secure_tcp, nomem);
        self.cfg.secure_tcp = level;
        // The tables follow `sysctl_secure_tcp > 1` (`ip_vs_protocol_timeout_change`).
        self.secure = level >= DefenseMode::Engaged;
    }

    /// `ip_vs_todrop`: whether this new connection is one of the `drop_rate` to drop.
    fn todrop(&mut self) -> bool {
        if self.drop_rate == 0 {
            return false;
        }
        self.drop_counter = self.drop_counter.saturating_sub(1);
        if self.drop_counter > 0 {
            return false;
        }
        self.drop_counter = self.drop_rate;
        true
    }

    /// `todrop_entry`: an entry idle for 60 s with 1 to 8 incoming packets is dropped once in
    /// as many visits as it has packets, so lightly used entries go first.
    fn todrop_entry(&mut self, c: &Conn, now: u64) -> bool {
        let last = c.expires.wrapping_sub(c.timeout_ms.min(crate::conn::MAX_TIMEOUT_MS));
        if crate::time::now_ms(Instant(now)).wrapping_sub(last) < TODROP_IDLE_MS {
            return false;
        }
        let Ok(i) = u8::try_from(c.in_pkts) else { return false };
        let Some(counter) = self.todrop_counter.get_mut(usize::from(i)).filter(|_| i > 0) else { return false };
        *counter -= 1;
        if *counter > 0 {
            return false;
        }
        *counter = i as i8;
        true
    }
}

/// One strategy's step of `update_defense_level`: its new value and whether it acts.
fn switch(s: DefenseMode, nomem: bool) -> (DefenseMode, bool) {
    match s {
        DefenseMode::Off => (DefenseMode::Off, false),
        DefenseMode::Auto | DefenseMode::Engaged if nomem => (DefenseMode::Engaged, true),
        DefenseMode::Auto | DefenseMode::Engaged => (DefenseMode::Auto, false),
        DefenseMode::Always => (DefenseMode::Always, true),
    }
}

/// A half-open TCP connection (SYN_RECV or SYNACK), which `drop_entry` drops on sight.
pub(super) fn half_open(c: &Conn) -> bool {
    !c.is_template()
        && c.proto == ipproto::TCP
        && (c.state == TcpState::SynRecv as u8 || c.state == TcpState::SynAck as u8)
}

/// What `ip_vs_random_dropentry` does with an entry it visits.
enum Verdict {
    Spare,
    Drop,
    /// Dropped if `todrop_entry` says so.
    Maybe,
}

impl Director {
    /// The defences' configuration and what they are doing now.
    pub fn defense(&self) -> DefenseStatus {
        let d = &self.defense;
        DefenseStatus {
            drop_entry: d.cfg.drop_entry,
            drop_packet: d.cfg.drop_packet,
            secure_tcp: d.cfg.secure_tcp,
            dropping_entries: d.dropentry,
            drop_rate: d.drop_rate,
            secure_tables: d.secure,
            entries_dropped: d.entries_dropped,
            entries_replaced: d.entries_replaced,
        }
    }

    /// Sets the defences, as writing the sysctls does, and evaluates them at once
    /// (`proc_do_defense_mode` calls `update_defense_level`).
    pub fn set_defense(&mut self, cfg: Defense) {
        self.cfg.defense = cfg;
        self.defense.cfg = cfg;
        self.update_defense_level();
    }

    fn update_defense_level(&mut self) {
        let free = self.cfg.max_conns.saturating_sub(self.conns.len());
        self.defense.update(free, self.half_open);
    }

    /// `defense_work`: every second, re-evaluate the levels and, while entries are dropped,
    /// walk a random slice of the table.
    ///
    /// DoS warning: the walk visits a 32nd of the table's slots.
    pub(super) fn defense_work(&mut self, now: Instant) {
        let Some(mut next) = self.defense.next else { return };
        if now.as_nanos() < next {
            return;
        }
        while next <= now.as_nanos() {
            next = next.saturating_add(DEFENSE_PERIOD_NS);
            if next == u64::MAX {
                break;
            }
        }
        self.defense.next = Some(next);
        self.update_defense_level();
        if self.defense.dropentry {
            self.random_dropentry(now.as_nanos());
        }
    }

    /// `ip_vs_random_dropentry`: visit a 32nd of the table at random (the kernel picks a 32nd
    /// of its hash buckets) and drop half-open connections, unassured templates, and idle
    /// lightly used established or UDP entries; entries that control others are spared.
    fn random_dropentry(&mut self, now: u64) {
        let slots = self.conns.slots();
        for _ in 0..slots.div_ceil(32) {
            let i = self.rng.next_u32() as usize % slots;
            let Some(c) = self.conns.live(i) else { continue };
            let drop = match self.dropentry_verdict(c) {
                Verdict::Spare => false,
                Verdict::Drop => true,
                Verdict::Maybe => {
                    let c = c.clone();
                    self.defense.todrop_entry(&c, now)
                }
            };
            if drop {
                self.defense.entries_dropped += 1;
                self.conn_del(ConnId(i as u32));
            }
        }
    }

    fn dropentry_verdict(&self, c: &Conn) -> Verdict {
        if c.n_control() > 0 {
            return Verdict::Spare;
        }
        if c.is_template() {
            // One-packet scheduling's templates (`ip_vs_conn_ops_mode`) go by their use.
            let ops = c
                .dest_id()
                .and_then(|d| self.dests.get(d))
                .and_then(|d| self.svc(d.svc))
                .is_some_and(|s| s.cfg.one_packet);
            return match (ops, c.state == proto::tpl::ASSURED) {
                (true, _) => Verdict::Maybe,
                (false, false) => Verdict::Drop,
                (false, true) => Verdict::Spare,
            };
        }
        match c.proto {
            ipproto::TCP if half_open(c) => Verdict::Drop,
            ipproto::TCP if c.state == TcpState::Established as u8 => Verdict::Maybe,
            ipproto::TCP => Verdict::Spare,
            ipproto::SCTP if c.state == SCTP_INIT1 || c.state == SCTP_INIT => Verdict::Drop,
            ipproto::SCTP if c.state == SCTP_ESTABLISHED => Verdict::Maybe,
            ipproto::SCTP => Verdict::Spare,
            _ => Verdict::Maybe,
        }
    }

    /// `ip_vs_conn_del`: the entry goes now, and so does a template it leaves controlling
    /// nothing unless that template is assured (`ip_vs_conn_expire`'s "drop CTL or non-assured
    /// TPL if not used anymore").
    fn conn_del(&mut self, id: ConnId) {
        let control = self.conns.get(id).map_or(NIL, |c| c.control());
        self.expire_now(id);
        if control == NIL {
            return;
        }
        let t = ConnId(control);
        let idle = self
            .conns
            .live(control as usize)
            .is_some_and(|t| t.flags & cf::TEMPLATE != 0 && t.n_control() == 0 && t.state != proto::tpl::ASSURED);
        if idle {
            self.expire_now(t);
        }
    }

    /// `ip_vs_todrop` for a new connection of a service: whether `drop_packet` drops it.
    pub(super) fn todrop(&mut self) -> bool {
        self.defense.todrop()
    }

    /// Makes room for one more entry in a full table while `drop_entry` acts, by dropping a
    /// random half-open connection (beyond the kernel, whose table has no fixed size). Like
    /// `todrop_entry`, it prefers the entries with fewest incoming packets: one whose client
    /// sent nothing but its SYN goes before one whose handshake is under way.
    pub(super) fn make_room(&mut self) {
        if !self.defense.dropentry || self.conns.len() < self.cfg.max_conns {
            return;
        }
        let slots = self.conns.slots();
        let mut fallback = None;
        for _ in 0..EVICT_PROBES.min(slots.saturating_mul(4)) {
            let i = self.rng.next_u32() as usize % slots;
            match self.conns.live(i).filter(|c| half_open(c) && c.n_control() == 0) {
                Some(c) if c.in_pkts <= 1 => {
                    fallback = Some(i);
                    break;
                }
                Some(_) => fallback = fallback.or(Some(i)),
                None => {}
            }
        }
        if let Some(i) = fallback {
            self.defense.entries_replaced += 1;
            self.conn_del(ConnId(i as u32));
        }
    }
}
