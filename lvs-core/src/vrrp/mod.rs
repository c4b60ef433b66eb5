//! VRRP, sans-IO: keepalived's VRRP daemon (`keepalived/vrrp/`) as a room that is told the time,
//! fed received advertisements and hands back what to send and which addresses to take or give
//! up. It follows RFC 5798 (VRRPv3, IPv4 and IPv6) and RFC 3768 (VRRPv2, IPv4), and keepalived
//! where the RFCs leave room (preempt delay, sync groups, tracking weights, gratuitous ARP
//! timing, unicast peers).
//!
//! - [`wire`] — the advertisement, both versions, encoded and decoded ([`wire::Repr`]).

pub mod wire;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::Af;
use crate::neigh::MacAddr;

pub use wire::{Auth, Repr, Version};

/// The IP protocol number of VRRP (RFC 5798 §5.1.1.4).
pub const PROTO: u8 = 112;
/// The TTL / hop limit every advertisement is sent with and multicast ones must arrive with
/// (RFC 5798 §5.1.1.3, §5.1.2.3).
pub const TTL: u8 = 255;
/// The IPv4 multicast group, 224.0.0.18 (RFC 5798 §5.1.1.2).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group, ff02::12 (RFC 5798 §5.1.2.2).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The multicast group of a family.
pub fn group_addr(af: Af) -> IpAddr {
    match af {
        Af::V4 => IpAddr::V4(GROUP_V4),
        Af::V6 => IpAddr::V6(GROUP_V6),
    }
}

/// The virtual router MAC address: `00:00:5e:00:01:VRID` for IPv4, `00:00:5e:00:02:VRID` for
/// IPv6 (RFC 5798 §7.3).
pub fn virtual_mac(af: Af, vrid: u8) -> MacAddr {
    let kind = match af {
        Af::V4 => 1,
        Af::V6 => 2,
    };
    MacAddr([0, 0, 0x5e, 0, kind, vrid])
}

/// Why a received advertisement was dropped: each reason has a counter slot
/// ([`Reason::index`]), kept per instance and, for advertisements no instance takes, per group.
/// The reasons follow the receive checks of RFC 5798 §7.1 and RFC 3768 §7.1 and the counters
/// keepalived keeps for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The instance is in INIT or FAULT and does not listen.
    Inactive,
    /// The packet's address family is not the instance's.
    Family,
    /// A multicast advertisement whose TTL / hop limit is not 255.
    Ttl,
    /// Shorter than the fixed header, or not the length its address count (and, in VRRPv2, the
    /// authentication data) gives.
    Length,
    /// A version other than the instance's (or VRRPv2 over IPv6).
    Version,
    /// A type other than 1 (ADVERTISEMENT).
    Type,
    /// VRRPv2: an unknown authentication type, or one the instance is not configured for.
    AuthType,
    /// VRRPv2: IPsec AH authentication (type 2), deprecated since RFC 3768 and not supported.
    AuthAh,
    /// The checksum does not verify.
    Checksum,
    /// No instance has this VRID (on this interface and family).
    Vrid,
    /// VRRPv2: the simple password differs.
    Password,
    /// VRRPv2: the advertisement interval differs from the configured one (RFC 3768 §7.1);
    /// VRRPv3: a Max Adver Int of zero (RFC 9568 erratum).
    Interval,
    /// Multicast expected but the packet was sent to a unicast address, or the reverse.
    Destination,
    /// Unicast mode: the sender is not one of the configured peers.
    Peer,
    /// The advertisement comes from this instance's own address (a looped-back copy).
    Looped,
    /// The instance owns the addresses (priority 255) and ignores others (RFC 5798 §7.1).
    Owner,
    /// VRRPv2: the address list differs and the sender is not the owner (RFC 3768 §7.1).
    AddressList,
}

impl Reason {
    /// Number of reasons (size of the counter array).
    pub const COUNT: usize = 17;

    /// All reasons, in counter order.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Inactive,
        Reason::Family,
        Reason::Ttl,
        Reason::Length,
        Reason::Version,
        Reason::Type,
        Reason::AuthType,
        Reason::AuthAh,
        Reason::Checksum,
        Reason::Vrid,
        Reason::Password,
        Reason::Interval,
        Reason::Destination,
        Reason::Peer,
        Reason::Looped,
        Reason::Owner,
        Reason::AddressList,
    ];

    /// The counter slot of this reason.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs and listings.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Inactive => "inactive",
            Reason::Family => "family",
            Reason::Ttl => "ttl",
            Reason::Length => "length",
            Reason::Version => "version",
            Reason::Type => "type",
            Reason::AuthType => "auth-type",
            Reason::AuthAh => "auth-ah",
            Reason::Checksum => "checksum",
            Reason::Vrid => "vrid",
            Reason::Password => "password",
            Reason::Interval => "interval",
            Reason::Destination => "destination",
            Reason::Peer => "peer",
            Reason::Looped => "looped",
            Reason::Owner => "owner",
            Reason::AddressList => "address-list",
        }
    }
}

#[cfg(test)]
mod tests;
