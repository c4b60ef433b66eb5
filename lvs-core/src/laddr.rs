//! FullNAT local addresses (DPVS `laddr.c` and `sa_pool.c`, Alibaba LVS `ip_vs_laddr`): the
//! addresses of the director that a service's FullNAT connections leave from (`ipvsadm
//! --add-laddr`), how the client's address reaches the real servers, and the local ports in
//! use on each address.
//!
//! A local port is taken on its address for every real server at once, so every
//! (local address, local port) pair — and with it every (LIP, lport, RIP, rport) — is unique
//! by construction; an address holds [`PORTS_PER_ADDR`] connections. A full pool is a refusal
//! the director counts, never a reuse.
//!
//! Shards of one director that share the local addresses each take their own [`PortShare`] of
//! the ports, as DPVS's `sa_pool` gives each lcore its own, so that a reply's destination port
//! says which shard owns it (the NIC's flow director there, a fanout program here).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::IpAddr;

use hashbrown::HashMap;

use crate::addr::{Af, ServiceKey};
use crate::error::Error;
use crate::wire::proxy::ProxyVersion;

/// The lowest local port handed out; the ports below are the director host's own services.
pub const FIRST_PORT: u16 = 1024;
/// Connections one local address carries: ports 1024 to 65535.
pub const PORTS_PER_ADDR: u32 = 65536 - FIRST_PORT as u32;

/// Which local ports this director hands out: those `p` with `p % count == index`. One shard of
/// `count` takes share `index`; a director alone takes them all ([`PortShare::WHOLE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortShare {
    index: u16,
    count: u16,
}

impl PortShare {
    /// Every port.
    pub const WHOLE: PortShare = PortShare { index: 0, count: 1 };

    /// Share `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u16, count: u16) -> Option<PortShare> {
        (index < count).then_some(PortShare { index, count })
    }

    /// Which share this is.
    pub fn index(self) -> u16 {
        self.index
    }

    /// How many shares the ports are divided into.
    pub fn count(self) -> u16 {
        self.count
    }

    /// The ports of word `w` of a port map (64 ports from `64 * w`) that are this share's.
    fn mask(self, w: usize) -> u64 {
        let count = usize::from(self.count);
        if count <= 1 {
            return u64::MAX;
        }
        let mut bit = (usize::from(self.index) + count - (w * 64) % count) % count;
        let mut m = 0u64;
        while bit < 64 {
            m |= 1 << bit;
            bit += count;
        }
        m
    }
}

impl Default for PortShare {
    fn default() -> Self {
        PortShare::WHOLE
    }
}

/// 64-bit words of a port map.
const WORDS: usize = 65536 / 64;
/// The first word holding ports that may be handed out.
const FIRST_WORD: usize = FIRST_PORT as usize / 64;

/// How a FullNAT service tells its real servers the client's address (DPVS
/// `--proxy-protocol disable|v1|v2`; with `disable` DPVS adds a TOA).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    /// A TCP option (kind 254) on the client's first packets after the handshake, read by the
    /// `toa` kernel module on the real server.
    #[default]
    Toa,
    /// A PROXY protocol header in front of the client's stream.
    Proxy(ProxyVersion),
}

/// One local address of a service, as `ipvsadm -G` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaddrInfo {
    /// The address.
    pub addr: IpAddr,
    /// Connections that use it now (of every service that has it).
    pub conns: u32,
}

/// The ports in use on one local address.
struct PortMap {
    bits: Box<[u64; WORDS]>,
    /// The word the next search starts at (spreads ports, as the kernel's rover does).
    cursor: usize,
    used: u32,
}

impl PortMap {
    fn new() -> Self {
        PortMap { bits: Box::new([0; WORDS]), cursor: FIRST_WORD, used: 0 }
    }

    /// A free port of `share`, marked used. DoS warning: a nearly full map is searched a word
    /// at a time, at most 1008 words.
    fn take(&mut self, share: PortShare) -> Option<u16> {
        let span = WORDS - FIRST_WORD;
        for i in 0..span {
            let w = FIRST_WORD + (self.cursor - FIRST_WORD + i) % span;
            let word = self.bits.get_mut(w)?;
            let free = !*word & share.mask(w);
            if free != 0 {
                let bit = free.trailing_zeros() as usize;
                *word |= 1 << bit;
                self.used += 1;
                self.cursor = if bit == 63 { FIRST_WORD + (w + 1 - FIRST_WORD) % span } else { w };
                return u16::try_from(w * 64 + bit).ok();
            }
        }
        None
    }

    fn put(&mut self, port: u16) {
        let (w, bit) = (usize::from(port) / 64, usize::from(port) % 64);
        if let Some(word) = self.bits.get_mut(w) {
            if *word & (1 << bit) != 0 {
                *word &= !(1 << bit);
                self.used -= 1;
            }
        }
    }
}

/// One service's local addresses.
#[derive(Default)]
struct Service {
    addrs: Vec<IpAddr>,
    next: usize,
}

/// Every service's local addresses and the port maps of those addresses.
pub(crate) struct Laddrs {
    svcs: HashMap<ServiceKey, Service, ahash::RandomState>,
    ports: HashMap<IpAddr, PortMap, ahash::RandomState>,
    share: PortShare,
}

impl Laddrs {
    /// No local addresses; the maps hash with the director's seeds, and ports are taken from
    /// `share`.
    pub(crate) fn new(hasher: impl Fn() -> ahash::RandomState, share: PortShare) -> Self {
        Laddrs { svcs: HashMap::with_hasher(hasher()), ports: HashMap::with_hasher(hasher()), share }
    }

    /// `--add-laddr`: one more local address for `key` (the director checked the service
    /// exists). An IPv6 service may also have IPv4 addresses, for its IPv4 real servers
    /// (DPVS's fnat64); an IPv4 service only IPv4 ones.
    pub(crate) fn add(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), Error> {
        if Af::of(&addr) != key.af() && key.af() == Af::V4 {
            return Err(Error::FamilyMismatch);
        }
        let s = self.svcs.entry(*key).or_default();
        if s.addrs.contains(&addr) {
            return Err(Error::LaddrExists);
        }
        s.addrs.push(addr);
        self.ports.entry(addr).or_insert_with(PortMap::new);
        Ok(())
    }

    /// `--del-laddr`. Connections that use the address keep their ports until they end.
    pub(crate) fn del(&mut self, key: &ServiceKey, addr: &IpAddr) -> Result<(), Error> {
        let s = self.svcs.get_mut(key).ok_or(Error::NoSuchLaddr)?;
        let i = s.addrs.iter().position(|a| a == addr).ok_or(Error::NoSuchLaddr)?;
        s.addrs.remove(i);
        self.forget_unused(addr);
        Ok(())
    }

    /// A deleted service takes its local addresses with it.
    pub(crate) fn forget_service(&mut self, key: &ServiceKey) {
        if let Some(s) = self.svcs.remove(key) {
            for a in &s.addrs {
                self.forget_unused(a);
            }
        }
    }

    /// Drops the port map of an address no service lists and no connection uses.
    fn forget_unused(&mut self, addr: &IpAddr) {
        let listed = self.svcs.values().any(|s| s.addrs.contains(addr));
        if !listed && self.ports.get(addr).is_some_and(|p| p.used == 0) {
            self.ports.remove(addr);
        }
    }

    /// The local addresses of `key`, in the order they were added.
    pub(crate) fn list(&self, key: &ServiceKey) -> Vec<LaddrInfo> {
        let Some(s) = self.svcs.get(key) else { return Vec::new() };
        s.addrs.iter().map(|a| LaddrInfo { addr: *a, conns: self.ports.get(a).map_or(0, |p| p.used) }).collect()
    }

    /// A local address of `key` of family `af` (the real server's) and a free port on it, the
    /// addresses taken in turn (DPVS `fnat_laddr_bind` round-robins them). `None` when the
    /// service has no local address of that family or every port of every one is in use.
    pub(crate) fn take(&mut self, key: &ServiceKey, af: Af) -> Option<(IpAddr, u16)> {
        let s = self.svcs.get_mut(key)?;
        let n = s.addrs.len();
        for k in 0..n {
            let addr = *s.addrs.get((s.next + k) % n)?;
            if Af::of(&addr) != af {
                continue;
            }
            if let Some(port) = self.ports.get_mut(&addr).and_then(|p| p.take(self.share)) {
                s.next = (s.next + k + 1) % n;
                return Some((addr, port));
            }
        }
        None
    }

    /// Gives a connection's port back.
    pub(crate) fn put(&mut self, addr: &IpAddr, port: u16) {
        if let Some(p) = self.ports.get_mut(addr) {
            p.put(port);
        }
        self.forget_unused(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use proptest::prelude::*;

    fn laddrs() -> Laddrs {
        Laddrs::new(|| ahash::RandomState::with_seeds(1, 2, 3, 4), PortShare::WHOLE)
    }

    fn key() -> ServiceKey {
        ServiceKey::tcp("203.0.113.100".parse().unwrap(), 80)
    }

    #[test]
    fn one_address_holds_every_port_from_1024_once() {
        let mut l = laddrs();
        let a: IpAddr = "192.0.2.200".parse().unwrap();
        l.add(&key(), a).unwrap();
        let mut seen = BTreeSet::new();
        while let Some((addr, port)) = l.take(&key(), Af::V4) {
            assert_eq!(addr, a);
            assert!(port >= FIRST_PORT);
            assert!(seen.insert(port), "port {port} handed out twice");
        }
        assert_eq!(seen.len() as u32, PORTS_PER_ADDR);
        l.put(&a, 4242);
        assert_eq!(l.take(&key(), Af::V4), Some((a, 4242)));
        assert_eq!(l.take(&key(), Af::V4), None);
    }

    #[test]
    fn a_share_takes_exactly_its_ports() {
        let a: IpAddr = "192.0.2.200".parse().unwrap();
        let mut all = BTreeSet::new();
        for (index, count) in [(0, 2), (1, 2), (0, 3), (2, 3), (5, 7)] {
            let share = PortShare::new(index, count).unwrap();
            let mut l = Laddrs::new(|| ahash::RandomState::with_seeds(1, 2, 3, 4), share);
            l.add(&key(), a).unwrap();
            let mut seen = BTreeSet::new();
            while let Some((_, port)) = l.take(&key(), Af::V4) {
                assert_eq!(port % count, index, "share {index}/{count} took {port}");
                assert!(seen.insert(port), "port {port} handed out twice");
            }
            let want = (FIRST_PORT..=u16::MAX).filter(|p| p % count == index).count();
            assert_eq!(seen.len(), want, "share {index}/{count} holds every one of its ports");
            if count == 2 {
                all.extend(seen);
            }
        }
        assert_eq!(all.len() as u32, PORTS_PER_ADDR, "two shares of two cover every port");
        assert_eq!(PortShare::new(2, 2), None);
        assert_eq!(PortShare::new(0, 0), None);
    }

    #[test]
    fn an_ipv6_service_hands_out_addresses_of_the_servers_family() {
        // fnat64: IPv4 servers of an IPv6 service leave from its IPv4 addresses only.
        let mut l = laddrs();
        let k = ServiceKey::tcp("2001:db8::100".parse().unwrap(), 80);
        let (a4, a6): (IpAddr, IpAddr) = ("192.0.2.200".parse().unwrap(), "2001:db8::200".parse().unwrap());
        l.add(&k, a6).unwrap();
        assert_eq!(l.take(&k, Af::V4), None);
        l.add(&k, a4).unwrap();
        for _ in 0..3 {
            assert_eq!(l.take(&k, Af::V4).map(|t| t.0), Some(a4));
            assert_eq!(l.take(&k, Af::V6).map(|t| t.0), Some(a6));
        }
    }

    #[test]
    fn control_errors() {
        let mut l = laddrs();
        let a: IpAddr = "192.0.2.200".parse().unwrap();
        assert_eq!(l.add(&key(), "2001:db8::1".parse().unwrap()), Err(Error::FamilyMismatch));
        l.add(&key(), a).unwrap();
        assert_eq!(l.add(&key(), a), Err(Error::LaddrExists));
        assert_eq!(l.del(&key(), &"192.0.2.201".parse().unwrap()), Err(Error::NoSuchLaddr));
        let (_, p) = l.take(&key(), Af::V4).unwrap();
        l.del(&key(), &a).unwrap();
        // The port map stays while the connection lives, so the port is not handed out again.
        assert_eq!(l.list(&key()), []);
        l.add(&key(), a).unwrap();
        assert_eq!(l.list(&key()), [LaddrInfo { addr: a, conns: 1 }]);
        assert_ne!(l.take(&key(), Af::V4).map(|t| t.1), Some(p));
    }

    proptest! {
        /// Whatever the order of takes and puts over two services sharing an address, no
        /// (address, port) is held twice, and a take fails only when every port is held.
        #[test]
        fn ports_are_never_held_twice(ops in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<u16>()), 1..400)) {
            let mut l = laddrs();
            let k2 = ServiceKey::tcp("203.0.113.101".parse().unwrap(), 443);
            let shared: IpAddr = "192.0.2.200".parse().unwrap();
            l.add(&key(), shared).unwrap();
            l.add(&key(), "192.0.2.201".parse().unwrap()).unwrap();
            l.add(&k2, shared).unwrap();
            let mut held: Vec<(IpAddr, u16)> = Vec::new();
            for (take, second, pick) in ops {
                if take || held.is_empty() {
                    let k = if second { k2 } else { key() };
                    let got = l.take(&k, Af::V4);
                    let (a, p) = got.expect("pool of 3 x 64512 ports cannot run out here");
                    prop_assert!(p >= FIRST_PORT);
                    prop_assert!(!held.contains(&(a, p)), "{a}:{p} handed out twice");
                    held.push((a, p));
                } else {
                    let (a, p) = held.swap_remove(usize::from(pick) % held.len());
                    l.put(&a, p);
                }
            }
            let total: u32 = l.list(&key()).iter().map(|i| i.conns).sum();
            prop_assert_eq!(total as usize, held.len());
        }
    }
}
