//! Counters and the rate estimator (`ip_vs_est.c`): per service, per real server and global.
//!
//! The estimator samples every 2 seconds and keeps an exponentially weighted average with
//! weight 1/4, in the kernel's fixed point: conns and packets scaled by 2^10 per second, bytes
//! by 2^5 per second (`ip_vs_estimation_kthread` / `ip_vs_chain_estimation`).

/// Interval between estimator samples.
pub const EST_INTERVAL_NS: u64 = 2_000_000_000;

/// Traffic counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client (NAT only).
    pub outpkts: u64,
    /// Bytes client → server (IP length).
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

impl Counters {
    /// The sum of two sets of counters (shards of one service).
    pub fn plus(&self, o: &Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_add(o.conns),
            inpkts: self.inpkts.wrapping_add(o.inpkts),
            outpkts: self.outpkts.wrapping_add(o.outpkts),
            inbytes: self.inbytes.wrapping_add(o.inbytes),
            outbytes: self.outbytes.wrapping_add(o.outbytes),
        }
    }

    fn minus(&self, o: &Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// Rates as `ipvsadm --rate` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// Counters with a zero point (`-Z`) and the estimator state.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    cnt: Counters,
    zero: Counters,
    last: Counters,
    avg: [i64; 5],
}

impl Stats {
    /// Counts one packet in.
    #[inline]
    pub(crate) fn packet_in(&mut self, bytes: u32) {
        self.cnt.inpkts += 1;
        self.cnt.inbytes += u64::from(bytes);
    }

    /// Counts one packet out.
    #[inline]
    pub(crate) fn packet_out(&mut self, bytes: u32) {
        self.cnt.outpkts += 1;
        self.cnt.outbytes += u64::from(bytes);
    }

    /// Counts one new connection.
    #[inline]
    pub(crate) fn conn(&mut self) {
        self.cnt.conns += 1;
    }

    /// Counters since the last zeroing.
    pub fn counters(&self) -> Counters {
        self.cnt.minus(&self.zero)
    }

    /// Counters since the start, zeroing ignored (what the kernel keeps per CPU, for
    /// `/proc/net/ip_vs_stats_percpu`).
    #[cfg(feature = "ipvsadm")]
    pub(crate) fn raw(&self) -> Counters {
        self.cnt
    }

    /// `ipvsadm -Z`: counters restart from zero and the estimator from scratch.
    pub(crate) fn zero(&mut self) {
        self.zero = self.cnt;
        self.last = self.cnt;
        self.avg = [0; 5];
    }

    /// One 2-second estimator sample.
    pub(crate) fn estimate(&mut self) {
        let d = self.cnt.minus(&self.last);
        self.last = self.cnt;
        let samples = [d.conns << 9, d.inpkts << 9, d.outpkts << 9, d.inbytes << 4, d.outbytes << 4];
        for (avg, r) in self.avg.iter_mut().zip(samples) {
            let r = i64::try_from(r).unwrap_or(i64::MAX);
            *avg += (r - *avg) >> 2;
        }
    }

    /// The estimated rates.
    pub fn rates(&self) -> Rates {
        let unit = |v: i64, round: i64, shift: u32| u64::try_from((v + round) >> shift).unwrap_or(0);
        Rates {
            cps: unit(self.avg[0], 0x1FF, 10),
            inpps: unit(self.avg[1], 0x1FF, 10),
            outpps: unit(self.avg[2], 0x1FF, 10),
            inbps: unit(self.avg[3], 0xF, 5),
            outbps: unit(self.avg[4], 0xF, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_converges_to_the_rate() {
        let mut s = Stats::default();
        for _ in 0..40 {
            for _ in 0..200 {
                s.packet_in(100);
            }
            s.conn();
            s.conn();
            s.estimate();
        }
        let r = s.rates();
        assert_eq!((r.cps, r.inpps, r.inbps, r.outpps), (1, 100, 10_000, 0));
    }

    #[test]
    fn zero_restarts_counters_and_rates() {
        let mut s = Stats::default();
        s.packet_in(60);
        s.estimate();
        s.zero();
        assert_eq!(s.counters(), Counters::default());
        assert_eq!(s.rates(), Rates::default());
        s.packet_out(40);
        assert_eq!(s.counters().outbytes, 40);
    }
}
