//! The ranked least-connection family (`lc wlc sed nq fo ovf`) against the kernel's linear
//! walks, written here from `ip_vs_lc_schedule`, `ip_vs_wlc_schedule`, `ip_vs_sed_schedule`,
//! `ip_vs_nq_schedule`, `ip_vs_fo_schedule` and `ip_vs_ovf_schedule` (with 128-bit products, so
//! the walk cannot share an overflow with the ranking): after every step of a random history of
//! additions, deletions, weight edits (0 included), counter moves, overload flags and scheduler
//! re-initialisations, each scheduler picks what its walk picks.

use std::net::IpAddr;

use lvs_core::dest::{DestId, DestView, FwdMethod, RealServer};
use lvs_core::sched::{SchedCx, Scheduler, SeededRng};
use lvs_core::service::{SchedFlags, ServiceView};
use lvs_core::testkit::syn_meta;
use lvs_core::testkit::ServerList;
use lvs_core::wire::PacketMeta;
use lvs_core::Instant;
use proptest::prelude::*;

/// `ip_vs_dest_conn_overhead`.
fn overhead(d: &DestView<'_>) -> i128 {
    (i128::from(d.active()) << 8) + i128::from(d.inactive())
}

/// `ip_vs_sed_dest_overhead`.
fn sed_overhead(d: &DestView<'_>) -> i128 {
    i128::from(d.active()) + 1
}

fn lc_walk(svc: &ServiceView<'_>) -> Option<DestId> {
    let mut least: Option<(DestId, i128)> = None;
    for d in svc.dests() {
        if d.is_overloaded() || d.weight() == 0 {
            continue;
        }
        let doh = overhead(&d);
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((d.id(), doh));
        }
    }
    least.map(|(id, _)| id)
}

/// `ip_vs_wlc_schedule` and `ip_vs_sed_schedule`: the first server neither overloaded nor of
/// weight 0, then any later non-overloaded one (weight 0 included) with
/// `loh * dest.weight > doh * least.weight`.
fn weighted_walk(svc: &ServiceView<'_>, oh: fn(&DestView<'_>) -> i128) -> Option<DestId> {
    let mut it = svc.dests();
    let mut least = it.by_ref().find(|d| !d.is_overloaded() && d.weight() > 0)?;
    let mut loh = oh(&least);
    for d in it {
        if d.is_overloaded() {
            continue;
        }
        let doh = oh(&d);
        if loh * i128::from(d.weight()) > doh * i128::from(least.weight()) {
            least = d;
            loh = doh;
        }
    }
    Some(least.id())
}

fn nq_walk(svc: &ServiceView<'_>) -> Option<DestId> {
    let mut least: Option<(DestView<'_>, i128)> = None;
    for d in svc.dests() {
        if d.is_overloaded() || d.weight() == 0 {
            continue;
        }
        let doh = sed_overhead(&d);
        if d.active() == 0 {
            return Some(d.id());
        }
        let better = match &least {
            None => true,
            Some((l, loh)) => loh * i128::from(d.weight()) > doh * i128::from(l.weight()),
        };
        if better {
            least = Some((d, doh));
        }
    }
    least.map(|(d, _)| d.id())
}

fn fo_walk(svc: &ServiceView<'_>) -> Option<DestId> {
    let mut hweight = None;
    for d in svc.dests() {
        if !d.is_overloaded() && d.weight() > hweight.map_or(0, |(_, w)| w) {
            hweight = Some((d.id(), d.weight()));
        }
    }
    hweight.map(|(id, _)| id)
}

fn ovf_walk(svc: &ServiceView<'_>) -> Option<DestId> {
    let mut h: Option<(DestId, u32)> = None;
    for d in svc.dests() {
        let w = d.weight();
        if d.is_overloaded() || d.active() > w || w == 0 {
            continue;
        }
        if h.is_none_or(|(_, hw)| w > hw) {
            h = Some((d.id(), w));
        }
    }
    h.map(|(id, _)| id)
}

/// A kernel walk: the pick for a list.
type Walk = fn(&ServiceView<'_>) -> Option<DestId>;

/// Each scheduler with the walk that is its truth.
const WALKS: [(&str, Walk); 6] = [
    ("lc", lc_walk),
    ("wlc", |s| weighted_walk(s, overhead)),
    ("sed", |s| weighted_walk(s, sed_overhead)),
    ("nq", nq_walk),
    ("fo", fo_walk),
    ("ovf", ovf_walk),
];

/// One step of a history; servers are named by their index among the live ones (modulo).
#[derive(Clone, Debug)]
enum Step {
    Add(u32),
    Del(usize),
    Edit(usize, u32),
    Counts(usize, u32, u32),
    /// A connection bound (or released) as active or inactive: one counter up (or down) by one.
    Bump {
        at: usize,
        active: bool,
        up: bool,
    },
    Overload(usize, bool),
    Reinit,
}

fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0u32..5, 1 => Just(65535u32)]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0u32..6, 2 => 0u32..600, 1 => Just(u32::MAX)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => weight().prop_map(Step::Add),
        1 => any::<usize>().prop_map(Step::Del),
        2 => (any::<usize>(), weight()).prop_map(|(i, w)| Step::Edit(i, w)),
        4 => (any::<usize>(), count(), count()).prop_map(|(i, a, n)| Step::Counts(i, a, n)),
        6 => (any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(at, active, up)| Step::Bump { at, active, up }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, o)| Step::Overload(i, o)),
        1 => Just(Step::Reinit),
    ]
}

fn packet() -> PacketMeta {
    syn_meta((IpAddr::from([198, 51, 100, 7]), 40000), (IpAddr::from([203, 0, 113, 100]), 80))
}

/// A list with every scheduler of [`WALKS`] following it, told of each change as the director
/// tells it.
struct Family {
    list: ServerList,
    scheds: Vec<Box<dyn Scheduler>>,
    live: Vec<DestId>,
    added: u32,
}

impl Family {
    fn new() -> Self {
        let list = ServerList::new(SchedFlags::default());
        let scheds = WALKS
            .iter()
            .map(|(n, _)| {
                let mut s = lvs_sched::by_name(n).unwrap();
                s.init_service(&list.view()).unwrap();
                s
            })
            .collect();
        Family { list, scheds, live: Vec::new(), added: 0 }
    }

    fn pick_live(&self, i: usize) -> Option<DestId> {
        (!self.live.is_empty()).then(|| self.live[i % self.live.len()])
    }

    fn tell_moved(&mut self, id: DestId) {
        for s in &mut self.scheds {
            s.counts_moved(&self.list.view(), id);
        }
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Add(w) => {
                self.added += 1;
                let addr = IpAddr::from((0x0a00_0000u32 + self.added).to_be_bytes());
                let id = self.list.link(RealServer::new(addr, 80, FwdMethod::Route, w));
                self.live.push(id);
                for s in &mut self.scheds {
                    s.add_dest(&self.list.view(), id).unwrap();
                }
            }
            Step::Del(i) => {
                let Some(id) = self.pick_live(i) else { return };
                self.live.retain(|x| *x != id);
                let pos = self.list.unlink(id).unwrap();
                for s in &mut self.scheds {
                    s.del_dest(&self.list.view(), id, pos);
                }
            }
            Step::Edit(i, w) => {
                let Some(id) = self.pick_live(i) else { return };
                self.list.set_weight(id, w);
                for s in &mut self.scheds {
                    s.upd_dest(&self.list.view(), id);
                }
            }
            Step::Counts(i, a, n) => {
                let Some(id) = self.pick_live(i) else { return };
                self.list.set_counts(id, a, n);
                self.tell_moved(id);
            }
            Step::Bump { at, active, up } => {
                let Some(id) = self.pick_live(at) else { return };
                let d = self.list.view().get(id).unwrap();
                let by = |c: u32| if up { c.saturating_add(1) } else { c.saturating_sub(1) };
                let (a, n) = if active { (by(d.active()), d.inactive()) } else { (d.active(), by(d.inactive())) };
                self.list.set_counts(id, a, n);
                self.tell_moved(id);
            }
            Step::Overload(i, on) => {
                let Some(id) = self.pick_live(i) else { return };
                self.list.set_overloaded(id, on);
                self.tell_moved(id);
            }
            Step::Reinit => {
                for s in &mut self.scheds {
                    s.init_service(&self.list.view()).unwrap();
                }
            }
        }
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let mut rng = SeededRng::new(1);
        let pkt = packet();
        for (s, (name, walk)) in self.scheds.iter_mut().zip(WALKS) {
            let mut cx = SchedCx { now: Instant::from_secs(1), rng: &mut rng };
            let view = self.list.view();
            prop_assert_eq!(s.schedule(&mut cx, &view, &pkt), walk(&view), "{}", name);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ranked_picks_are_the_kernels_walks(steps in prop::collection::vec(step(), 1..80)) {
        let mut f = Family::new();
        f.check()?;
        for s in &steps {
            f.apply(s);
            f.check()?;
        }
    }
}

#[test]
fn ties_go_to_the_head_of_the_list_also_after_deletions_and_reinit() {
    let mut f = Family::new();
    for _ in 0..5 {
        f.apply(&Step::Add(2));
    }
    // All equal: the newest server, at the head, for every scheduler.
    let head = *f.live.last().unwrap();
    for (s, (name, _)) in f.scheds.iter_mut().zip(WALKS) {
        let mut rng = SeededRng::new(1);
        let mut cx = SchedCx { now: Instant::from_secs(1), rng: &mut rng };
        assert_eq!(s.schedule(&mut cx, &f.list.view(), &packet()), Some(head), "{name}");
    }
    f.apply(&Step::Del(4));
    f.apply(&Step::Reinit);
    f.apply(&Step::Add(2));
    f.check().unwrap();
}
