//! Worked examples and properties of the schedulers, driven the way the director drives them:
//! servers linked at the head of the list, then the scheduler told.

use std::net::IpAddr;

use lvs_core::dest::{DestId, FwdMethod, RealServer};
use lvs_core::sched::{SchedCx, Scheduler, SeededRng};
use lvs_core::service::SchedFlags;
use lvs_core::testkit::syn_meta;
use lvs_core::testkit::ServerList;
use lvs_core::time::Instant;
use lvs_core::wire::PacketMeta;
use proptest::prelude::*;

struct Bench {
    list: ServerList,
    sched: Box<dyn Scheduler>,
    rng: SeededRng,
    added: u8,
}

fn pkt(src: IpAddr, sport: u16, dst: IpAddr) -> PacketMeta {
    syn_meta((src, sport), (dst, 80))
}

fn client(i: u32) -> IpAddr {
    IpAddr::from((0xC633_6400u32 + i).to_be_bytes())
}

impl Bench {
    fn new(name: &str) -> Self {
        Self::with_flags(name, SchedFlags::default())
    }

    fn with_flags(name: &str, flags: SchedFlags) -> Self {
        let mut b = Bench {
            list: ServerList::new(flags),
            sched: lvs_sched::by_name(name).unwrap(),
            rng: SeededRng::new(1),
            added: 0,
        };
        b.sched.init_service(&b.list.view()).unwrap();
        b
    }

    /// `ipvsadm -a` of server `192.0.2.(10+n)` with weight `w`; returns its handle.
    fn add(&mut self, w: u32) -> DestId {
        self.added += 1;
        let n = 10 + self.added;
        let id = self.list.link(RealServer::new(IpAddr::from([192, 0, 2, n]), 80, FwdMethod::Route, w));
        self.sched.add_dest(&self.list.view(), id).unwrap();
        id
    }

    /// Re-initialises the scheduler over the current list (as `ipvsadm -E` switching to it).
    fn reinit(&mut self) {
        self.sched.init_service(&self.list.view()).unwrap();
    }

    fn del(&mut self, id: DestId) {
        let pos = self.list.unlink(id).unwrap();
        self.sched.del_dest(&self.list.view(), id, pos);
    }

    fn edit(&mut self, id: DestId, w: u32) {
        self.list.set_weight(id, w);
        self.sched.upd_dest(&self.list.view(), id);
    }

    fn counts(&mut self, id: DestId, active: u32, inactive: u32) {
        self.list.set_counts(id, active, inactive);
        self.sched.counts_moved(&self.list.view(), id);
    }

    fn overload(&mut self, id: DestId, on: bool) {
        self.list.set_overloaded(id, on);
        self.sched.counts_moved(&self.list.view(), id);
    }

    fn pick_for(&mut self, p: &PacketMeta) -> Option<DestId> {
        let mut cx = SchedCx { now: Instant::from_secs(1), rng: &mut self.rng };
        self.sched.schedule(&mut cx, &self.list.view(), p)
    }

    fn pick(&mut self) -> Option<DestId> {
        self.pick_for(&pkt(client(1), 1000, "203.0.113.100".parse().unwrap()))
    }

    fn picks(&mut self, n: usize) -> Vec<Option<DestId>> {
        (0..n).map(|_| self.pick()).collect()
    }
}

#[test]
fn rr_walks_newest_first_and_skips_weight_zero() {
    // The rr-dr trace: added rs1=1, rs2=2, rs3=0, rs4=3 → rs4, rs2, rs1, rs4, ...
    let mut b = Bench::new("rr");
    let [r1, r2, _r3, r4] = [b.add(1), b.add(2), b.add(0), b.add(3)];
    assert_eq!(b.picks(6), [r4, r2, r1, r4, r2, r1].map(Some));
    // Deleting the last pick resumes after its predecessor.
    let mut b = Bench::new("rr");
    let [r1, r2, r3] = [b.add(1), b.add(1), b.add(1)];
    assert_eq!(b.pick(), Some(r3));
    assert_eq!(b.pick(), Some(r2));
    b.del(r2);
    assert_eq!(b.picks(3), [r1, r3, r1].map(Some));
}

#[test]
fn wrr_steps_by_gcd() {
    // {A:4, B:2} in list order → A, A, B, A, A, B (the reference's worked example).
    let mut b = Bench::new("wrr");
    let bb = b.add(2);
    let a = b.add(4);
    b.reinit();
    assert_eq!(b.picks(6), [a, a, bb, a, a, bb].map(Some));
    // All weights 0: nothing.
    let mut z = Bench::new("wrr");
    z.add(0);
    assert_eq!(z.pick(), None);
}

#[test]
fn least_connection_family_examples() {
    let mut b = Bench::new("lc");
    let [x, y] = [b.add(1), b.add(5)];
    b.counts(x, 1, 0);
    b.counts(y, 0, 300);
    assert_eq!(b.pick(), Some(x), "lc: 256 > 300? no: 1*256 < 300");
    let mut b = Bench::new("wlc");
    let [x, y] = [b.add(1), b.add(3)];
    b.counts(x, 1, 0);
    b.counts(y, 2, 0);
    assert_eq!(b.pick(), Some(y), "wlc: 512/3 < 256/1");
    let mut b = Bench::new("sed");
    let [x, y] = [b.add(1), b.add(2)];
    b.counts(x, 0, 50);
    b.counts(y, 1, 0);
    assert_eq!(b.pick(), Some(y), "sed: ties (2/2 vs 1/1) go to the first in list order");
    let mut b = Bench::new("nq");
    let [x, y] = [b.add(1), b.add(9)];
    b.counts(x, 0, 0);
    b.counts(y, 1, 0);
    assert_eq!(b.pick(), Some(x), "nq: an idle server wins at once");
    let mut b = Bench::new("fo");
    let [x, y, z] = [b.add(3), b.add(5), b.add(5)];
    assert_eq!(b.pick(), Some(z));
    b.overload(z, true);
    assert_eq!(b.pick(), Some(y));
    let _ = x;
    let mut b = Bench::new("ovf");
    let [x, y] = [b.add(1), b.add(2)];
    b.counts(y, 3, 0);
    assert_eq!(b.pick(), Some(x), "ovf: the heavier server has more active connections than its weight");
}

#[test]
fn sh_and_dh_fail_on_a_quiesced_bucket_unless_fallback() {
    let mut b = Bench::new("sh");
    b.add(1);
    b.add(0);
    let mut fb = Bench::with_flags("sh", SchedFlags(SchedFlags::FLAG1));
    fb.add(1);
    fb.add(0);
    let (mut none, mut fell_back) = (0, 0);
    for i in 0..200 {
        let p = pkt(client(i), 1000, "203.0.113.100".parse().unwrap());
        if b.pick_for(&p).is_none() {
            none += 1;
            if fb.pick_for(&p).is_some() {
                fell_back += 1;
            }
        }
    }
    assert!(none > 0);
    assert_eq!(none, fell_back);
    let mut d = Bench::new("dh");
    let x = d.add(1);
    let p = pkt(client(1), 1, "203.0.113.7".parse().unwrap());
    assert_eq!(d.pick_for(&p), Some(x));
    d.edit(x, 0);
    assert_eq!(d.pick_for(&p), None);
}

#[test]
fn lblc_keeps_a_destination_on_its_server_until_overloaded() {
    let mut b = Bench::new("lblc");
    let [x, y] = [b.add(1), b.add(4)];
    let p = pkt(client(1), 1, "203.0.113.7".parse().unwrap());
    assert_eq!(b.pick_for(&p), Some(y));
    b.counts(y, 5, 0);
    assert_eq!(b.pick_for(&p), Some(x), "y has more active than weight while x is under half");
    b.counts(x, 0, 0);
    b.counts(y, 0, 0);
    assert_eq!(b.pick_for(&p), Some(x), "the cache now says x");
    let mut r = Bench::new("lblcr");
    let [x, y] = [r.add(1), r.add(4)];
    assert_eq!(r.pick_for(&p), Some(y));
    r.counts(y, 5, 0);
    assert_eq!(r.pick_for(&p), Some(x), "the set grows by the least loaded server");
    r.counts(x, 9, 0);
    r.counts(y, 0, 0);
    assert_eq!(r.pick_for(&p), Some(y), "and its least loaded member serves");
}

proptest! {
    #[test]
    fn wrr_gives_each_server_its_weight_share(ws in prop::collection::vec(0u32..7, 1..6)) {
        let mut b = Bench::new("wrr");
        let ids: Vec<DestId> = ws.iter().map(|w| b.add(*w)).collect();
        b.reinit();
        let g = ws.iter().copied().filter(|w| *w > 0).fold(0, lvs_sched::util::gcd);
        prop_assume!(g > 0);
        let cycle: u32 = ws.iter().map(|w| w / g).sum();
        let picks = b.picks(cycle as usize * 3);
        for (id, w) in ids.iter().zip(&ws) {
            let n = picks.iter().filter(|p| **p == Some(*id)).count() as u32;
            prop_assert_eq!(n, 3 * w / g);
        }
    }

    #[test]
    fn rr_never_picks_weight_zero_or_overloaded(ws in prop::collection::vec((0u32..3, any::<bool>()), 1..8), n in 1usize..30) {
        let mut b = Bench::new("rr");
        let ids: Vec<DestId> = ws.iter().map(|(w, _)| b.add(*w)).collect();
        for (id, (_, ov)) in ids.iter().zip(&ws) {
            b.overload(*id, *ov);
        }
        let usable = ws.iter().any(|(w, ov)| *w > 0 && !ov);
        for p in b.picks(n) {
            match p {
                Some(id) => {
                    let d = b.list.view().get(id).unwrap();
                    prop_assert!(d.weight() > 0 && !d.is_overloaded());
                }
                None => prop_assert!(!usable),
            }
        }
    }

    #[test]
    fn lc_family_picks_the_first_minimum(
        servers in prop::collection::vec((1u32..5, 0u32..6, 0u32..300, any::<bool>()), 1..8),
        name in prop::sample::select(vec!["lc", "wlc", "sed"]),
    ) {
        let mut b = Bench::new(name);
        let ids: Vec<DestId> = servers.iter().map(|(w, ..)| b.add(*w)).collect();
        for (id, (_, a, i, ov)) in ids.iter().zip(&servers) {
            b.counts(*id, *a, *i);
            b.overload(*id, *ov);
        }
        // score as a fraction (num, den), compared by cross-multiplication.
        let score = |id: DestId| {
            let d = b.list.view().get(id).unwrap();
            let oh = (u64::from(d.active()) << 8) + u64::from(d.inactive());
            match name {
                "lc" => (oh, 1),
                "wlc" => (oh, u64::from(d.weight())),
                _ => (u64::from(d.active()) + 1, u64::from(d.weight())),
            }
        };
        let candidates: Vec<DestId> = b.list.view().ids().iter().copied().filter(|id| !b.list.view().get(*id).unwrap().is_overloaded()).collect();
        let best = candidates.iter().copied().fold(None::<DestId>, |best, id| match best {
            Some(bid) => {
                let (bn, bd) = score(bid);
                let (n, d) = score(id);
                if n * bd < bn * d { Some(id) } else { Some(bid) }
            }
            None => Some(id),
        });
        prop_assert_eq!(b.pick(), best);
    }

    #[test]
    fn mh_fills_the_table_by_weight(ws in prop::collection::vec(1u32..8, 1..6)) {
        let mut b = Bench::new("mh");
        let ids: Vec<DestId> = ws.iter().map(|w| b.add(*w)).collect();
        let mut hits = vec![0usize; ids.len()];
        let n = 20_000u32;
        for i in 0..n {
            let p = pkt(client(i * 7919), 1, "203.0.113.1".parse().unwrap());
            let id = b.pick_for(&p).unwrap();
            hits[ids.iter().position(|x| *x == id).unwrap()] += 1;
        }
        let total: u32 = ws.iter().sum();
        for (h, w) in hits.iter().zip(&ws) {
            let want = f64::from(n) * f64::from(*w) / f64::from(total);
            prop_assert!((*h as f64 - want).abs() < want * 0.25 + 200.0, "share {} for weight {} (want {})", h, w, want);
        }
    }

    #[test]
    fn mh_removal_moves_little_besides_the_removed_share(ws in prop::collection::vec(1u32..4, 3..7), victim in 0usize..3) {
        let mut b = Bench::new("mh");
        let ids: Vec<DestId> = ws.iter().map(|w| b.add(*w)).collect();
        let keys: Vec<PacketMeta> = (0..4000u32).map(|i| pkt(client(i * 104_729), 1, "203.0.113.1".parse().unwrap())).collect();
        let before: Vec<Option<DestId>> = keys.iter().map(|p| b.pick_for(p)).collect();
        b.del(ids[victim]);
        let after: Vec<Option<DestId>> = keys.iter().map(|p| b.pick_for(p)).collect();
        let moved_others = before.iter().zip(&after).filter(|(x, y)| **x != Some(ids[victim]) && x != y).count();
        for (x, y) in before.iter().zip(&after) {
            if *x == Some(ids[victim]) {
                prop_assert!(y.is_some() && *y != Some(ids[victim]));
            }
        }
        // Maglev's promise is near-minimal disruption: a few percent of other keys at most.
        prop_assert!(moved_others * 100 <= keys.len() * 8, "{} of {} other keys moved", moved_others, keys.len());
    }
}

/// `ip_vs_twos_schedule` draws in `0..=total`; a tie (here every server idle) keeps the first
/// draw, and a draw of 0 or up to its weight lands on the first eligible server: the newest
/// server gets `(w + 1) / (total + 1)` of the picks, every other `w / (total + 1)`.
#[test]
fn twos_draws_by_weight_with_the_kernels_inclusive_range() {
    let mut b = Bench::new("twos");
    let ws = [3u32, 1, 0, 4]; // linked in this order: the last is the list head
    let ids: Vec<DestId> = ws.iter().map(|w| b.add(*w)).collect();
    let n = 40_000usize;
    let picks = b.picks(n);
    assert!(!picks.contains(&Some(ids[2])), "weight 0 is never drawn");
    let total: u32 = ws.iter().sum();
    for (i, (id, w)) in ids.iter().zip(ws).enumerate() {
        let share = if i == ids.len() - 1 { w + 1 } else { w };
        let want = n as f64 * f64::from(share) / f64::from(total + 1);
        let got = picks.iter().filter(|p| **p == Some(*id)).count() as f64;
        assert!((got - want).abs() < want * 0.05 + 50.0, "server {i}: {got} picks, want {want}");
    }
}

/// Of the two draws the one with the lower overhead per weight wins: with two weight-1 servers
/// the head takes draws 0 and 1 of 0..=2, the other draw 2; a loaded server is picked only when
/// both draws land on it — 1/9 for the second server, 4/9 for the head.
#[test]
fn twos_prefers_the_less_loaded_of_its_two_draws() {
    for (loaded, want) in [(0usize, 4.0 / 9.0), (1, 1.0 / 9.0)] {
        let mut b = Bench::new("twos");
        let second = b.add(1);
        let head = b.add(1);
        let busy = [head, second][loaded];
        b.counts(busy, 10, 0);
        let n = 36_000usize;
        let got = b.picks(n).iter().filter(|p| **p == Some(busy)).count() as f64 / n as f64;
        assert!((got - want).abs() < 0.02, "loaded server {loaded}: share {got}, want {want}");
    }
}

proptest! {
    #[test]
    fn twos_never_picks_weight_zero_or_overloaded_and_picks_the_better_draw(
        servers in prop::collection::vec((0u32..4, 0u32..5, any::<bool>()), 1..8),
        n in 1usize..20,
    ) {
        let mut b = Bench::new("twos");
        let ids: Vec<DestId> = servers.iter().map(|(w, ..)| b.add(*w)).collect();
        for (id, (_, a, ov)) in ids.iter().zip(&servers) {
            b.counts(*id, *a, 0);
            b.overload(*id, *ov);
        }
        let usable = servers.iter().any(|(w, _, ov)| *w > 0 && !ov);
        for _ in 0..n {
            // The same two numbers the scheduler will draw, each walked down the eligible
            // servers in list order until it is within a server's weight.
            let mut shadow = b.rng.clone();
            let eligible: Vec<(DestId, u64, u64)> = b
                .list
                .view()
                .dests()
                .filter(|d| d.weight() > 0 && !d.is_overloaded())
                .map(|d| (d.id(), u64::from(d.weight()), u64::from(d.active()) << 8))
                .collect();
            let span = eligible.iter().map(|e| e.1).sum::<u64>() + 1;
            let land = |mut r: u64| {
                eligible.iter().copied().find(|e| {
                    let hit = r <= e.1;
                    r = r.saturating_sub(e.1);
                    hit
                })
            };
            let first = land(u64::from(shadow.next_u32()) % span);
            let second = land(u64::from(shadow.next_u32()) % span);
            let want = match (first, second) {
                (Some(a), Some(c)) if c.1 * a.2 > a.1 * c.2 => Some(c.0),
                (a, _) => a.map(|a| a.0),
            };
            let p = b.pick();
            prop_assert_eq!(p, want);
            match p {
                Some(id) => {
                    let d = b.list.view().get(id).unwrap();
                    prop_assert!(d.weight() > 0 && !d.is_overloaded());
                }
                None => prop_assert!(!usable),
            }
        }
    }
}
