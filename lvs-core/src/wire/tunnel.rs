//! The headers a GUE or GRE tunnel puts between the outer IP header and the packet it carries
//! (`ipvs_gue_encap`, `ipvs_gre_encap` with `gre_build_header` in `ip_vs_xmit.c`): UDP and the
//! 4-byte GUE header of draft-ietf-intarea-gue (RFC 8086's GRE-in-UDP shares its UDP rules), and
//! the GRE header of RFC 2784, each with its optional checksum.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use super::{csum, field, ipproto};

/// A UDP header.
pub(crate) const UDP_LEN: usize = 8;
/// The GUE header without options (`struct guehdr`).
pub(crate) const GUE_LEN: usize = 4;
/// The GRE header without options (`gre_calc_hlen(0)`).
pub(crate) const GRE_LEN: usize = 4;
/// The GRE checksum and its reserved word (`gre_calc_hlen` adds 4 for `TUNNEL_CSUM`).
pub(crate) const GRE_CSUM_LEN: usize = 4;
/// GRE's C bit (`GRE_CSUM`): a checksum and a reserved word follow the first four bytes.
const GRE_FLAG_CSUM: u16 = 0x8000;

/// The encapsulation headers of one tunnelled packet, written in front of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EncapRepr {
    /// UDP then GUE version 0 (data message: C bit clear, no options, no flags).
    Gue {
        /// UDP source port (`udp_flow_src_port`).
        sport: u16,
        /// UDP destination port (`--tun-port`).
        dport: u16,
        /// Compute the UDP checksum (`--tun-csum`, `--tun-remcsum`); zero otherwise.
        csum: bool,
        /// The inner packet's IP protocol (`proto_ctype`): 4 or 41.
        proto: u8,
    },
    /// GRE version 0 without key or sequence number.
    Gre {
        /// Write the C bit and the checksum (`--tun-csum`).
        csum: bool,
        /// The inner packet's EtherType: 0x0800 or 0x86DD.
        ethertype: u16,
    },
}

impl EncapRepr {
    /// Bytes the headers take.
    pub(crate) const fn len(&self) -> usize {
        match self {
            EncapRepr::Gue { .. } => UDP_LEN + GUE_LEN,
            EncapRepr::Gre { csum: false, .. } => GRE_LEN,
            EncapRepr::Gre { csum: true, .. } => GRE_LEN + GRE_CSUM_LEN,
        }
    }

    /// The outer IP header's protocol: UDP or GRE (47).
    pub(crate) const fn ip_proto(&self) -> u8 {
        match self {
            EncapRepr::Gue { .. } => ipproto::UDP,
            EncapRepr::Gre { .. } => ipproto::GRE,
        }
    }

    /// Writes the headers at the start of `payload` — the outer IP header's payload: these
    /// headers' room, then the inner packet — and the checksums over it. `src` and `dst` are the
    /// outer addresses (4 or 16 bytes), for UDP's pseudo-header.
    ///
    /// `None` when `payload` is shorter than the headers or longer than UDP can say.
    pub(crate) fn emit(&self, payload: &mut [u8], src: &[u8], dst: &[u8]) -> Option<()> {
        match *self {
            EncapRepr::Gue { sport, dport, csum, proto } => {
                let len = u16::try_from(payload.len()).ok()?;
                let h = payload.get_mut(..UDP_LEN + GUE_LEN)?;
                field::set_be16(h, field::L4_SPORT, sport)?;
                field::set_be16(h, field::L4_DPORT, dport)?;
                field::set_be16(h, 4, len)?;
                field::set_be16(h, field::UDP_CSUM, 0)?;
                // `struct guehdr`: version 0 and C clear in the top bits, hlen 0 (no options),
                // proto_ctype, then 16 bits of flags, all clear.
                field::set_byte(h, UDP_LEN, 0)?;
                field::set_byte(h, UDP_LEN + 1, proto)?;
                field::set_be16(h, UDP_LEN + 2, 0)?;
                if csum {
                    // `udp_set_csum` / `udp6_set_csum`: the full checksum, 0 sent as 0xffff.
                    let mut sum = csum::add(0, src);
                    sum = csum::add(sum, dst);
                    sum = csum::add(sum, &[0, ipproto::UDP]);
                    sum = csum::add(sum, &len.to_be_bytes());
                    let c = match csum::finish(csum::add(sum, payload)) {
                        0 => 0xffff,
                        c => c,
                    };
                    field::set_be16(payload, field::UDP_CSUM, c)?;
                }
            }
            EncapRepr::Gre { csum, ethertype } => {
                let h = payload.get_mut(..self.len())?;
                field::set_be16(h, 0, if csum { GRE_FLAG_CSUM } else { 0 })?;
                field::set_be16(h, 2, ethertype)?;
                if csum {
                    // RFC 2784 2.5: over the GRE header and payload, the field read as zero,
                    // then the reserved word (zero).
                    field::set_be32(h, GRE_LEN, 0)?;
                    let c = csum::checksum(payload);
                    field::set_be16(payload, GRE_LEN, c)?;
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_gre_calc_hlen_and_guehdr() {
        assert_eq!(EncapRepr::Gue { sport: 1, dport: 2, csum: true, proto: 4 }.len(), 12);
        assert_eq!(EncapRepr::Gre { csum: false, ethertype: 0x0800 }.len(), 4);
        assert_eq!(EncapRepr::Gre { csum: true, ethertype: 0x0800 }.len(), 8);
    }

    #[test]
    fn truncated_payload_is_refused() {
        for r in [
            EncapRepr::Gue { sport: 1, dport: 2, csum: true, proto: 4 },
            EncapRepr::Gre { csum: true, ethertype: 0x86dd },
            EncapRepr::Gre { csum: false, ethertype: 0x86dd },
        ] {
            for n in 0..r.len() {
                let mut b = [0u8; 12];
                assert_eq!(r.emit(&mut b[..n], &[10, 0, 0, 1], &[10, 0, 0, 2]), None, "{r:?} in {n} bytes");
            }
        }
    }

    #[test]
    fn gre_checksum_covers_header_and_payload() {
        // RFC 1071's example words as the payload: 0001 f203 f4f5 f6f7 sum to ddf2 (before the
        // complement); GRE adds its own C bit word 8000 and the protocol 0800.
        let mut b = [0u8; 16];
        b[8..].copy_from_slice(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        EncapRepr::Gre { csum: true, ethertype: 0x0800 }.emit(&mut b, &[], &[]).unwrap();
        let sum: u32 = 0xddf2 + 0x8000 + 0x0800;
        let folded = ((sum & 0xffff) + (sum >> 16)) as u16;
        assert_eq!(&b[..8], &[0x80, 0x00, 0x08, 0x00, (!folded >> 8) as u8, !folded as u8, 0, 0]);
    }

    #[test]
    fn udp_checksum_zero_is_sent_as_ffff() {
        // Pick a payload word that makes the sum 0xffff, whose checksum would be 0.
        let (src, dst) = ([0u8; 4], [0u8; 4]);
        let mut b = [0u8; 14];
        // Pseudo-header: proto 17 + length 14; UDP: ports 0, length 14; GUE: proto 0.
        let partial: u32 = 17 + 14 + 14;
        b[12..].copy_from_slice(&(0xffff - partial as u16).to_be_bytes());
        EncapRepr::Gue { sport: 0, dport: 0, csum: true, proto: 0 }.emit(&mut b, &src, &dst).unwrap();
        assert_eq!(&b[6..8], &[0xff, 0xff]);
    }
}
