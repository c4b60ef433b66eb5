//! keepalived's `lvs_sync_daemon` (`global_defs`; `ipvs_syncd_master` and `ipvs_syncd_backup`
//! in `ipvswrapper.c`, called from `vrrp.c` as an instance becomes or leaves master): the
//! connection-sync daemon of a director follows the state of one VRRP instance, so that the
//! director that holds the virtual addresses sends its connections and the others take them.
//!
//! | the instance | keepalived calls | the daemon that runs |
//! |---|---|---|
//! | starts, in BACKUP (or FAULT) | `ipvs_syncd_cmd(.., IPVS_BACKUP)` | backup |
//! | becomes MASTER | `ipvs_syncd_master`: stop the backup daemon, start the master | master |
//! | leaves MASTER for BACKUP or FAULT | `ipvs_syncd_backup`: stop the master daemon, start the backup | backup |
//! | goes between BACKUP and FAULT | nothing | backup |
//! | stops | stops the daemon | none |
//!
//! The syncid is the instance's VRID unless set otherwise (keepalived's
//! `lvs_sync_daemon IFNAME INSTANCE [id SYNCID]`), so two pairs of directors on one sync link
//! keep apart. A backup daemon started with [`lvs_core::sync::SyncParams::resync_rate`] asks the
//! master for its whole table, so a director that comes back as BACKUP holds every connection
//! before it preempts — give it the time with [`lvs_core::vrrp::Config::preempt_delay`].
//!
//! Two halves, because VRRP and the packet loop usually run on different threads:
//! [`SyncHooks`] wraps the application's [`Hooks`] and notes, from the instance's
//! notifications, which daemon its state calls for; [`LvsSyncDaemon::apply`], called by the
//! thread that owns the [`Runtime`] (from [`Runtime::run_with`], after every pass), starts and
//! stops the runtime's daemons to match. What they share is one atomic: nothing queues, and a
//! daemon that failed to start is tried again on the next call.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use lvs_core::sync::{DaemonConfig, Role};
use lvs_core::vrrp::{AddressChange, Error, Event, Group, InstanceId, State, SyncId};

use super::{Hooks, Origin};
use crate::runtime::Runtime;

/// The shared atomic's values: no daemon, the master, the backup.
const NONE: u8 = 0;
const MASTER: u8 = 1;
const BACKUP: u8 = 2;

/// The daemon an instance's notification calls for: `Some(None)` for none at all, `None` when
/// the notification changes nothing (a master hearing a lower priority).
fn called_for(event: Event) -> Option<Option<Role>> {
    match event {
        Event::Master => Some(Some(Role::Master)),
        Event::Backup | Event::Fault => Some(Some(Role::Backup)),
        Event::Stop => Some(None),
        Event::MasterRxLowerPri => None,
    }
}

fn encode(role: Option<Role>) -> u8 {
    match role {
        None => NONE,
        Some(Role::Master) => MASTER,
        Some(Role::Backup) => BACKUP,
    }
}

fn decode(v: u8) -> Option<Role> {
    match v {
        MASTER => Some(Role::Master),
        BACKUP => Some(Role::Backup),
        _ => None,
    }
}

/// keepalived's `lvs_sync_daemon`: the sync daemon settings and the instance they follow. See
/// the [module doc](self).
///
/// ```no_run
/// # use lvs_core::neigh::MacAddr;
/// # use lvs_core::testkit::{factory, DIRECTOR_MAC};
/// # use lvs_core::{Director, DirectorConfig, PortConfig};
/// use std::time::Duration;
/// use lvs_core::sync::SyncParams;
/// use lvs_core::vrrp::{Config, Group};
/// use lvs_dataplane::runtime::{MonotonicClock, Runtime, StopHandle};
/// use lvs_dataplane::vrrp::{KernelAddresses, LvsSyncDaemon, VrrpIo};
///
/// # let cfg = DirectorConfig::default().port(PortConfig::new(MacAddr(DIRECTOR_MAC)));
/// # let mut director = Director::new(cfg, factory);
/// // A backup that comes back asks for the whole table, and has a second to take it.
/// director.set_sync_params(SyncParams { resync_rate: 10_000, ..SyncParams::default() })?;
/// let mut cfg = Config::new(51, "192.0.2.3".parse()?, vec!["192.0.2.1".parse()?]);
/// cfg.priority = 150;
/// cfg.preempt_delay = Duration::from_secs(1);
/// let mut group = Group::new();
/// let vr = group.add_instance(cfg)?;
/// // lvs_sync_daemon sync0 VI_1: syncid 51.
/// let mut lvs_syncd = LvsSyncDaemon::new(&group, vr, "sync0")?;
/// let mut vrrp = VrrpIo::open(group, &["eth0"], lvs_syncd.hooks(KernelAddresses))?;
///
/// let (clock, stop) = (MonotonicClock::default(), StopHandle::default());
/// let vrrp_stop = stop.clone();
/// let vrrp_thread = std::thread::spawn(move || {
///     vrrp.start(clock.now());
///     let run = vrrp.run(&clock, &vrrp_stop);
///     vrrp.shutdown(clock.now());
///     run
/// });
/// let mut rt = Runtime::new(director, Vec::new()); // + the director's ports
/// let mut failed = Ok(());
/// rt.run_with(&clock, |rt| {
///     // A daemon that cannot start is tried again on the next pass; this loop gives up.
///     if let Err(e) = lvs_syncd.apply(rt) {
///         failed = Err(e);
///         rt.stop_handle().stop();
///     }
/// })?;
/// stop.stop();
/// vrrp_thread.join().map_err(|_| "the VRRP thread panicked")??;
/// failed?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LvsSyncDaemon {
    cfg: DaemonConfig,
    instance: InstanceId,
    wanted: Arc<AtomicU8>,
}

impl LvsSyncDaemon {
    /// The sync daemon on interface `ifname` follows `instance` of `group`, with the instance's
    /// VRID as its syncid and ipvsadm's defaults otherwise (224.0.0.81:8848, TTL 1, `maxlen`
    /// from the MTU). No daemon is wanted until the instance starts.
    ///
    /// # Errors
    /// [`Error::NoSuchHandle`] when `group` has no such instance.
    pub fn new(group: &Group, instance: InstanceId, ifname: &str) -> Result<LvsSyncDaemon, Error> {
        let vrid = group.instance(instance).ok_or(Error::NoSuchHandle)?.config().vrid;
        let cfg = DaemonConfig { syncid: vrid, ..DaemonConfig::new(ifname) };
        Ok(LvsSyncDaemon { cfg, instance, wanted: Arc::new(AtomicU8::new(NONE)) })
    }

    /// Other daemon settings (keepalived's `id`, `maxlen`, `port`, `ttl` and `group` options);
    /// they apply to daemons started from then on.
    pub fn with_config(mut self, cfg: DaemonConfig) -> LvsSyncDaemon {
        self.cfg = cfg;
        self
    }

    /// The daemon settings.
    pub fn config(&self) -> &DaemonConfig {
        &self.cfg
    }

    /// The instance followed.
    pub fn instance(&self) -> InstanceId {
        self.instance
    }

    /// [`Hooks`] for the [`VrrpIo`](super::VrrpIo) of the instance: `inner` does everything
    /// hooks do (take and give up the addresses, hear the notifications), and the instance's
    /// notifications also set the daemon [`LvsSyncDaemon::apply`] brings about.
    pub fn hooks<H: Hooks>(&self, inner: H) -> SyncHooks<H> {
        SyncHooks { inner, instance: self.instance, wanted: self.wanted.clone() }
    }

    /// The daemon the instance's state calls for: the master while it is MASTER, the backup in
    /// BACKUP and FAULT, none before it starts and after it stops.
    pub fn wanted(&self) -> Option<Role> {
        decode(self.wanted.load(Ordering::Acquire))
    }

    /// Starts and stops the runtime's sync daemons so that the wanted one runs, and only that
    /// one: a daemon of the other role is stopped first (also one the application started
    /// itself, as keepalived stops it), then the wanted one started if it does not run. Cheap
    /// when nothing changed: call it after every pass of the loop. Returns whether it started
    /// or stopped a daemon.
    ///
    /// # Errors
    /// As [`Runtime::start_sync`] and [`Runtime::stop_sync`]; what is still out of line is
    /// done on the next call.
    pub fn apply(&mut self, rt: &mut Runtime) -> io::Result<bool> {
        let want = self.wanted();
        let mut changed = false;
        for role in [Role::Master, Role::Backup] {
            if want != Some(role) && rt.director().sync_daemon(role).is_some() {
                rt.stop_sync(role)?;
                changed = true;
            }
        }
        if let Some(role) = want {
            if rt.director().sync_daemon(role).is_none() {
                rt.start_sync(role, &self.cfg)?;
                changed = true;
            }
        }
        Ok(changed)
    }
}

/// The [`Hooks`] half of an [`LvsSyncDaemon`] (made by [`LvsSyncDaemon::hooks`]): passes every
/// call to the inner hooks, and notes which sync daemon the followed instance's notifications
/// call for.
#[derive(Debug)]
pub struct SyncHooks<H> {
    inner: H,
    instance: InstanceId,
    wanted: Arc<AtomicU8>,
}

impl<H> SyncHooks<H> {
    /// The inner hooks.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The inner hooks, mutably.
    pub fn inner_mut(&mut self) -> &mut H {
        &mut self.inner
    }
}

impl<H: Hooks> Hooks for SyncHooks<H> {
    fn add_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        self.inner.add_addresses(at, change)
    }

    fn remove_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        self.inner.remove_addresses(at, change)
    }

    /// Notes the daemon the followed instance's new state calls for, then tells the inner hooks.
    fn notify(&mut self, at: &Origin<'_>, event: Event, priority: u8) {
        if at.instance == self.instance {
            if let Some(role) = called_for(event) {
                self.wanted.store(encode(role), Ordering::Release);
            }
        }
        self.inner.notify(at, event, priority);
    }

    fn sync_group(&mut self, id: SyncId, state: State) {
        self.inner.sync_group(id, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::vrrp::Config;

    /// Inner hooks that remember what they were told.
    #[derive(Default)]
    struct Record(Vec<String>);

    impl Hooks for Record {
        fn add_addresses(&mut self, at: &Origin<'_>, _: &AddressChange) -> io::Result<()> {
            self.0.push(format!("add {}", at.vrid));
            Ok(())
        }

        fn remove_addresses(&mut self, at: &Origin<'_>, _: &AddressChange) -> io::Result<()> {
            self.0.push(format!("remove {}", at.vrid));
            Err(io::Error::other("refused"))
        }

        fn notify(&mut self, at: &Origin<'_>, event: Event, priority: u8) {
            self.0.push(format!("{event:?} {} {priority}", at.vrid));
        }

        fn sync_group(&mut self, _: SyncId, state: State) {
            self.0.push(format!("group {}", state.name()));
        }
    }

    fn two() -> (Group, InstanceId, InstanceId) {
        let mut g = Group::new();
        let a = g.add_instance(Config::new(51, "192.0.2.3".parse().unwrap(), vec!["192.0.2.1".parse().unwrap()]));
        let b = g.add_instance(Config::new(52, "192.0.2.3".parse().unwrap(), vec!["192.0.2.2".parse().unwrap()]));
        (g, a.unwrap(), b.unwrap())
    }

    fn origin(instance: InstanceId, vrid: u8) -> Origin<'static> {
        Origin { instance, vrid, port: 0, ifname: "eth0" }
    }

    #[test]
    fn the_syncid_is_the_vrid_and_a_handle_must_exist() {
        let (g, a, b) = two();
        let d = LvsSyncDaemon::new(&g, b, "sync0").unwrap();
        assert_eq!((d.config().syncid, d.config().ifname.as_str(), d.instance()), (52, "sync0", b));
        assert_eq!(d.wanted(), None, "nothing before the instance starts");
        let other = LvsSyncDaemon::new(&g, a, "sync0").unwrap().with_config(DaemonConfig::new("sync1"));
        assert_eq!(other.config().syncid, 0);
        assert_eq!(LvsSyncDaemon::new(&Group::new(), a, "sync0").unwrap_err(), Error::NoSuchHandle);
    }

    /// The table of the module doc, one notification at a time.
    #[test]
    fn the_daemon_follows_the_instance_as_keepalived_switches_it() {
        let (g, a, _) = two();
        let d = LvsSyncDaemon::new(&g, a, "sync0").unwrap();
        let mut h = d.hooks(Record::default());
        let steps = [
            (Event::Backup, Some(Role::Backup)),
            (Event::Master, Some(Role::Master)),
            (Event::MasterRxLowerPri, Some(Role::Master)),
            (Event::Fault, Some(Role::Backup)),
            (Event::Backup, Some(Role::Backup)),
            (Event::Master, Some(Role::Master)),
            (Event::Backup, Some(Role::Backup)),
            (Event::Stop, None),
        ];
        for (event, want) in steps {
            h.notify(&origin(a, 51), event, 150);
            assert_eq!(d.wanted(), want, "after {event:?}");
        }
        assert_eq!(h.inner().0.len(), steps.len(), "every notification reaches the inner hooks");
    }

    #[test]
    fn other_instances_and_every_other_call_pass_through() {
        let (g, a, b) = two();
        let d = LvsSyncDaemon::new(&g, a, "sync0").unwrap();
        let mut h = d.hooks(Record::default());
        h.notify(&origin(b, 52), Event::Master, 100);
        assert_eq!(d.wanted(), None, "another instance's state calls for nothing");
        let change = AddressChange { addrs: Vec::new(), vmac: None, accept: true };
        assert!(h.add_addresses(&origin(a, 51), &change).is_ok());
        assert!(h.remove_addresses(&origin(a, 51), &change).is_err(), "the inner hooks' error comes back");
        h.sync_group(two_groups(), State::Master);
        h.inner_mut().0.push("end".into());
        assert_eq!(h.inner().0, ["Master 52 100", "add 51", "remove 51", "group MASTER", "end"]);
    }

    /// A sync group handle, from a group that has one.
    fn two_groups() -> SyncId {
        let (mut g, a, b) = two();
        g.add_sync_group(lvs_core::Instant::ZERO, &[a, b], false).unwrap()
    }
}
