//! One virtual router, as keepalived's `vrrp_t` runs it (`vrrp.c`: `vrrp_state_backup`,
//! `vrrp_state_master_rx`, `vrrp_state_master_tx`, `vrrp_state_become_master`,
//! `vrrp_state_leave_master`): the state machine of RFC 5798 §6.4 (RFC 3768 §6.4 for VRRPv2)
//! written as one grid and one transition function, the receive checks of §7.1, and what
//! keepalived adds — preempt delay, gratuitous ARP timing, FAULT, unicast peers.
//!
//! Timers, all from the RFC (§6.1): `Advertisement_Interval` (configured), the
//! `Master_Adver_Interval` a backup learns from the master's advertisements (VRRPv3; VRRPv2
//! requires both to be equal), `Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256`
//! (VRRPv2: `(256 − Priority) / 256` seconds) and `Master_Down_Interval = 3 ×
//! Master_Adver_Interval + Skew_Time`. Like keepalived, the skew is kept to the nanosecond rather
//! than rounded to centiseconds.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::net::IpAddr;
use core::time::Duration;

use super::wire::{encode_addrs, Addrs, Auth, Repr, Version};
use super::{group_addr, virtual_mac, Error, Reason, State, PRIO_OWNER, PRIO_STOP, TTL};
use crate::addr::Af;
use crate::neigh::MacAddr;
use crate::time::Instant;

const NS_PER_CS: u64 = 10_000_000;
const NS_PER_S: u64 = 1_000_000_000;

/// Gratuitous ARP / unsolicited neighbour advertisement timing, as keepalived's `garp_*`
/// settings (`vrrp_send_link_update` and its delayed and refresh threads). A burst sends
/// `repeat` messages for every virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Garp {
    /// `garp_master_delay`: a second burst this long after becoming master (zero: none).
    /// keepalived's default is 5 s.
    pub master_delay: Duration,
    /// `garp_master_repeat`: messages per address in each burst on becoming master (default 5).
    pub master_repeat: u32,
    /// `garp_master_refresh`: while master, a burst this often, the first one `master_delay +
    /// master_refresh` after becoming master (zero, the default: no refresh).
    pub master_refresh: Duration,
    /// `garp_master_refresh_repeat`: messages per address in a refresh burst (default 1).
    pub master_refresh_repeat: u32,
    /// `garp_lower_prio_delay`: a second burst this long after a master heard a lower priority
    /// (defaults to `master_delay`).
    pub lower_prio_delay: Duration,
    /// `garp_lower_prio_repeat`: messages per address when a master hears a lower priority
    /// (defaults to `master_repeat`; zero sends none).
    pub lower_prio_repeat: u32,
}

impl Default for Garp {
    fn default() -> Self {
        Garp {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            lower_prio_delay: Duration::from_secs(5),
            lower_prio_repeat: 5,
        }
    }
}

/// One virtual router's settings, named after keepalived's `vrrp_instance` keywords.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// `virtual_router_id`, 1..=255.
    pub vrid: u8,
    /// `version`: keepalived's default is 2 for IPv4 and 3 for IPv6 ([`Config::new`] does the
    /// same).
    pub version: Version,
    /// `priority`: 1..=254, or 255 for the address owner, which takes over at once on startup
    /// and whose priority tracking never changes (RFC 5798 §5.2.4, keepalived).
    pub priority: u8,
    /// `advert_int`: whole seconds 1..=255 for VRRPv2, centiseconds 1..=4095 for VRRPv3
    /// (default 1 s).
    pub advert_int: Duration,
    /// This router's address on the link: the source of its advertisements and the address
    /// equal priorities are decided by (RFC 5798 §6.4.3; keepalived's `mcast_src_ip` /
    /// `unicast_src_ip`, or the interface's primary address — for IPv6 its link-local one).
    pub primary: IpAddr,
    /// `virtual_ipaddress`: 1..=255 addresses of the primary's family, advertised in this order.
    pub vips: Vec<IpAddr>,
    /// Preempt_Mode (default on); `nopreempt` turns it off: a backup then never displaces a
    /// lower-priority master.
    pub preempt: bool,
    /// `preempt_delay`: when a backup first hears a lower-priority master, it keeps accepting
    /// its advertisements this long before it preempts (keepalived; zero by default).
    pub preempt_delay: Duration,
    /// Accept_Mode: a master that is not the owner still accepts packets to the virtual
    /// addresses. keepalived's default is on (RFC 5798's is off); a director serving the
    /// addresses needs it. Carried on [`Action::AddAddresses`].
    pub accept: bool,
    /// VRRPv2 `authentication` (none by default).
    pub auth: Auth,
    /// `unicast_peer`: when not empty, advertisements go to each peer instead of the
    /// multicast group, only peers are heard, and the TTL check is skipped (keepalived).
    pub unicast_peers: Vec<IpAddr>,
    /// `use_vmac`: send advertisements and announcements from the virtual router MAC
    /// ([`virtual_mac`]) as RFC 5798 §7.2 says; off by default as in keepalived, which then
    /// uses the interface's own MAC.
    pub use_vmac: bool,
    /// Gratuitous ARP / unsolicited NA timing.
    pub garp: Garp,
    /// `lower_prio_no_advert`: a master that hears a lower priority does not answer with an
    /// advertisement of its own (the RFCs before RFC 9568). Off by default: it answers, which
    /// ends a split brain at once.
    pub lower_prio_no_advert: bool,
    /// The application's number for the interface the instance runs on (as
    /// [`crate::Neighbour::port`]); [`super::Group::handle`] dispatches by it.
    pub port: u16,
}

impl Config {
    /// An instance with keepalived's defaults: priority 100, advert_int 1 s, preempt on, accept
    /// on, no authentication, multicast, no VMAC, version 2 for IPv4 and 3 for IPv6, port 0.
    pub fn new(vrid: u8, primary: IpAddr, vips: Vec<IpAddr>) -> Self {
        Config {
            vrid,
            version: if primary.is_ipv6() { Version::V3 } else { Version::V2 },
            priority: 100,
            advert_int: Duration::from_secs(1),
            primary,
            vips,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept: true,
            auth: Auth::None,
            unicast_peers: Vec::new(),
            use_vmac: false,
            garp: Garp::default(),
            lower_prio_no_advert: false,
            port: 0,
        }
    }

    fn af(&self) -> Af {
        Af::of(&self.primary)
    }

    /// The advertisement interval in centiseconds, if the version can carry it.
    fn interval_cs(&self) -> Option<u16> {
        let ns = self.advert_int.as_nanos();
        let (unit, max) = match self.version {
            Version::V2 => (u128::from(NS_PER_S), 255),
            Version::V3 => (u128::from(NS_PER_CS), 4095),
        };
        let n = u16::try_from(ns / unit).ok().filter(|n| ns % unit == 0 && (1..=max).contains(n))?;
        Some(if self.version == Version::V2 { n * 100 } else { n })
    }

    fn validate(&self) -> Result<u16, Error> {
        if self.vrid == 0 {
            return Err(Error::BadVrid);
        }
        if self.priority == 0 {
            return Err(Error::BadPriority);
        }
        if self.version == Version::V2 && self.primary.is_ipv6() {
            return Err(Error::V2Ipv6);
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(Error::AuthNeedsV2);
        }
        let cs = self.interval_cs().ok_or(Error::BadInterval)?;
        if self.vips.is_empty() || self.vips.len() > usize::from(u8::MAX) {
            return Err(Error::BadAddressCount);
        }
        let v6 = self.primary.is_ipv6();
        if self.vips.iter().chain(&self.unicast_peers).any(|a| a.is_ipv6() != v6) {
            return Err(Error::FamilyMismatch);
        }
        Ok(cs)
    }
}

/// The IP header fields of a received advertisement that the checks need (RFC 5798 §7.1):
/// the I/O side reads them from the IPv4 header, or for IPv6 from `IPV6_PKTINFO` and
/// `IPV6_HOPLIMIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpHeader {
    /// Source address: the sender's primary address.
    pub src: IpAddr,
    /// Destination address: the multicast group, or this router's address for unicast.
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
}

/// One advertisement to send: a raw IP protocol 112 packet with TTL / hop limit 255.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// The source address (the instance's primary address).
    pub src: IpAddr,
    /// The destination: the multicast group, or one unicast peer (one action per peer, since
    /// the VRRPv3 checksum covers the destination).
    pub dst: IpAddr,
    /// The source MAC to send from: the virtual router MAC with `use_vmac`, otherwise `None`
    /// (the interface's own).
    pub src_mac: Option<MacAddr>,
    /// The VRRP message: the IP payload, checksum filled in.
    pub bytes: Vec<u8>,
}

/// The virtual addresses to add or remove.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddressChange {
    /// The instance's virtual addresses.
    pub addrs: Vec<IpAddr>,
    /// The virtual router MAC, with `use_vmac`.
    pub vmac: Option<MacAddr>,
    /// Whether packets to the addresses are accepted (Accept_Mode, or the owner; RFC 5798
    /// §6.4.3). When false the addresses only route.
    pub accept: bool,
}

/// Gratuitous ARP (IPv4) or unsolicited neighbour advertisement (IPv6, Router and Override
/// flags set) for one virtual address (RFC 5798 §6.4.2, §8.1.2, §8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Announce {
    /// The virtual address.
    pub addr: IpAddr,
    /// The MAC to announce: the virtual router MAC with `use_vmac`, otherwise `None` (the
    /// interface's own).
    pub mac: Option<MacAddr>,
    /// How many messages to send back to back.
    pub count: u32,
}

/// What the application is told, as keepalived's notify scripts and FIFO are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Entered MASTER (`notify_master`).
    Master,
    /// Entered BACKUP (`notify_backup`).
    Backup,
    /// Entered FAULT (`notify_fault`).
    Fault,
    /// Shut down (`notify_stop`).
    Stop,
    /// A master heard a lower-priority advertisement (`notify_master_rx_lower_pri`): another
    /// router had taken over, perhaps during a communications break.
    MasterRxLowerPri,
}

/// What an instance asks the I/O side to do, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send an advertisement.
    Send(Transmit),
    /// Became master: take the virtual addresses.
    AddAddresses(AddressChange),
    /// Left master: give the virtual addresses up.
    RemoveAddresses(AddressChange),
    /// Announce a virtual address.
    Announce(Announce),
    /// Tell the application.
    Notify {
        /// What happened.
        event: Event,
        /// The instance's priority at that moment.
        priority: u8,
    },
}

/// Counters of an instance (keepalived's `vrrp_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Advertisements that passed every check.
    pub adverts_rx: u64,
    /// Advertisements sent (one per transmission, peers counted once).
    pub adverts_tx: u64,
    /// Priority-0 advertisements received.
    pub pri_zero_rx: u64,
    /// Priority-0 advertisements sent.
    pub pri_zero_tx: u64,
    /// Transitions to MASTER.
    pub became_master: u64,
    /// Transitions out of MASTER.
    pub released_master: u64,
    /// Advertisements whose address list differs from ours (RFC 5798 §7.1: logged, not
    /// dropped, in VRRPv3; see [`Reason::AddressList`] for VRRPv2).
    pub addr_list_err: u64,
    /// VRRPv3 advertisements with another interval than ours (keepalived logs these; the
    /// backup adopts the master's).
    pub interval_mismatch: u64,
}

/// What the receive path hands the state machine.
#[derive(Clone, Copy, Debug)]
struct Rx {
    src: IpAddr,
    priority: u8,
    interval_cs: u16,
}

/// The events of RFC 5798 §6.4, a received advertisement classified against the local
/// priority, plus keepalived's FAULT and sync-group moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    /// Startup of a non-owner.
    Startup = 0,
    /// Startup of the address owner.
    StartupOwner,
    /// Shutdown.
    Shutdown,
    /// Adver_Timer / Master_Down_Timer fired.
    Timer,
    /// Master_Down_Timer fired while the sync group holds this instance back.
    TimerHeld,
    /// Priority 0.
    RxZero,
    /// A higher priority, or equal with a higher primary address.
    RxHigher,
    /// Equal priority from a lower address.
    RxTie,
    /// A lower priority that a preempting backup discards.
    RxLower,
    /// A lower priority a backup accepts: `nopreempt`, or within the preempt delay.
    RxLowerHeld,
    /// A tracked condition forces FAULT.
    Fault,
    /// The last forcing condition cleared.
    Recover,
    /// Another member of the sync group became master.
    SyncMaster,
    /// Another member of the sync group went from master to backup.
    SyncBackup,
}

impl Ev {
    const COUNT: usize = 14;
}

/// What a transition does besides changing the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Nothing.
    Stay,
    /// Master_Down_Timer := Master_Down_Interval (the owner: Advertisement_Interval +
    /// Skew_Time, as keepalived's `try_up_instance`).
    Arm,
    /// The sync group is not ready: want master, wait another Master_Down_Interval.
    Hold,
    /// Master_Down_Timer := Skew_Time.
    Skew,
    /// Adopt the master's interval, reset Master_Down_Timer; keepalived's preempt delay.
    Accept,
    /// Drop the advertisement: the timer keeps running.
    Discard,
    /// Advertise, take the addresses, announce them, Adver_Timer := Advertisement_Interval.
    TakeOver,
    /// Advertise, Adver_Timer := Advertisement_Interval.
    Advertise,
    /// Answer a lower priority: advertise (RFC 9568) and announce again (keepalived).
    Defend,
    /// Adopt the master's interval, Master_Down_Timer, give the addresses up.
    Yield,
    /// Master_Down_Timer, give the addresses up (the sync group follows another member).
    Release,
    /// Advertise priority 0, give the addresses up, stop the timers.
    Resign,
    /// Stop the timers.
    Stop,
}

use State::{Backup as BK, Fault as FT, Init as IN, Master as MS};
use Step as S;

/// `[event][state] -> (next state, step)`; states in the order INIT, BACKUP, MASTER, FAULT.
#[rustfmt::skip]
const GRID: [[(State, Step); 4]; Ev::COUNT] = [
    //                     INIT              BACKUP             MASTER              FAULT
    /* Startup      */ [(BK, S::Arm),      (BK, S::Stay),     (MS, S::Stay),      (FT, S::Stay)],
    /* StartupOwner */ [(MS, S::TakeOver), (BK, S::Stay),     (MS, S::Stay),      (FT, S::Stay)],
    /* Shutdown     */ [(IN, S::Stay),     (IN, S::Stop),     (IN, S::Resign),    (IN, S::Stop)],
    /* Timer        */ [(IN, S::Stay),     (MS, S::TakeOver), (MS, S::Advertise), (FT, S::Stay)],
    /* TimerHeld    */ [(IN, S::Stay),     (BK, S::Hold),     (MS, S::Advertise), (FT, S::Stay)],
    /* RxZero       */ [(IN, S::Stay),     (BK, S::Skew),     (MS, S::Advertise), (FT, S::Stay)],
    /* RxHigher     */ [(IN, S::Stay),     (BK, S::Accept),   (BK, S::Yield),     (FT, S::Stay)],
    /* RxTie        */ [(IN, S::Stay),     (BK, S::Accept),   (MS, S::Defend),    (FT, S::Stay)],
    /* RxLower      */ [(IN, S::Stay),     (BK, S::Discard),  (MS, S::Defend),    (FT, S::Stay)],
    /* RxLowerHeld  */ [(IN, S::Stay),     (BK, S::Accept),   (MS, S::Defend),    (FT, S::Stay)],
    /* Fault        */ [(FT, S::Stop),     (FT, S::Stop),     (FT, S::Resign),    (FT, S::Stay)],
    /* Recover      */ [(IN, S::Stay),     (BK, S::Stay),     (MS, S::Stay),      (BK, S::Arm)],
    /* SyncMaster   */ [(IN, S::Stay),     (MS, S::TakeOver), (MS, S::Stay),      (FT, S::Stay)],
    /* SyncBackup   */ [(IN, S::Stay),     (BK, S::Stay),     (BK, S::Release),   (FT, S::Stay)],
];

const fn col(s: State) -> usize {
    match s {
        IN => 0,
        BK => 1,
        MS => 2,
        FT => 3,
    }
}

/// One virtual router.
///
/// Drive it as every sans-IO room is driven: [`Instance::start`], then feed each received
/// advertisement to [`Instance::handle`], take actions from [`Instance::poll`] until it says
/// `None`, and call `poll` again at [`Instance::next_deadline`]. Several instances, sync
/// groups and tracking live in [`super::Group`].
///
/// ```
/// use core::time::Duration;
/// use lvs_core::vrrp::{Action, Config, Instance, State};
/// use lvs_core::Instant;
///
/// let mut cfg = Config::new(51, "192.0.2.2".parse()?, vec!["192.0.2.100".parse()?]);
/// cfg.priority = 150;
/// let mut vr = Instance::new(cfg)?;
/// vr.start(Instant::ZERO);
/// assert_eq!(vr.state(), State::Backup);
/// // No master is heard: Master_Down_Interval = 3 s + (256 − 150) / 256 s later it takes over.
/// let t = vr.next_deadline().unwrap();
/// assert_eq!(t - Instant::ZERO, Duration::from_nanos(3_414_062_500));
/// while vr.poll(Instant::ZERO).is_some() {} // the BACKUP notification
/// let first = vr.poll(t);
/// assert!(matches!(first, Some(Action::Send(_))));
/// assert_eq!(vr.state(), State::Master);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Instance {
    cfg: Config,
    v6: bool,
    vips_raw: Vec<u8>,
    adver_cs: u16,
    state: State,
    prio: u8,
    master_adver_cs: u16,
    /// Adver_Timer in MASTER, Master_Down_Timer in BACKUP.
    timer: Option<Instant>,
    /// When a held-back preemption may happen (keepalived's `preempt_time`).
    preempt_at: Option<Instant>,
    /// The master last heard (in BACKUP).
    master: Option<IpAddr>,
    /// The down timer fired while a sync group held the instance back.
    want_master: bool,
    /// A tracked condition forces FAULT (kept while in INIT, acted on at start).
    faulted: bool,
    /// A delayed announcement burst: when, and how many messages per address.
    garp_at: Option<(Instant, u32)>,
    /// The next refresh burst while master.
    refresh_at: Option<Instant>,
    out: VecDeque<Action>,
    drops: [u64; Reason::COUNT],
    stats: Stats,
}

impl Instance {
    /// A stopped instance (INIT).
    ///
    /// # Errors
    /// [`Error`] naming the setting the version or family cannot carry.
    pub fn new(cfg: Config) -> Result<Self, Error> {
        let adver_cs = cfg.validate()?;
        Ok(Instance {
            v6: cfg.primary.is_ipv6(),
            vips_raw: encode_addrs(&cfg.vips),
            adver_cs,
            state: State::Init,
            prio: cfg.priority,
            master_adver_cs: adver_cs,
            timer: None,
            preempt_at: None,
            master: None,
            want_master: false,
            faulted: false,
            garp_at: None,
            refresh_at: None,
            out: VecDeque::new(),
            drops: [0; Reason::COUNT],
            stats: Stats::default(),
            cfg,
        })
    }

    /// The Startup event (RFC 5798 §6.4.1): the owner becomes master at once, any other
    /// router backup, waiting Master_Down_Interval for a master. An instance a tracked
    /// condition holds down enters FAULT instead. Does nothing unless in INIT.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Init {
            return;
        }
        let ev = if self.faulted {
            Ev::Fault
        } else if self.cfg.priority == PRIO_OWNER {
            Ev::StartupOwner
        } else {
            Ev::Startup
        };
        self.step(now, ev, None);
    }

    /// The Shutdown event (RFC 5798 §6.4.2, §6.4.3): a master sends a priority-0
    /// advertisement, so the best backup takes over after its Skew_Time, and gives up the
    /// addresses; every state goes to INIT.
    pub fn shutdown(&mut self, now: Instant) {
        self.step(now, Ev::Shutdown, None);
    }

    /// One received advertisement: the IP payload and the IP header's fields. Checks it (see
    /// [`Reason`]; [`Repr::parse`] for the format, then TTL for multicast, version, VRID,
    /// VRRPv2 authentication and interval, destination and unicast peer, our own address, the
    /// owner, the address list) and runs the state machine.
    ///
    /// DoS warning: the address-list check compares each advertised address with the
    /// configured ones, at most 255 × 255 comparisons when both lists are full.
    ///
    /// # Errors
    /// The [`Reason`] it was dropped for, also counted in [`Instance::drops`].
    pub fn handle(&mut self, now: Instant, ip: &IpHeader, bytes: &[u8]) -> Result<(), Reason> {
        match self.check(ip, bytes) {
            Ok(rx) => {
                self.stats.adverts_rx += 1;
                let ev = self.classify(now, &rx);
                self.step(now, ev, Some(&rx));
                Ok(())
            }
            Err(r) => {
                self.drops[r.index()] += 1;
                Err(r)
            }
        }
    }

    /// Runs the timers due at `now` and hands out the next action, `None` when there is
    /// nothing to do until [`Instance::next_deadline`].
    pub fn poll(&mut self, now: Instant) -> Option<Action> {
        self.fire(now, false);
        self.out.pop_front()
    }

    /// When [`Instance::poll`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.timer, self.garp_at.map(|(t, _)| t), self.refresh_at].into_iter().flatten().min()
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The priority in force: the configured one adjusted by tracking weights, within 1..=254
    /// (the owner's stays 255).
    pub fn priority(&self) -> u8 {
        self.prio
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The master last heard, while in BACKUP.
    pub fn master(&self) -> Option<IpAddr> {
        self.master.filter(|_| self.state == State::Backup)
    }

    /// Master_Adver_Interval: the master's interval as last learned (VRRPv3), else ours.
    pub fn master_adver_interval(&self) -> Duration {
        Duration::from_nanos(u64::from(self.master_adver_cs) * NS_PER_CS)
    }

    /// Skew_Time at the current priority and Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        Duration::from_nanos(self.skew_ns())
    }

    /// Master_Down_Interval at the current priority and Master_Adver_Interval.
    pub fn master_down_interval(&self) -> Duration {
        Duration::from_nanos(self.mdi_ns())
    }

    /// Drops by [`Reason::index`].
    pub fn drops(&self) -> &[u64; Reason::COUNT] {
        &self.drops
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn skew_ns(&self) -> u64 {
        let p = 256 - u64::from(self.prio);
        match self.cfg.version {
            Version::V3 => p * u64::from(self.master_adver_cs) * NS_PER_CS / 256,
            Version::V2 => p * NS_PER_S / 256,
        }
    }

    fn mdi_ns(&self) -> u64 {
        3 * u64::from(self.master_adver_cs) * NS_PER_CS + self.skew_ns()
    }

    fn adver(&self) -> Duration {
        Duration::from_nanos(u64::from(self.adver_cs) * NS_PER_CS)
    }

    fn vmac(&self) -> Option<MacAddr> {
        self.cfg.use_vmac.then(|| virtual_mac(self.cfg.af(), self.cfg.vrid))
    }

    /// The receive checks of RFC 5798 / RFC 3768 §7.1 and keepalived's `vrrp_check_packet`.
    fn check(&mut self, ip: &IpHeader, bytes: &[u8]) -> Result<Rx, Reason> {
        if matches!(self.state, State::Init | State::Fault) {
            return Err(Reason::Inactive);
        }
        if ip.src.is_ipv6() != self.v6 {
            return Err(Reason::Family);
        }
        let unicast = !self.cfg.unicast_peers.is_empty();
        if !unicast && ip.ttl != TTL {
            return Err(Reason::Ttl);
        }
        let adv = Repr::parse(bytes, ip.src, ip.dst)?;
        if adv.version != self.cfg.version {
            return Err(Reason::Version);
        }
        if adv.vrid != self.cfg.vrid {
            return Err(Reason::Vrid);
        }
        let interval_cs = match adv.version {
            Version::V2 => {
                if core::mem::discriminant(&adv.auth) != core::mem::discriminant(&self.cfg.auth) {
                    return Err(Reason::AuthType);
                }
                if adv.auth != self.cfg.auth {
                    return Err(Reason::Password);
                }
                if adv.interval * 100 != self.adver_cs {
                    return Err(Reason::Interval);
                }
                self.adver_cs
            }
            Version::V3 => {
                if adv.interval == 0 {
                    return Err(Reason::Interval);
                }
                if adv.interval != self.adver_cs {
                    self.stats.interval_mismatch += 1;
                }
                adv.interval
            }
        };
        if unicast {
            if ip.dst.is_multicast() {
                return Err(Reason::Destination);
            }
            if !self.cfg.unicast_peers.contains(&ip.src) {
                return Err(Reason::Peer);
            }
        } else if ip.dst != group_addr(self.cfg.af()) {
            return Err(Reason::Destination);
        }
        if ip.src == self.cfg.primary {
            return Err(Reason::Looped);
        }
        if self.cfg.priority == PRIO_OWNER {
            return Err(Reason::Owner);
        }
        let ours = Addrs::new(self.v6, &self.vips_raw);
        if !ours.is_some_and(|o| o.same_set(&adv.addrs)) {
            self.stats.addr_list_err += 1;
            if adv.version == Version::V2 && adv.priority != PRIO_OWNER {
                return Err(Reason::AddressList);
            }
        }
        if adv.priority == PRIO_STOP {
            self.stats.pri_zero_rx += 1;
        }
        Ok(Rx { src: ip.src, priority: adv.priority, interval_cs })
    }

    /// Where a received advertisement stands against us (RFC 5798 §6.4.2, §6.4.3): priority
    /// first, then the primary address as an unsigned number in network byte order.
    fn classify(&self, now: Instant, rx: &Rx) -> Ev {
        if rx.priority == PRIO_STOP {
            return Ev::RxZero;
        }
        match (rx.priority, rx.src).cmp(&(self.prio, self.cfg.primary)) {
            Ordering::Greater => Ev::RxHigher,
            _ if rx.priority == self.prio => Ev::RxTie,
            _ if !self.cfg.preempt || self.preempt_held(now) => Ev::RxLowerHeld,
            _ => Ev::RxLower,
        }
    }

    /// Within keepalived's preempt delay: not yet started (it starts on this advertisement),
    /// or not yet over.
    fn preempt_held(&self, now: Instant) -> bool {
        !self.cfg.preempt_delay.is_zero() && self.preempt_at.is_none_or(|t| t > now)
    }

    /// Fires what is due: the state timer (held back when a sync group is not ready), then the
    /// delayed and the refresh announcement bursts.
    pub(super) fn fire(&mut self, now: Instant, hold: bool) {
        if self.timer.is_some_and(|t| t <= now) {
            self.step(now, if hold { Ev::TimerHeld } else { Ev::Timer }, None);
        }
        if let Some((t, count)) = self.garp_at {
            if t <= now {
                self.garp_at = None;
                self.announce(count);
            }
        }
        if let Some(t) = self.refresh_at {
            if t <= now {
                self.refresh_at = Some(now + self.cfg.garp.master_refresh);
                self.announce(self.cfg.garp.master_refresh_repeat);
            }
        }
    }

    /// The sync group moves this instance with another member: to MASTER, or from MASTER to
    /// BACKUP.
    pub(super) fn follow(&mut self, now: Instant, master: bool) {
        self.step(now, if master { Ev::SyncMaster } else { Ev::SyncBackup }, None);
    }

    /// Whether this instance would be master, for its sync group: it is, or its down timer
    /// fired while held back (keepalived's `wantstate`).
    pub(super) fn wants_master(&self) -> bool {
        self.state == State::Master || (self.state == State::Backup && self.want_master)
    }

    /// Tracking forces FAULT, or stops forcing it.
    pub(super) fn set_fault(&mut self, now: Instant, on: bool) {
        if self.faulted == on {
            return;
        }
        self.faulted = on;
        if self.state != State::Init {
            self.step(now, if on { Ev::Fault } else { Ev::Recover }, None);
        }
    }

    /// Tracking changed the priority (keepalived's `vrrp_set_effective_priority`): a backup's
    /// running down timer moves by the change in Master_Down_Interval. The owner's priority
    /// never changes.
    pub(super) fn set_priority(&mut self, prio: u8) {
        if self.cfg.priority == PRIO_OWNER || prio == self.prio {
            return;
        }
        let old = self.mdi_ns();
        self.prio = prio;
        let new = self.mdi_ns();
        if self.state == State::Backup {
            self.timer = self.timer.map(|t| Instant(t.0.saturating_add(new).saturating_sub(old)));
        }
    }

    /// The next queued action.
    pub(super) fn pop(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// The one transition function: looks the event up in [`GRID`], does the step, sets the
    /// state.
    fn step(&mut self, now: Instant, ev: Ev, rx: Option<&Rx>) {
        let (next, step) = GRID[ev as usize][col(self.state)];
        match step {
            S::Stay | S::Discard => {}
            S::Arm => {
                self.master_adver_cs = self.adver_cs;
                self.master = None;
                self.preempt_at = None;
                self.want_master = false;
                let wait = if self.cfg.priority == PRIO_OWNER {
                    u64::from(self.adver_cs) * NS_PER_CS + self.skew_ns()
                } else {
                    self.mdi_ns()
                };
                self.timer = Some(Instant(now.0.saturating_add(wait)));
            }
            S::Hold => {
                self.want_master = true;
                self.timer = Some(Instant(now.0.saturating_add(self.mdi_ns())));
            }
            S::Skew => self.timer = Some(Instant(now.0.saturating_add(self.skew_ns()))),
            S::Accept => {
                if let Some(rx) = rx {
                    self.adopt(now, rx);
                    if !self.cfg.preempt_delay.is_zero() {
                        if rx.priority >= self.prio {
                            self.preempt_at = None;
                        } else if self.preempt_at.is_none() {
                            self.preempt_at = Some(now + self.cfg.preempt_delay);
                        }
                    }
                }
            }
            S::TakeOver => {
                self.master_adver_cs = self.adver_cs;
                self.master = None;
                self.want_master = false;
                // The old master must drop the addresses before our announcements arrive, so
                // the advertisement goes first (keepalived's vrrp_state_master_tx).
                self.advertise(self.prio);
                self.out.push_back(Action::AddAddresses(self.address_change()));
                let g = self.cfg.garp;
                self.announce(g.master_repeat);
                self.garp_at = (!g.master_delay.is_zero()).then_some((now + g.master_delay, g.master_repeat));
                self.refresh_at = (!g.master_refresh.is_zero()).then(|| now + g.master_delay + g.master_refresh);
                self.timer = Some(now + self.adver());
            }
            S::Advertise => {
                self.advertise(self.prio);
                self.timer = Some(now + self.adver());
            }
            S::Defend => {
                if !self.cfg.lower_prio_no_advert {
                    self.advertise(self.prio);
                }
                let g = self.cfg.garp;
                self.announce(g.lower_prio_repeat);
                if !g.lower_prio_delay.is_zero() && g.lower_prio_repeat > 0 {
                    self.garp_at = Some((now + g.lower_prio_delay, g.lower_prio_repeat));
                }
                self.out.push_back(Action::Notify { event: Event::MasterRxLowerPri, priority: self.prio });
            }
            S::Yield => {
                if let Some(rx) = rx {
                    self.adopt(now, rx);
                }
                self.preempt_at = None;
                self.give_up();
            }
            S::Release => {
                self.master_adver_cs = self.adver_cs;
                self.timer = Some(Instant(now.0.saturating_add(self.mdi_ns())));
                self.give_up();
            }
            S::Resign => {
                self.advertise(PRIO_STOP);
                self.give_up();
                self.timer = None;
                self.want_master = false;
            }
            S::Stop => {
                self.timer = None;
                self.want_master = false;
            }
        }
        self.set_state(next);
    }

    /// Accept a master's advertisement: adopt its interval (VRRPv3), remember it, reset
    /// Master_Down_Timer.
    fn adopt(&mut self, now: Instant, rx: &Rx) {
        self.master_adver_cs = rx.interval_cs;
        self.master = Some(rx.src);
        self.want_master = false;
        self.timer = Some(Instant(now.0.saturating_add(self.mdi_ns())));
    }

    /// Leave MASTER: no more announcements, remove the addresses.
    fn give_up(&mut self) {
        self.garp_at = None;
        self.refresh_at = None;
        self.out.push_back(Action::RemoveAddresses(self.address_change()));
    }

    /// The only place the state changes: notifications and the master counters follow it.
    fn set_state(&mut self, next: State) {
        if next == self.state {
            return;
        }
        if self.state == State::Master {
            self.stats.released_master += 1;
        }
        self.state = next;
        let event = match next {
            State::Init => Event::Stop,
            State::Backup => Event::Backup,
            State::Master => {
                self.stats.became_master += 1;
                Event::Master
            }
            State::Fault => Event::Fault,
        };
        self.out.push_back(Action::Notify { event, priority: self.prio });
    }

    fn address_change(&self) -> AddressChange {
        AddressChange {
            addrs: self.cfg.vips.clone(),
            vmac: self.vmac(),
            accept: self.cfg.accept || self.cfg.priority == PRIO_OWNER,
        }
    }

    /// One burst: `count` announcements of every virtual address.
    fn announce(&mut self, count: u32) {
        if count == 0 {
            return;
        }
        let mac = self.vmac();
        for &addr in &self.cfg.vips {
            self.out.push_back(Action::Announce(Announce { addr, mac, count }));
        }
    }

    /// An advertisement at `priority` to the group, or to each unicast peer.
    fn advertise(&mut self, priority: u8) {
        let Some(addrs) = Addrs::new(self.v6, &self.vips_raw) else { return };
        let interval = match self.cfg.version {
            Version::V2 => self.adver_cs / 100,
            Version::V3 => self.adver_cs,
        };
        let repr =
            Repr { version: self.cfg.version, vrid: self.cfg.vrid, priority, interval, auth: self.cfg.auth, addrs };
        let group = [group_addr(self.cfg.af())];
        let dsts = if self.cfg.unicast_peers.is_empty() { &group[..] } else { &self.cfg.unicast_peers[..] };
        let (src, src_mac) = (self.cfg.primary, self.vmac());
        for &dst in dsts {
            self.out.push_back(Action::Send(Transmit { src, dst, src_mac, bytes: repr.to_bytes(src, dst) }));
        }
        self.stats.adverts_tx += 1;
        if priority == PRIO_STOP {
            self.stats.pri_zero_tx += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One case per cell of the grid: the next state and the step, as a text table.
    #[test]
    fn every_cell_of_the_grid() {
        let events = [
            Ev::Startup,
            Ev::StartupOwner,
            Ev::Shutdown,
            Ev::Timer,
            Ev::TimerHeld,
            Ev::RxZero,
            Ev::RxHigher,
            Ev::RxTie,
            Ev::RxLower,
            Ev::RxLowerHeld,
            Ev::Fault,
            Ev::Recover,
            Ev::SyncMaster,
            Ev::SyncBackup,
        ];
        assert_eq!(events.len(), Ev::COUNT);
        // INIT, BACKUP, MASTER, FAULT: next state and step.
        let expect: [&str; Ev::COUNT] = [
            "BK+arm BK MS FT",
            "MS+take BK MS FT",
            "IN IN+stop IN+resign IN+stop",
            "IN MS+take MS+adv FT",
            "IN BK+hold MS+adv FT",
            "IN BK+skew MS+adv FT",
            "IN BK+accept BK+yield FT",
            "IN BK+accept MS+defend FT",
            "IN BK MS+defend FT",
            "IN BK+accept MS+defend FT",
            "FT+stop FT+stop FT+resign FT",
            "IN BK MS BK+arm",
            "IN MS+take MS FT",
            "IN BK BK+release FT",
        ];
        let state = |s: State| match s {
            IN => "IN",
            BK => "BK",
            MS => "MS",
            FT => "FT",
        };
        let step = |s: Step| match s {
            S::Stay | S::Discard => "",
            S::Arm => "+arm",
            S::Hold => "+hold",
            S::Skew => "+skew",
            S::Accept => "+accept",
            S::TakeOver => "+take",
            S::Advertise => "+adv",
            S::Defend => "+defend",
            S::Yield => "+yield",
            S::Release => "+release",
            S::Resign => "+resign",
            S::Stop => "+stop",
        };
        for (e, ev) in events.iter().enumerate() {
            let row: Vec<alloc::string::String> = [IN, BK, MS, FT]
                .iter()
                .map(|s| {
                    let (next, st) = GRID[*ev as usize][col(*s)];
                    alloc::format!("{}{}", state(next), step(st))
                })
                .collect();
            assert_eq!(row.join(" "), expect[e], "{ev:?}");
        }
        // A discarded lower priority keeps the backup's timer running: the only silent cell.
        assert_eq!(GRID[Ev::RxLower as usize][col(BK)], (BK, S::Discard));
    }
}
