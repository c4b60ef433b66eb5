//! Protocols, endpoints and service keys (`struct nf_inet_addr` and the service hash keys).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family of a service, real server or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Af {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl Af {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Af {
        match ip {
            IpAddr::V4(_) => Af::V4,
            IpAddr::V6(_) => Af::V6,
        }
    }

    /// Full-length prefix of the family: 32 or 128.
    pub fn max_prefix(self) -> u8 {
        match self {
            Af::V4 => 32,
            Af::V6 => 128,
        }
    }
}

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Proto {
    /// TCP (`-t`), IP protocol 6.
    Tcp,
    /// UDP (`-u`), IP protocol 17.
    Udp,
    /// SCTP (`--sctp-service`), IP protocol 132.
    Sctp,
}

impl Proto {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// The protocol for an IP protocol number, if it is one IPVS balances.
    pub const fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The name ipvsadm prints (`TCP`, `UDP`, `SCTP`).
    pub const fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Sctp => "SCTP",
        }
    }
}

/// An address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// IPv4 or IPv6 address.
    pub addr: IpAddr,
    /// Port (0 for port-less real servers of fwmark or port-0 services).
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from an address and a port.
    pub const fn new(addr: IpAddr, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

impl fmt::Display for Endpoint {
    /// ipvsadm's `-n` form: `a.b.c.d:port` or `[v6]:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// What identifies a virtual service: `proto VIP:port`, or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t|-u|--sctp-service VIP:port`. Port 0 means "all ports" (persistent services only).
    Inet {
        /// Transport protocol.
        proto: Proto,
        /// Virtual address.
        addr: IpAddr,
        /// Virtual port.
        port: u16,
    },
    /// `-f MARK [-6]`: packets the application's classifier marked with this value.
    Fwmark {
        /// The firewall mark (non-zero).
        mark: u32,
        /// Address family of the packets the mark selects.
        af: Af,
    },
}

impl ServiceKey {
    /// A TCP service key.
    pub const fn tcp(addr: IpAddr, port: u16) -> Self {
        ServiceKey::Inet { proto: Proto::Tcp, addr, port }
    }

    /// A UDP service key.
    pub const fn udp(addr: IpAddr, port: u16) -> Self {
        ServiceKey::Inet { proto: Proto::Udp, addr, port }
    }

    /// The address family of the service.
    pub fn af(&self) -> Af {
        match self {
            ServiceKey::Inet { addr, .. } => Af::of(addr),
            ServiceKey::Fwmark { af, .. } => *af,
        }
    }

    /// The virtual port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Inet { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// The firewall mark, if this is a fwmark service.
    pub fn fwmark(&self) -> Option<u32> {
        match self {
            ServiceKey::Fwmark { mark, .. } => Some(*mark),
            ServiceKey::Inet { .. } => None,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// ipvsadm's `-Ln` form without padding: `TCP 10.0.0.1:80`, `FWM 5`, `FWM 5 IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Inet { proto, addr, port } => {
                write!(f, "{} {}", proto.name(), Endpoint::new(*addr, *port))
            }
            ServiceKey::Fwmark { mark, af: Af::V4 } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark { mark, af: Af::V6 } => write!(f, "FWM {mark} IPv6"),
        }
    }
}

/// An address as 16 raw bytes (IPv4 in the first four), the form the connection table stores.
pub(crate) fn raw(ip: &IpAddr) -> [u8; 16] {
    match ip {
        // Built as one 16-byte value rather than four bytes written into a zeroed array: a key
        // made of these is compared word by word right after, and a wide load of bytes just
        // stored piecemeal waits for the stores to drain (a failed store-to-load forward).
        IpAddr::V4(a) => u128::from(u32::from_le_bytes(a.octets())).to_le_bytes(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The inverse of [`raw`].
pub(crate) fn from_raw(af: Af, r: &[u8; 16]) -> IpAddr {
    match af {
        Af::V4 => IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3])),
        Af::V6 => IpAddr::V6(Ipv6Addr::from(*r)),
    }
}

/// `addr & mask` where `prefix` is the mask length (`-M`): what persistence templates key on.
pub fn mask_addr(addr: &IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            IpAddr::V4(Ipv4Addr::from(u32::from(*a) & m))
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            IpAddr::V6(Ipv6Addr::from(u128::from(*a) & m))
        }
    }
}

/// The 32-bit fold the hashing schedulers use: the IPv4 address as a host-order integer, or the
/// XOR of the four 32-bit words of an IPv6 address (the kernel's `ip_vs_addr_fold`).
pub fn fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let s = a.segments();
            let w = |i: usize| (u32::from(s[i]) << 16) | u32::from(s[i + 1]);
            w(0) ^ w(2) ^ w(4) ^ w(6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_folds() {
        let a: IpAddr = "198.51.100.77".parse().unwrap();
        assert_eq!(mask_addr(&a, 24), "198.51.100.0".parse::<IpAddr>().unwrap());
        assert_eq!(mask_addr(&a, 32), a);
        assert_eq!(mask_addr(&a, 0), "0.0.0.0".parse::<IpAddr>().unwrap());
        let b: IpAddr = "2001:db8::1:2".parse().unwrap();
        assert_eq!(mask_addr(&b, 64), "2001:db8::".parse::<IpAddr>().unwrap());
        assert_eq!(fold(&a), 0xc633_644d);
        assert_eq!(fold(&b), 0x2001_0db8 ^ 0x0001_0002);
        assert_eq!(from_raw(Af::V4, &raw(&a)), a);
        assert_eq!(from_raw(Af::V6, &raw(&b)), b);
    }

    #[test]
    fn displays_like_ipvsadm() {
        let k = ServiceKey::tcp("10.0.0.1".parse().unwrap(), 80);
        assert_eq!(alloc::format!("{k}"), "TCP 10.0.0.1:80");
        let f = ServiceKey::Fwmark { mark: 5, af: Af::V6 };
        assert_eq!(alloc::format!("{f}"), "FWM 5 IPv6");
        let e = Endpoint::new("2001:db8::1".parse().unwrap(), 443);
        assert_eq!(alloc::format!("{e}"), "[2001:db8::1]:443");
    }
}
