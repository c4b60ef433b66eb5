//! Several virtual routers, keepalived's sync groups and tracking (`vrrp_sync.c`,
//! `vrrp_track.c`, the dispatch of `vrrp_scheduler.c`).
//!
//! **Sync groups** (`vrrp_sync_group`): instances that change state together. When one member
//! becomes master the others follow (`vrrp_sync_master`); when a master member falls back to
//! backup the others do too (`vrrp_sync_backup`); a member forced into FAULT takes the whole
//! group there (`vrrp_sync_fault`), and the group leaves FAULT when no member is forced any
//! more. A member whose Master_Down_Timer fires becomes master only when every other member
//! wants to as well — keepalived prefers backup to thrashing (`vrrp_sync_can_goto_master`); until
//! then it waits another Master_Down_Interval.
//!
//! **Tracking** (`track_interface`, `track_script`, `track_file`, ...): a tracked condition is
//! OK or failing, as the application reports it (an interface down, a health-check quorum lost,
//! anything). Each [`Track`] ties it to an instance or a sync group with a weight:
//!
//! | weight | reverse | condition OK | condition failing |
//! |---|---|---|---|
//! | 0 | no | — | FAULT |
//! | 0 | yes | FAULT | — |
//! | > 0 | no | priority + weight | — |
//! | < 0 | no | — | priority − \|weight\| |
//! | > 0 | yes | priority − weight | — |
//! | < 0 | yes | — | priority + \|weight\| |
//!
//! The priority in force stays within 1..=254, and the owner's (255) never moves. As keepalived
//! does, weighted tracks on a member of a sync group are ignored (the members must not disagree
//! on who should be master) unless the group is created with `tracking_weight`
//! (`sync_group_tracking_weight`); tracks on the group itself apply to every member.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::instance::{Action, Config, Instance, IpHeader};
use super::{Error, Reason, State, PRIO_OWNER};
use crate::time::Instant;

/// An instance of a [`Group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(u32);

/// A sync group of a [`Group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncId(u32);

/// A tracked condition of a [`Group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackerId(u32);

/// What a tracked condition acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// One instance.
    Instance(InstanceId),
    /// Every member of a sync group.
    Sync(SyncId),
}

/// How a tracked condition acts on its target (see the table in the [module doc](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Track {
    /// The instance or sync group.
    pub target: Target,
    /// -254..=254; 0 forces FAULT instead of moving the priority.
    pub weight: i16,
    /// keepalived's `reverse`: the adjustment, or the FAULT, goes the other way.
    pub reverse: bool,
}

/// What [`Group::poll`] hands out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupAction {
    /// An instance's action.
    Instance(InstanceId, Action),
    /// A sync group entered a state (keepalived's group `notify_master` / `notify_backup` /
    /// `notify_fault`; INIT when every member stopped).
    Sync(SyncId, State),
}

#[derive(Clone, Debug)]
struct Slot {
    inst: Instance,
    sync: Option<usize>,
}

#[derive(Clone, Debug)]
struct SyncGroup {
    members: Vec<usize>,
    tracking_weight: bool,
    state: State,
}

#[derive(Clone, Debug)]
struct Tracker {
    ok: bool,
    tracks: Vec<Track>,
}

/// The instances of one VRRP daemon: dispatch by interface, family and VRID, sync groups and
/// tracked conditions. Driven like an [`Instance`]: [`Group::start`], [`Group::handle`] for each
/// received advertisement, [`Group::poll`] until `None`, again at [`Group::next_deadline`].
///
/// ```
/// use lvs_core::vrrp::{Config, Group, GroupAction, State, Target, Track};
/// use lvs_core::Instant;
///
/// let mut g = Group::new();
/// let ext = g.add_instance(Config::new(51, "192.0.2.2".parse()?, vec!["192.0.2.100".parse()?]))?;
/// let int = g.add_instance(Config::new(52, "198.51.100.2".parse()?, vec!["198.51.100.1".parse()?]))?;
/// let pair = g.add_sync_group(Instant::ZERO, &[ext, int], false)?;
/// // The uplink: down means FAULT for both.
/// let link = g.add_tracker(Instant::ZERO, true, &[Track { target: Target::Sync(pair), weight: 0, reverse: false }])?;
/// g.start(Instant::ZERO);
/// g.set_tracker(Instant::from_secs(1), link, false)?;
/// assert_eq!(g.instance(int).map(|i| i.state()), Some(State::Fault));
/// assert_eq!(g.sync_state(pair), Some(State::Fault));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Group {
    slots: Vec<Slot>,
    syncs: Vec<SyncGroup>,
    trackers: Vec<Tracker>,
    out: VecDeque<GroupAction>,
    drops: [u64; Reason::COUNT],
}

/// What a condition, OK or failing, does through one track (the table in the module doc):
/// whether it forces FAULT, and how far it moves the priority.
fn effect(ok: bool, t: &Track) -> (bool, i32) {
    if t.weight == 0 {
        return (ok == t.reverse, 0);
    }
    let w = i32::from(t.weight);
    let applies = if w > 0 { ok } else { !ok };
    (
        false,
        if !applies {
            0
        } else if t.reverse {
            -w
        } else {
            w
        },
    )
}

/// A handle's number: the index it was handed out at.
fn id(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    /// Adds an instance (INIT until [`Group::start`], or its own start when the group runs).
    ///
    /// # Errors
    /// What [`Instance::new`] refuses, and [`Error::DuplicateVrid`] for a VRID another instance
    /// has on the same port and family.
    pub fn add_instance(&mut self, cfg: Config) -> Result<InstanceId, Error> {
        let inst = Instance::new(cfg)?;
        let c = inst.config();
        let clash = self.slots.iter().any(|s| {
            let o = s.inst.config();
            o.vrid == c.vrid && o.port == c.port && o.primary.is_ipv6() == c.primary.is_ipv6()
        });
        if clash {
            return Err(Error::DuplicateVrid);
        }
        self.slots.push(Slot { inst, sync: None });
        Ok(InstanceId(id(self.slots.len() - 1)))
    }

    /// Binds instances into a sync group. `tracking_weight` honours weighted tracks on the
    /// members (keepalived's `sync_group_tracking_weight`). Tracking is applied again at `now`:
    /// a member already forced into FAULT takes the others there.
    ///
    /// # Errors
    /// [`Error::NoSuchHandle`], or [`Error::AlreadySynced`] for an instance in another group.
    pub fn add_sync_group(
        &mut self,
        now: Instant,
        members: &[InstanceId],
        tracking_weight: bool,
    ) -> Result<SyncId, Error> {
        let idx: Vec<usize> = members.iter().map(|m| self.slot(*m)).collect::<Result<_, _>>()?;
        if idx.iter().any(|&i| self.slots[i].sync.is_some()) {
            return Err(Error::AlreadySynced);
        }
        let g = self.syncs.len();
        for &i in &idx {
            self.slots[i].sync = Some(g);
        }
        self.syncs.push(SyncGroup { members: idx, tracking_weight, state: State::Init });
        self.refresh(now);
        Ok(SyncId(id(g)))
    }

    /// Adds a tracked condition, OK or failing now, acting through `tracks`.
    ///
    /// # Errors
    /// [`Error::NoSuchHandle`] for a target this group did not hand out, [`Error::BadWeight`].
    pub fn add_tracker(&mut self, now: Instant, ok: bool, tracks: &[Track]) -> Result<TrackerId, Error> {
        for t in tracks {
            match t.target {
                Target::Instance(i) => {
                    self.slot(i)?;
                }
                Target::Sync(SyncId(g)) => {
                    if usize::try_from(g).map_or(true, |g| g >= self.syncs.len()) {
                        return Err(Error::NoSuchHandle);
                    }
                }
            }
            if !(-254..=254).contains(&t.weight) {
                return Err(Error::BadWeight);
            }
        }
        self.trackers.push(Tracker { ok, tracks: tracks.to_vec() });
        self.refresh(now);
        Ok(TrackerId(id(self.trackers.len() - 1)))
    }

    /// A tracked condition is now OK or failing.
    ///
    /// # Errors
    /// [`Error::NoSuchHandle`].
    pub fn set_tracker(&mut self, now: Instant, id: TrackerId, ok: bool) -> Result<(), Error> {
        let t = usize::try_from(id.0).ok().and_then(|i| self.trackers.get_mut(i)).ok_or(Error::NoSuchHandle)?;
        if t.ok != ok {
            t.ok = ok;
            self.refresh(now);
        }
        Ok(())
    }

    /// Starts every instance still in INIT (RFC 5798 §6.4.1).
    pub fn start(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let prev = self.slots[i].inst.state();
            self.slots[i].inst.start(now);
            self.after(now, i, prev);
        }
    }

    /// Shuts every instance down: masters send priority 0 and give up their addresses.
    pub fn shutdown(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let prev = self.slots[i].inst.state();
            self.slots[i].inst.shutdown(now);
            self.after(now, i, prev);
        }
    }

    /// One advertisement received on interface `port`: handed to the instance of that port,
    /// family and VRID. See [`Instance::handle`].
    ///
    /// # Errors
    /// The [`Reason`] it was dropped for: [`Reason::Length`] or [`Reason::Vrid`] counted here
    /// when no instance takes it, anything else counted by the instance.
    pub fn handle(&mut self, now: Instant, port: u16, ip: &IpHeader, bytes: &[u8]) -> Result<(), Reason> {
        let Some(&vrid) = bytes.get(1) else {
            self.drops[Reason::Length.index()] += 1;
            return Err(Reason::Length);
        };
        let found = self.slots.iter().position(|s| {
            let c = s.inst.config();
            c.vrid == vrid && c.port == port && c.primary.is_ipv6() == ip.src.is_ipv6()
        });
        let Some(i) = found else {
            self.drops[Reason::Vrid.index()] += 1;
            return Err(Reason::Vrid);
        };
        let prev = self.slots[i].inst.state();
        let r = self.slots[i].inst.handle(now, ip, bytes);
        self.after(now, i, prev);
        r
    }

    /// Runs what is due at `now` and hands out the next action; `None` until
    /// [`Group::next_deadline`].
    pub fn poll(&mut self, now: Instant) -> Option<GroupAction> {
        for i in 0..self.slots.len() {
            let prev = self.slots[i].inst.state();
            let hold = self.held(i);
            self.slots[i].inst.fire(now, hold);
            self.after(now, i, prev);
        }
        if let Some(a) = self.out.pop_front() {
            return Some(a);
        }
        self.slots
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| s.inst.pop().map(|a| GroupAction::Instance(InstanceId(id(i)), a)))
    }

    /// When [`Group::poll`] next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.inst.next_deadline()).min()
    }

    /// An instance.
    pub fn instance(&self, id: InstanceId) -> Option<&Instance> {
        usize::try_from(id.0).ok().and_then(|i| self.slots.get(i)).map(|s| &s.inst)
    }

    /// Every instance with its handle.
    pub fn instances(&self) -> impl Iterator<Item = (InstanceId, &Instance)> + '_ {
        self.slots.iter().enumerate().map(|(i, s)| (InstanceId(id(i)), &s.inst))
    }

    /// A sync group's state: FAULT if a member is, else MASTER if a member is, else BACKUP if
    /// a member is, else INIT.
    pub fn sync_state(&self, id: SyncId) -> Option<State> {
        usize::try_from(id.0).ok().and_then(|g| self.syncs.get(g)).map(|g| g.state)
    }

    /// Drops of advertisements no instance took, by [`Reason::index`].
    pub fn drops(&self) -> &[u64; Reason::COUNT] {
        &self.drops
    }

    fn slot(&self, id: InstanceId) -> Result<usize, Error> {
        usize::try_from(id.0).ok().filter(|&i| i < self.slots.len()).ok_or(Error::NoSuchHandle)
    }

    /// Whether member `i`'s sync group holds it back from taking over: the group has no master
    /// and some other member does not want to be one.
    fn held(&self, i: usize) -> bool {
        let Some(g) = self.slots[i].sync else { return false };
        let members = &self.syncs[g].members;
        let any_master = members.iter().any(|&m| self.slots[m].inst.state() == State::Master);
        let all_want = members.iter().filter(|&&m| m != i).all(|&m| self.slots[m].inst.wants_master());
        !any_master && !all_want
    }

    /// After instance `i` may have moved from `prev`: its sync group follows, and the group's
    /// state is announced when it changes.
    fn after(&mut self, now: Instant, i: usize, prev: State) {
        let Some(g) = self.slots[i].sync else { return };
        let cur = self.slots[i].inst.state();
        if cur != prev {
            let to_master = match (prev, cur) {
                (_, State::Master) => Some(true),
                (State::Master, State::Backup) => Some(false),
                _ => None,
            };
            if let Some(master) = to_master {
                let from = if master { State::Backup } else { State::Master };
                for k in 0..self.syncs[g].members.len() {
                    let m = self.syncs[g].members[k];
                    if m != i && self.slots[m].inst.state() == from {
                        self.slots[m].inst.follow(now, master);
                    }
                }
            }
        }
        self.sync_notify(g);
    }

    fn sync_notify(&mut self, g: usize) {
        let states: Vec<State> = self.syncs[g].members.iter().map(|&m| self.slots[m].inst.state()).collect();
        let state = [State::Fault, State::Master, State::Backup]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or(State::Init);
        if state != self.syncs[g].state {
            self.syncs[g].state = state;
            self.out.push_back(GroupAction::Sync(SyncId(id(g)), state));
        }
    }

    /// Recomputes every instance's FAULT and priority from the tracked conditions
    /// (keepalived's `down_instance`, `try_up_instance`, `vrrp_set_effective_priority`).
    fn refresh(&mut self, now: Instant) {
        let n = self.slots.len();
        let mut faults = alloc::vec![false; n];
        let mut delta = alloc::vec![0i32; n];
        for t in &self.trackers {
            for tr in &t.tracks {
                let one;
                let targets: &[usize] = match tr.target {
                    Target::Instance(InstanceId(i)) => {
                        one = [i as usize];
                        &one
                    }
                    Target::Sync(SyncId(g)) => self.syncs.get(g as usize).map_or(&[], |g| &g.members[..]),
                };
                let (fault, weight) = effect(t.ok, tr);
                for &i in targets.iter().filter(|&&i| i < n) {
                    faults[i] |= fault;
                    // keepalived ignores weights a member of a sync group carries itself.
                    let ignored = matches!(tr.target, Target::Instance(_))
                        && self.slots[i].sync.is_some_and(|g| !self.syncs[g].tracking_weight);
                    if !ignored {
                        delta[i] += weight;
                    }
                }
            }
        }
        // A member forced into FAULT takes its sync group there.
        let mut forced = faults.clone();
        for g in &self.syncs {
            if g.members.iter().any(|&m| faults[m]) {
                for &m in &g.members {
                    forced[m] = true;
                }
            }
        }
        for i in 0..n {
            let base = i32::from(self.slots[i].inst.config().priority);
            let prio = if base == i32::from(PRIO_OWNER) { PRIO_OWNER } else { (base + delta[i]).clamp(1, 254) as u8 };
            let prev = self.slots[i].inst.state();
            self.slots[i].inst.set_priority(prio);
            self.slots[i].inst.set_fault(now, forced[i]);
            self.after(now, i, prev);
        }
    }
}
