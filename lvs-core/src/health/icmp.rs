//! `PING_CHECK` (keepalived), ldirectord's `checktype = ping`: the server is up when it answers
//! an ICMP (or ICMPv6) echo request within the timeout.
//!
//! The prober sends one echo request to the plan's target address, with the probe's
//! [`nonce`](super::Probe::nonce) as its payload so that a late reply to an earlier probe is not
//! taken for this one, and reports [`Detail::Passed`](super::Detail::Passed) on the reply.

/// An ICMP echo check. The target and timeout are the plan's ([`CheckPlan`](super::CheckPlan)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingCheck;

impl PingCheck {
    /// The echo payload of a probe: its nonce, big-endian.
    pub fn payload(nonce: u64) -> [u8; 8] {
        nonce.to_be_bytes()
    }

    /// Whether an echo reply's payload answers the probe with this nonce.
    pub fn answers(nonce: u64, reply_payload: &[u8]) -> bool {
        reply_payload.starts_with(&Self::payload(nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_answers_only_its_own_probe() {
        let p = PingCheck::payload(0x0102_0304_0506_0708);
        assert_eq!(p, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(PingCheck::answers(0x0102_0304_0506_0708, &[1, 2, 3, 4, 5, 6, 7, 8, 0xff]));
        assert!(!PingCheck::answers(0x0102_0304_0506_0709, &p));
        assert!(!PingCheck::answers(0x0102_0304_0506_0708, &p[..7]));
    }
}
