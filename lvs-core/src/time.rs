//! Time as the core sees it: a monotonic nanosecond count handed in by the caller (the kernel's jiffies).
//!
//! The core never asks for the time. Every entry point that needs it takes `now: Instant`.

use core::ops::{Add, Sub};
use core::time::Duration;

use crate::conn::MAX_TIMEOUT_MS;

/// A point on the caller's monotonic clock, in nanoseconds since an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `ns` nanoseconds after the origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Instant(ns)
    }

    /// An instant `s` seconds after the origin.
    pub const fn from_secs(s: u64) -> Self {
        Instant(s.saturating_mul(1_000_000_000))
    }

    /// An instant `us` microseconds after the origin (pcap timestamps).
    pub const fn from_micros(us: u64) -> Self {
        Instant(us.saturating_mul(1_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `now` in wrapping milliseconds: the clock connection entries keep their expiry on (the
/// kernel's jiffies wrap too), 4 bytes instead of 8.
pub(crate) fn now_ms(now: Instant) -> u32 {
    (now.0 / 1_000_000) as u32
}

/// The wrapping millisecond `ms` milliseconds after `now` ([`now_ms`]): an entry's expiry. A
/// timeout above [`MAX_TIMEOUT_MS`] (about 24.8 days) counts as that, so that expiries stay
/// ordered by the sign of their wrapping difference.
pub(crate) fn after_ms(now: Instant, ms: u32) -> u32 {
    now_ms(now).wrapping_add(ms.min(MAX_TIMEOUT_MS))
}

#[cfg(feature = "std")]
impl Instant {
    /// Converts a `std::time::Instant` measured from `origin` (the caller picks the origin once).
    pub fn from_std(t: std::time::Instant, origin: std::time::Instant) -> Self {
        Instant(duration_nanos(t.saturating_duration_since(origin)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(2);
        assert_eq!(t + Duration::from_millis(500), Instant(2_500_000_000));
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(Instant(u64::MAX) + Duration::from_secs(1), Instant(u64::MAX));
        assert_eq!(Instant::from_micros(3), Instant(3000));
        assert_eq!(after_ms(Instant::from_secs(2), 500), 2500);
        assert_eq!(after_ms(Instant::from_secs(2), u32::MAX), 2000 + MAX_TIMEOUT_MS, "capped");
        assert_eq!(after_ms(Instant(u64::MAX), 1), (u64::MAX / 1_000_000) as u32 + 1, "wraps");
    }
}
