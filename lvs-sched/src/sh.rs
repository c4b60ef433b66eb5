//! Source hashing, as net/netfilter/ipvs/ip_vs_sh.c (`ip_vs_sh_hashkey`, `ip_vs_sh_reassign`,
//! `ip_vs_sh_get`, `ip_vs_sh_get_fallback`): 256 buckets where each server, in list order,
//! takes `weight` consecutive buckets (weight 0 takes one), indexed by
//! `hash_32(sport + fold(saddr), 8)` (the source port only with `sh-port`). A bucket whose
//! server has weight 0 or is overloaded fails, or with `sh-fallback` probes on.

use lvs_core::addr::fold;
use lvs_core::dest::DestId;
use lvs_core::sched::{SchedCx, SchedError, Scheduler};
use lvs_core::service::ServiceView;
use lvs_core::wire::{ipproto, PacketMeta};

use crate::util::{hash_32, hashed_usable};

/// `CONFIG_IP_VS_SH_TAB_BITS`.
pub const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const MASK: u32 = TAB_SIZE as u32 - 1;

/// The `sh` scheduler.
#[derive(Debug)]
pub struct SourceHash {
    buckets: [Option<DestId>; TAB_SIZE],
}

impl Default for SourceHash {
    fn default() -> Self {
        SourceHash { buckets: [None; TAB_SIZE] }
    }
}

/// `ip_vs_sh_hashkey`.
pub fn hashkey(addr: &core::net::IpAddr, port: u16, offset: u32) -> usize {
    hashkey_base(u32::from(port).wrapping_add(fold(addr)), offset)
}

/// `ip_vs_sh_hashkey` of `base` = port + `ip_vs_addr_fold(addr)` (see [`hash_input`]).
fn hashkey_base(base: u32, offset: u32) -> usize {
    (offset.wrapping_add(hash_32(base, TAB_BITS)) & MASK) as usize
}

/// What a hashing scheduler keys on, port + `ip_vs_addr_fold(addr)` as the kernel's
/// `ip_vs_sh_hashkey` and `ip_vs_mh_hashkey` add them: the source address (the destination for
/// ICMP errors, which travel the other way), and the source port only when `with_port` is set
/// and the protocol has ports. Each side folds its own address so the compiler can predict the
/// ICMP branch instead of chaining a select of the address before its load.
#[inline]
pub(crate) fn hash_input(pkt: &PacketMeta, with_port: bool) -> u32 {
    let folded = if pkt.icmp.is_none() { fold(&pkt.src) } else { fold(&pkt.dst) };
    let has_ports = matches!(pkt.proto, ipproto::TCP | ipproto::UDP | 132);
    u32::from(if with_port && has_ports { pkt.sport } else { 0 }).wrapping_add(folded)
}

impl SourceHash {
    fn reassign(&mut self, svc: &ServiceView<'_>) {
        if svc.is_empty() {
            self.buckets = [None; TAB_SIZE];
            return;
        }
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            let d = svc.at(p);
            *b = d.map(|d| d.id());
            count += 1;
            if count >= d.map_or(0, |d| d.weight()) {
                p = (p + 1) % svc.len();
                count = 0;
            }
        }
    }
}

impl Scheduler for SourceHash {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn init_service(&mut self, svc: &ServiceView<'_>) -> Result<(), SchedError> {
        self.reassign(svc);
        Ok(())
    }

    fn add_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) -> Result<(), SchedError> {
        self.reassign(svc);
        Ok(())
    }

    fn del_dest(&mut self, svc: &ServiceView<'_>, _d: DestId, _pos: usize) {
        self.reassign(svc);
    }

    fn upd_dest(&mut self, svc: &ServiceView<'_>, _d: DestId) {
        self.reassign(svc);
    }

    fn schedule(&mut self, _cx: &mut SchedCx<'_>, svc: &ServiceView<'_>, pkt: &PacketMeta) -> Option<DestId> {
        let base = hash_input(pkt, svc.flags().port());
        let h = hashkey_base(base, 0);
        let first = hashed_usable(svc, *self.buckets.get(h)?)?;
        if first.is_some() || !svc.flags().fallback() {
            return first;
        }
        for off in 0..TAB_SIZE as u32 {
            let roff = (off + h as u32) % TAB_SIZE as u32;
            let h2 = hashkey_base(base, roff);
            if let Some(id) = hashed_usable(svc, *self.buckets.get(h2)?)? {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_core::testkit::syn_meta;
    use lvs_core::wire::IcmpError;

    fn pkt(src: &str, sport: u16, dst: &str, proto: u8) -> PacketMeta {
        let meta = syn_meta((src.parse().unwrap(), sport), (dst.parse().unwrap(), 80));
        PacketMeta { proto, ..meta }
    }

    /// `ip_vs_addr_fold` (the address in host order, IPv6 as the XOR of its four words) plus
    /// the source port for TCP, UDP and SCTP only when the port flag is set
    /// (`ip_vs_sh_get_port`, `ip_vs_mh_get_port`).
    #[test]
    fn hash_input_is_the_kernels_port_plus_fold() {
        let v4 = pkt("198.51.100.7", 1234, "192.0.2.1", ipproto::TCP);
        assert_eq!(hash_input(&v4, true), 0xc633_6407 + 1234);
        assert_eq!(hash_input(&v4, false), 0xc633_6407);
        for proto in [ipproto::UDP, 132] {
            assert_eq!(hash_input(&pkt("198.51.100.7", 1234, "192.0.2.1", proto), true), 0xc633_6407 + 1234);
        }
        assert_eq!(hash_input(&pkt("198.51.100.7", 1234, "192.0.2.1", 47), true), 0xc633_6407);
        // 0x20010db8 ^ 0 ^ 0 ^ 0x00010002, plus port 80.
        let v6 = pkt("2001:db8::1:2", 80, "2001:db8::80", ipproto::TCP);
        assert_eq!(hash_input(&v6, true), 0x2000_0dba + 80);
    }

    /// An ICMP error travels from the server side toward the client: the kernel hashes its
    /// destination (`ip_vs_iph_inverse`).
    #[test]
    fn hash_input_of_an_icmp_error_takes_the_destination() {
        let mut p = pkt("203.0.113.9", 0, "198.51.100.7", 1);
        p.icmp = Some(IcmpError {
            kind: 3,
            code: 4,
            inner_l3: 42,
            inner_l4: 62,
            proto: ipproto::TCP,
            src: p.dst,
            dst: "192.0.2.1".parse().unwrap(),
            sport: 1234,
            dport: 80,
        });
        assert_eq!(hash_input(&p, false), 0xc633_6407);
    }
}
