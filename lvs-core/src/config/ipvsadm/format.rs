//! What `ipvsadm`'s formats share: how services, netmasks and scheduler flags are written, and
//! the order ipvsadm lists services and servers in — libipvs's comparators, which subtract in
//! `int` and so overflow across 2^31 (marks, IPv4 addresses and each 32-bit word of an IPv6
//! address), under glibc's merge sort.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;

use crate::addr::{Af, Endpoint, Proto, ServiceKey};
use crate::dest::DestView;
use crate::director::{Director, ServiceInfo};
use crate::service::{Netmask, SchedFlags, ServiceView};
use crate::wire::proxy::ProxyVersion;

/// The size the kernel reports for its connection hash table (`conn_tab_bits` = 12), in the
/// first line of `ipvsadm -L` and of `/proc/net/ip_vs`.
pub(in crate::config) const CONN_TAB_SIZE: u32 = 4096;

/// `-t ADDR:PORT`, `-u …`, `--sctp-service …`, `-f MARK [-6]`; ipvsadm 1.31 prints the mark
/// with `%d`, so a mark of 2^31 or more comes out negative (`-f -1`).
pub(super) fn svc_arg(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Inet { proto, addr, port } => {
            let flag = match proto {
                Proto::Tcp => "-t",
                Proto::Udp => "-u",
                Proto::Sctp => "--sctp-service",
            };
            format!("{flag} {}", Endpoint::new(*addr, *port))
        }
        ServiceKey::Fwmark { mark, af: Af::V4 } => format!("-f {}", *mark as i32),
        ServiceKey::Fwmark { mark, af: Af::V6 } => format!("-f {} -6", *mark as i32),
    }
}

/// The `-b` words ipvsadm prints for a service's flags (`print_sched_flags`): `sh` and `mh`
/// name their two flags and print nothing for `flag-3`; other schedulers print `flag-N`.
pub(super) fn sched_flag_names(sched: &str, f: SchedFlags) -> String {
    let names: [Option<&str>; 3] = match sched {
        "sh" => [Some("sh-fallback"), Some("sh-port"), None],
        "mh" => [Some("mh-fallback"), Some("mh-port"), None],
        _ => [Some("flag-1"), Some("flag-2"), Some("flag-3")],
    };
    let bits = [SchedFlags::FLAG1, SchedFlags::FLAG2, SchedFlags::FLAG3];
    let on: Vec<&str> = names.iter().zip(bits).filter(|(_, b)| f.0 & b != 0).filter_map(|(n, _)| *n).collect();
    on.join(",")
}

/// A netmask as ipvsadm prints it: dotted for IPv4 (`inet_ntoa`), the prefix length for IPv6.
pub(super) fn netmask_text(m: Netmask) -> String {
    match m {
        Netmask::V4(m) => m.to_string(),
        Netmask::V6(p) => p.to_string(),
    }
}

/// An address as libipvs holds it (`union nf_inet_addr`): four host-order words, an IPv4
/// address in the first and zeros after.
fn words(a: &IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            core::array::from_fn(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
        }
    }
}

/// libipvs's address comparison: `ntohl(a) - ntohl(b)` in `int`, word by word for IPv6 until
/// one differs (as many words as `a`'s family has, so a server of the other family compares
/// by as many words as the first one's).
fn cmp_addr(a: &IpAddr, b: &IpAddr) -> i32 {
    let n = if a.is_ipv6() { 4 } else { 1 };
    let (x, y) = (words(a), words(b));
    x.iter().zip(y).take(n).map(|(p, q)| p.wrapping_sub(q) as i32).find(|r| *r != 0).unwrap_or(0)
}

/// `ipvs_cmp_services`: mark, family, protocol, address, port, each by an `int` subtraction
/// (so a mark of 2^31 or more sorts as negative).
fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let fw = |k: &ServiceKey| k.fwmark().unwrap_or(0);
    let af = |k: &ServiceKey| match k.af() {
        Af::V4 => 2,
        Af::V6 => 10,
    };
    // The kernel reports no protocol, address or port for a fwmark service.
    let proto = |k: &ServiceKey| match k {
        ServiceKey::Inet { proto, .. } => i32::from(proto.number()),
        ServiceKey::Fwmark { .. } => 0,
    };
    let addr = |k: &ServiceKey| match k {
        ServiceKey::Inet { addr, .. } => *addr,
        ServiceKey::Fwmark { af: Af::V4, .. } => IpAddr::from([0u8; 4]),
        ServiceKey::Fwmark { af: Af::V6, .. } => IpAddr::from([0u8; 16]),
    };
    [
        fw(a).wrapping_sub(fw(b)) as i32,
        af(a) - af(b),
        proto(a) - proto(b),
        cmp_addr(&addr(a), &addr(b)),
        i32::from(a.port()) - i32::from(b.port()),
    ]
    .into_iter()
    .find(|r| *r != 0)
    .unwrap_or(0)
}

/// `ipvs_cmp_dests`: address, then port.
fn cmp_dests(a: &Endpoint, b: &Endpoint) -> i32 {
    match cmp_addr(&a.addr, &b.addr) {
        0 => i32::from(a.port) - i32::from(b.port),
        r => r,
    }
}

/// glibc's `qsort` merge sort (`msort_with_tmp`): stable, and well defined even for a
/// comparator that is not transitive, which ipvsadm's is.
fn msort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    let (a, b) = v.split_at_mut(n1);
    msort(a, cmp);
    msort(b, cmp);
    let mut out = Vec::with_capacity(n);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if cmp(&a[i], &b[j]) <= 0 {
            out.push(a[i].clone());
            i += 1;
        } else {
            out.push(b[j].clone());
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    v.clone_from_slice(&out);
}

/// Services in ipvsadm's order.
pub(in crate::config) fn sorted_services(d: &Director) -> Vec<ServiceInfo<'_>> {
    let mut keys: Vec<ServiceKey> = d.services().map(|s| s.config.key).collect();
    msort(&mut keys, &|a, b| cmp_services(a, b));
    keys.iter().filter_map(|k| d.service(k)).collect()
}

/// Servers of a service in ipvsadm's order.
pub(super) fn sorted_dests<'a>(v: &ServiceView<'a>) -> Vec<DestView<'a>> {
    let ds: Vec<DestView<'a>> = v.dests().collect();
    let mut idx: Vec<usize> = (0..ds.len()).collect();
    msort(&mut idx, &|a, b| cmp_dests(&ds[*a].endpoint(), &ds[*b].endpoint()));
    idx.iter().map(|i| ds[*i]).collect()
}

/// One of two spellings by PROXY protocol version.
pub(super) fn proxy_word(v: ProxyVersion, v1: &'static str, v2: &'static str) -> &'static str {
    match v {
        ProxyVersion::V1 => v1,
        ProxyVersion::V2 => v2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_compare_overflows_like_ipvsadm() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "192.168.0.1".parse().unwrap();
        assert!(cmp_addr(&a, &b) > 0, "10.x sorts after 192.x: the int subtraction overflows");
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(cmp_addr(&a, &c) < 0);
    }

    #[test]
    fn msort_is_stable() {
        let mut v = [(1, 'a'), (0, 'b'), (1, 'c'), (0, 'd')];
        msort(&mut v, &|x, y| x.0 - y.0);
        assert_eq!(v, [(0, 'b'), (0, 'd'), (1, 'a'), (1, 'c')]);
    }
}
