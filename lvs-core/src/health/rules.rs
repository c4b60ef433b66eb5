//! The three rules of the room as pure functions, each tested cell by cell: rise/fall
//! (HAProxy `rise`/`fall`, keepalived `retry`, ldirectord `failurecount`), quorum with
//! hysteresis (keepalived `update_quorum_state`), and the slow-start ramp (HAProxy `slowstart`).

use core::time::Duration;

use crate::time::duration_nanos;

/// What the checks say of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Passing: `rise` consecutive passes since it was last down (or never down).
    Up,
    /// Failing: `fall` consecutive failures since it was last up (or `alpha` and not yet up).
    Down,
}

/// Consecutive results of one kind, the counters toward rise and fall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streak {
    /// Consecutive passes (0 after a failure).
    pub passes: u32,
    /// Consecutive failures (0 after a pass).
    pub failures: u32,
}

/// One result through the rise/fall machine: the streak moves, and the health flips when the
/// streak reaches `rise` (down → up) or `fall` (up → down).
///
/// ```text
///          pass                          fail
/// Up    :  passes+1, failures=0          failures+1, passes=0; Down if failures ≥ fall
/// Down  :  passes+1, failures=0; Up if   failures+1, passes=0
///          passes ≥ rise
/// ```
pub(crate) fn step(health: Health, streak: &mut Streak, pass: bool, rise: u32, fall: u32) -> Health {
    if pass {
        streak.passes = streak.passes.saturating_add(1);
        streak.failures = 0;
    } else {
        streak.failures = streak.failures.saturating_add(1);
        streak.passes = 0;
    }
    match (health, pass) {
        (Health::Down, true) if streak.passes >= rise => Health::Up,
        (Health::Up, false) if streak.failures >= fall => Health::Down,
        _ => health,
    }
}

/// The quorum state after a change of the live weight (the sum of the weights of the servers
/// in service): gained at `quorum + hysteresis` or more, lost below `quorum − hysteresis` or at
/// zero, kept in between. A service with no live weight never has quorum, whatever the
/// threshold (keepalived loses it at zero too; gaining it at zero with `quorum 0` would flap).
pub(crate) fn quorum(had: bool, live: u64, quorum: u32, hysteresis: u32) -> bool {
    if had {
        live > 0 && live >= u64::from(quorum.saturating_sub(hysteresis))
    } else {
        live > 0 && live >= u64::from(quorum) + u64::from(hysteresis)
    }
}

/// The weight in force `elapsed` into a slow start of `length` toward `target`: the target's
/// share of the time, rounded up, at least 1 (so the server sees traffic from the start), and
/// the target once the ramp is over.
pub(crate) fn ramp_weight(target: u32, elapsed: Duration, length: Duration) -> u32 {
    if target == 0 || elapsed >= length {
        return target;
    }
    let (e, l) = (u128::from(duration_nanos(elapsed)), u128::from(duration_nanos(length)));
    let w = (u128::from(target) * e).div_ceil(l);
    u32::try_from(w).unwrap_or(target).clamp(1, target)
}

/// How often a slow start's weight moves: a twentieth of the ramp, at least a second (HAProxy's
/// rate), never longer than the ramp.
pub(crate) fn ramp_step(length: Duration) -> Duration {
    (length / 20).max(Duration::from_secs(1)).min(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_fall_every_cell() {
        // (health, passes, failures, result, rise, fall) -> (health, passes, failures)
        let cells = [
            (Health::Up, 0, 0, true, 2, 3, Health::Up, 1, 0),
            (Health::Up, 0, 1, false, 2, 3, Health::Up, 0, 2),
            (Health::Up, 0, 2, false, 2, 3, Health::Down, 0, 3),
            (Health::Up, 5, 0, false, 2, 1, Health::Down, 0, 1),
            (Health::Up, 0, 2, true, 2, 3, Health::Up, 1, 0),
            (Health::Down, 0, 0, true, 2, 3, Health::Down, 1, 0),
            (Health::Down, 1, 0, true, 2, 3, Health::Up, 2, 0),
            (Health::Down, 0, 4, true, 1, 3, Health::Up, 1, 0),
            (Health::Down, 1, 0, false, 2, 3, Health::Down, 0, 1),
            (Health::Down, 0, 9, false, 2, 3, Health::Down, 0, 10),
        ];
        for (h, p, f, pass, rise, fall, want_h, want_p, want_f) in cells {
            let mut s = Streak { passes: p, failures: f };
            let got = step(h, &mut s, pass, rise, fall);
            assert_eq!((got, s.passes, s.failures), (want_h, want_p, want_f), "{h:?} {p} {f} {pass}");
        }
    }

    #[test]
    fn quorum_with_hysteresis() {
        // quorum 4, hysteresis 1: gained at 5, lost below 3.
        let cells = [
            (false, 4, false),
            (false, 5, true),
            (true, 3, true),
            (true, 2, false),
            (true, 4, true),
            (false, 0, false),
        ];
        for (had, live, want) in cells {
            assert_eq!(quorum(had, live, 4, 1), want, "had {had} live {live}");
        }
        // Hysteresis above the quorum: lost only at zero.
        assert!(quorum(true, 1, 1, 5));
        assert!(!quorum(true, 0, 1, 5));
        // Quorum 0 needs some live weight all the same.
        assert!(!quorum(false, 0, 0, 0));
        assert!(quorum(false, 1, 0, 0));
    }

    #[test]
    fn ramp_rises_from_one_to_the_target() {
        let len = Duration::from_secs(10);
        assert_eq!(ramp_weight(100, Duration::ZERO, len), 1);
        assert_eq!(ramp_weight(100, Duration::from_secs(1), len), 10);
        assert_eq!(ramp_weight(100, Duration::from_millis(1001), len), 11);
        assert_eq!(ramp_weight(3, Duration::from_secs(5), len), 2);
        assert_eq!(ramp_weight(100, len, len), 100);
        assert_eq!(ramp_weight(100, Duration::from_secs(99), len), 100);
        assert_eq!(ramp_weight(0, Duration::from_secs(1), len), 0);
        assert_eq!(ramp_weight(u32::MAX, Duration::from_secs(9), len), 3_865_470_566);
        assert_eq!(ramp_step(Duration::from_secs(60)), Duration::from_secs(3));
        assert_eq!(ramp_step(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(ramp_step(Duration::from_millis(300)), Duration::from_millis(300));
    }
}
