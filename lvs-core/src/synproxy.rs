//! SYN cookies for the SYN proxy, after Linux's scheme (`net/ipv4/syncookies.c`:
//! `secure_tcp_syn_cookie`, `check_tcp_syn_cookie`, `cookie_init_timestamp`,
//! `cookie_timestamp_decode`; Alibaba LVS and DPVS use the same): the director's initial
//! sequence number carries a keyed hash of the 4-tuple, a minute counter and the index of
//! the client's MSS in a table, so the client's ACK alone proves the handshake and tells the
//! MSS; the low six bits of the timestamp value carry window scaling and SACK.
//!
//! The keys are the application's ([`crate::DirectorConfig::synproxy_secret`],
//! [`crate::Director::set_synproxy_secret`], which keeps the one before so cookies issued just
//! before a rotation stay good); nothing here draws randomness or reads a clock. The hash is
//! SipHash-2-4, as Linux's.

use core::hash::Hasher;
use core::net::IpAddr;

use siphasher::sip::SipHasher24;

use crate::addr::raw;
use crate::time::Instant;

/// Bits of the cookie below the minute counter (`COOKIEBITS`).
const COOKIEBITS: u32 = 24;
/// Mask of those bits (`COOKIEMASK`).
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// A cookie is good while its minute counter is this many minutes old or less, minus one
/// (`MAX_SYNCOOKIE_AGE`): issued in minute `m`, it is checked in `m` or `m + 1`.
const MAX_AGE: u32 = 2;
/// Low bits of the timestamp value that carry options (`TSBITS`).
pub(crate) const TSBITS: u32 = 6;
/// "No window scaling" in the timestamp's option bits (`TS_OPT_WSCALE_MASK`).
const TS_WSCALE_NONE: u32 = 0xf;
/// SACK permitted, in the timestamp's option bits (`TS_OPT_SACK`).
const TS_SACK: u32 = 1 << 4;
/// Largest window scale (RFC 7323, `TCP_MAX_WSCALE`).
pub(crate) const MAX_WSCALE: u8 = 14;

/// The MSS values an IPv4 cookie can carry (`msstab` of `syncookies.c`).
pub(crate) const MSSTAB_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// The MSS values an IPv6 cookie can carry (`msstab` of `net/ipv6/syncookies.c`).
pub(crate) const MSSTAB_V6: [u16; 4] = [1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60];

/// The minute counter of `now` (`tcp_cookie_time`).
pub(crate) fn minute(now: Instant) -> u32 {
    (now.as_nanos() / 60_000_000_000) as u32
}

/// The timestamp clock the director answers with: milliseconds (`tcp_clock_ms`).
pub(crate) fn ts_clock(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000) as u32
}

/// A TCP flow as the cookie binds it: client address and port, virtual address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flow {
    pub(crate) client: (IpAddr, u16),
    pub(crate) vip: (IpAddr, u16),
}

/// The two keys in use: the application's current secret and the one before it.
#[derive(Clone, Debug)]
pub(crate) struct Cookies {
    current: [u8; 16],
    previous: Option<[u8; 16]>,
}

impl Cookies {
    pub(crate) fn new(secret: [u8; 16]) -> Self {
        Cookies { current: secret, previous: None }
    }

    /// A new secret; the current one stays good for cookies already issued.
    pub(crate) fn rotate(&mut self, secret: [u8; 16]) {
        self.previous = Some(self.current);
        self.current = secret;
    }

    /// `cookie_hash`: SipHash of the flow, the minute counter and which of the two hashes.
    fn hash(key: &[u8; 16], flow: &Flow, count: u32, which: u8) -> u32 {
        let mut h = SipHasher24::new_with_key(key);
        h.write(&raw(&flow.client.0));
        h.write(&raw(&flow.vip.0));
        h.write_u16(flow.client.1);
        h.write_u16(flow.vip.1);
        h.write_u32(count);
        h.write_u8(which);
        h.finish() as u32
    }

    /// `secure_tcp_syn_cookie`: the initial sequence number that answers a SYN with
    /// sequence number `isn`, carrying MSS index `data` (0..4) in minute `count`.
    fn make(key: &[u8; 16], flow: &Flow, isn: u32, count: u32, data: u32) -> u32 {
        Self::hash(key, flow, 0, 0)
            .wrapping_add(isn)
            .wrapping_add(count << COOKIEBITS)
            .wrapping_add(Self::hash(key, flow, count, 1).wrapping_add(data) & COOKIEMASK)
    }

    /// `check_tcp_syn_cookie`: the MSS index a cookie carries, if it is one of `key`'s for this
    /// flow and not older than [`MAX_AGE`] minutes.
    fn check_with(key: &[u8; 16], flow: &Flow, isn: u32, cookie: u32, count: u32) -> Option<u32> {
        let c = cookie.wrapping_sub(Self::hash(key, flow, 0, 0).wrapping_add(isn));
        let diff = count.wrapping_sub(c >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
        if diff >= MAX_AGE {
            return None;
        }
        let data = c.wrapping_sub(Self::hash(key, flow, count.wrapping_sub(diff), 1)) & COOKIEMASK;
        (data < MSSTAB_V4.len() as u32).then_some(data)
    }

    /// The cookie answering a SYN with sequence number `isn` that offered MSS `mss`
    /// (`__cookie_v4_init_sequence`: the largest table entry not above it).
    pub(crate) fn issue(&self, flow: &Flow, isn: u32, mss: u16, now: Instant) -> u32 {
        let tab = mss_table(&flow.client.0);
        let idx = tab.iter().rposition(|m| *m <= mss).unwrap_or(0);
        Self::make(&self.current, flow, isn, minute(now), idx as u32)
    }

    /// The MSS a client's ACK proves (`__cookie_v4_check`): `ack - 1` must be a cookie issued
    /// for this flow and the client's sequence number `seq - 1`, by the current or the previous
    /// secret, in this minute or the one before.
    pub(crate) fn check(&self, flow: &Flow, seq: u32, ack: u32, now: Instant) -> Option<u16> {
        let (isn, cookie, count) = (seq.wrapping_sub(1), ack.wrapping_sub(1), minute(now));
        let idx = Self::check_with(&self.current, flow, isn, cookie, count)
            .or_else(|| self.previous.and_then(|k| Self::check_with(&k, flow, isn, cookie, count)))?;
        mss_table(&flow.client.0).get(idx as usize).copied()
    }
}

/// The MSS table of the client's family.
fn mss_table(a: &IpAddr) -> &'static [u16; 4] {
    match a {
        IpAddr::V4(_) => &MSSTAB_V4,
        IpAddr::V6(_) => &MSSTAB_V6,
    }
}

/// `cookie_init_timestamp`: the timestamp value of the cookie SYN-ACK, its low bits carrying
/// the client's window scale (or none) and SACK, never later than `now_ts`.
pub(crate) fn ts_encode(now_ts: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let mut opts = wscale.map_or(TS_WSCALE_NONE, |w| u32::from(w.min(MAX_WSCALE)));
    if sack {
        opts |= TS_SACK;
    }
    let mask = (1 << TSBITS) - 1;
    let ts = (now_ts & !mask) | opts;
    if crate::xmit::seqadj::seq_after(ts, now_ts) {
        ts.wrapping_sub(1 << TSBITS)
    } else {
        ts
    }
}

/// `cookie_timestamp_decode`: window scale and SACK from the timestamp the client echoes.
pub(crate) fn ts_decode(tsecr: u32) -> (Option<u8>, bool) {
    let w = tsecr & TS_WSCALE_NONE;
    let wscale = (w != TS_WSCALE_NONE).then_some((w as u8).min(MAX_WSCALE));
    (wscale, tsecr & TS_SACK != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(cport: u16) -> Flow {
        Flow { client: ("198.51.100.2".parse().unwrap(), cport), vip: ("203.0.113.100".parse().unwrap(), 80) }
    }

    #[test]
    fn a_cookie_is_good_for_its_flow_within_two_minutes() {
        let k = Cookies::new([7; 16]);
        let t0 = Instant::from_secs(600);
        let c = k.issue(&flow(40000), 1000, 1460, t0);
        // The client's ACK: seq = isn + 1, ack = cookie + 1.
        assert_eq!(k.check(&flow(40000), 1001, c.wrapping_add(1), t0), Some(1460));
        // Minute m and m + 1 (MAX_SYNCOOKIE_AGE 2); not m + 2.
        assert_eq!(k.check(&flow(40000), 1001, c.wrapping_add(1), Instant::from_secs(600 + 119)), Some(1460));
        assert_eq!(k.check(&flow(40000), 1001, c.wrapping_add(1), Instant::from_secs(600 + 120)), None);
        // Nor before it was issued.
        assert_eq!(k.check(&flow(40000), 1001, c.wrapping_add(1), Instant::from_secs(540)), None);
        // Another client port, another key. (The client's sequence number is only added in, as
        // in Linux: a neighbouring one reads as another MSS index, not as a bad cookie.)
        assert_eq!(k.check(&flow(40001), 1001, c.wrapping_add(1), t0), None);
        assert_eq!(Cookies::new([8; 16]).check(&flow(40000), 1001, c.wrapping_add(1), t0), None);
    }

    #[test]
    fn the_mss_is_cut_to_the_table_and_rotation_keeps_the_last_secret() {
        let mut k = Cookies::new([1; 16]);
        let now = Instant::from_secs(60);
        for (offered, carried) in [(1460, 1460), (1459, 1440), (1400, 1300), (9000, 1460), (100, 536)] {
            let c = k.issue(&flow(1), 5, offered, now);
            assert_eq!(k.check(&flow(1), 6, c.wrapping_add(1), now), Some(carried), "{offered}");
        }
        let c = k.issue(&flow(1), 5, 1460, now);
        k.rotate([2; 16]);
        assert_eq!(k.check(&flow(1), 6, c.wrapping_add(1), now), Some(1460));
        k.rotate([3; 16]);
        assert_eq!(k.check(&flow(1), 6, c.wrapping_add(1), now), None);
    }

    #[test]
    fn timestamps_carry_wscale_and_sack_and_never_run_ahead() {
        for (w, s) in [(Some(7), true), (None, true), (Some(0), false), (None, false), (Some(14), true)] {
            let ts = ts_encode(1_000_000, w, s);
            assert!(!crate::xmit::seqadj::seq_after(ts, 1_000_000));
            assert!(1_000_000 - ts < 64);
            assert_eq!(ts_decode(ts), (w, s));
        }
    }
}
