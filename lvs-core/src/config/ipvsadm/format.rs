//! What `ipvsadm`'s formats share: how services, netmasks and scheduler flags are written, and
//! the order ipvsadm lists services and servers in — its comparators (including the address
//! comparison that overflows across 2^31) under glibc's merge sort.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::net::{IpAddr, Ipv4Addr};

use crate::addr::{Af, Endpoint, Proto, ServiceKey};
use crate::dest::DestView;
use crate::director::{Director, ServiceInfo};
use crate::service::{SchedFlags, ServiceView};
use crate::wire::proxy::ProxyVersion;

/// The size the kernel reports for its connection hash table (`conn_tab_bits` = 12), in the
/// first line of `ipvsadm -L` and of `/proc/net/ip_vs`.
pub(in crate::config) const CONN_TAB_SIZE: u32 = 4096;

/// `-t ADDR:PORT`, `-u …`, `--sctp-service …`, `-f MARK [-6]`.
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
        ServiceKey::Fwmark { mark, af: Af::V4 } => format!("-f {mark}"),
        ServiceKey::Fwmark { mark, af: Af::V6 } => format!("-f {mark} -6"),
    }
}

/// The `-b` words ipvsadm prints for a scheduler's flags.
pub(super) fn sched_flag_names(sched: &str, f: SchedFlags) -> String {
    let names: [&str; 3] = match sched {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    let bits = [SchedFlags::FLAG1, SchedFlags::FLAG2, SchedFlags::FLAG3];
    let on: Vec<&str> = names.iter().zip(bits).filter(|(_, b)| f.0 & b != 0).map(|(n, _)| *n).collect();
    on.join(",")
}

/// A netmask as ipvsadm prints it: dotted for IPv4, the prefix length for IPv6.
pub(super) fn netmask_text(af: Af, prefix: u8) -> String {
    match af {
        Af::V4 => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            Ipv4Addr::from(m).to_string()
        }
        Af::V6 => prefix.to_string(),
    }
}

/// `ntohl(a) - ntohl(b)` as ipvsadm computes it: an `int` that overflows across 2^31.
fn cmp_addr(a: &IpAddr, b: &IpAddr) -> i64 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => i64::from(u32::from(*a).wrapping_sub(u32::from(*b)) as i32),
        (IpAddr::V6(a), IpAddr::V6(b)) => match a.octets().cmp(&b.octets()) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => -1,
        (IpAddr::V6(_), IpAddr::V4(_)) => 1,
    }
}

/// `ipvs_cmp_services`.
fn cmp_services(a: &ServiceKey, b: &ServiceKey) -> i64 {
    let fw = |k: &ServiceKey| i64::from(k.fwmark().unwrap_or(0));
    let af = |k: &ServiceKey| match k.af() {
        Af::V4 => 2,
        Af::V6 => 10,
    };
    let proto = |k: &ServiceKey| match k {
        ServiceKey::Inet { proto, .. } => i64::from(proto.number()),
        ServiceKey::Fwmark { .. } => 0,
    };
    let addr = |k: &ServiceKey| match k {
        ServiceKey::Inet { addr, .. } => Some(*addr),
        ServiceKey::Fwmark { .. } => None,
    };
    let mut r = fw(a) - fw(b);
    if r == 0 {
        r = af(a) - af(b);
    }
    if r == 0 {
        r = proto(a) - proto(b);
    }
    if r == 0 {
        if let (Some(x), Some(y)) = (addr(a), addr(b)) {
            r = cmp_addr(&x, &y);
        }
    }
    if r == 0 {
        r = i64::from(a.port()) - i64::from(b.port());
    }
    r
}

/// `ipvs_cmp_dests`.
fn cmp_dests(a: &Endpoint, b: &Endpoint) -> i64 {
    let r = cmp_addr(&a.addr, &b.addr);
    if r != 0 {
        r
    } else {
        i64::from(a.port) - i64::from(b.port)
    }
}

/// glibc's `qsort` merge sort (`msort_with_tmp`): stable, and well defined even for a
/// comparator that is not transitive, which ipvsadm's is.
fn msort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i64) {
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
        msort(&mut v, &|x, y| i64::from(x.0) - i64::from(y.0));
        assert_eq!(v, [(0, 'b'), (0, 'd'), (1, 'a'), (1, 'c')]);
    }
}
