//! Neighbours: what the application tells the director about next hops on its links (the part of
//! the kernel's routing and neighbour tables IPVS uses to transmit). There is no ARP or ND here.

use core::fmt;
use core::net::IpAddr;

use hashbrown::HashMap;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl core::str::FromStr for MacAddr {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut m {
            *b = u8::from_str_radix(parts.next().ok_or(())?, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(MacAddr(m))
    }
}

/// A next hop: its MAC and the port (interface index of the application) it sits behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// Link-layer address.
    pub mac: MacAddr,
    /// The application's port (interface) number.
    pub port: u16,
}

/// Static neighbour entries plus a default gateway per family.
#[derive(Debug, Clone)]
pub(crate) struct NeighbourTable {
    pub(crate) entries: HashMap<IpAddr, Neighbour, ahash::RandomState>,
    pub(crate) gw4: Option<Neighbour>,
    pub(crate) gw6: Option<Neighbour>,
}

impl NeighbourTable {
    pub(crate) fn new(seed: ahash::RandomState) -> Self {
        NeighbourTable { entries: HashMap::with_hasher(seed), gw4: None, gw6: None }
    }

    /// The next hop for `ip`: a neighbour entry, else the family's default gateway.
    pub(crate) fn route(&self, ip: &IpAddr) -> Option<Neighbour> {
        self.entries.get(ip).copied().or(match ip {
            IpAddr::V4(_) => self.gw4,
            IpAddr::V6(_) => self.gw6,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "02:00:00:00:01:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 1, 10]);
        assert_eq!(alloc::format!("{m}"), "02:00:00:00:01:0a");
        assert!("02:00:00:00:01".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:01:0a:0b".parse::<MacAddr>().is_err());
    }

    #[test]
    fn routes_fall_back_to_gateway() {
        let mut t = NeighbourTable::new(ahash::RandomState::with_seeds(1, 2, 3, 4));
        let gw = Neighbour { mac: MacAddr([2, 0, 0, 0, 0, 0xfe]), port: 0 };
        let rs = Neighbour { mac: MacAddr([2, 0, 0, 0, 1, 1]), port: 1 };
        t.gw4 = Some(gw);
        t.entries.insert("192.0.2.11".parse().unwrap(), rs);
        assert_eq!(t.route(&"192.0.2.11".parse().unwrap()), Some(rs));
        assert_eq!(t.route(&"198.51.100.2".parse().unwrap()), Some(gw));
        assert_eq!(t.route(&"2001:db8::1".parse().unwrap()), None);
    }
}
