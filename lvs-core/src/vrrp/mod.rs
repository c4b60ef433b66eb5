//! VRRP, sans-IO: keepalived's VRRP daemon (`keepalived/vrrp/`) as a room that is told the time,
//! fed received advertisements and hands back what to send and which addresses to take or give
//! up. It follows RFC 5798 (VRRPv3, IPv4 and IPv6) and RFC 3768 (VRRPv2, IPv4), and keepalived
//! where the RFCs leave room (preempt delay, sync groups, tracking weights, gratuitous ARP
//! timing, unicast peers).
//!
//! - [`wire`] — the advertisement, both versions, encoded and decoded ([`wire::Repr`]).
//! - [`instance`] — one virtual router: the state machine of RFC 5798 §6.4 ([`Instance`]).
//! - [`group`] — several instances, keepalived's sync groups and tracked conditions
//!   ([`Group`]).
//!
//! The I/O side (`lvs-dataplane`) opens raw IP protocol [`PROTO`] sockets, sends each
//! [`Transmit`] with TTL / hop limit [`TTL`], feeds every received advertisement to
//! [`Group::handle`] with the IP header's source, destination and TTL, and carries out the
//! [`Action`]s [`Group::poll`] hands back (add or remove the virtual addresses, gratuitous ARP
//! and unsolicited neighbour advertisements, notifications).

pub mod group;
pub mod instance;
pub mod wire;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::Af;
use crate::neigh::MacAddr;

pub use group::{Group, GroupAction, InstanceId, SyncId, Target, Track, TrackerId};
pub use instance::{Action, AddressChange, Announce, Config, Event, Garp, Instance, IpHeader, Stats, Transmit};
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
/// The priority of the router that owns the virtual addresses (RFC 5798 §5.2.4).
pub const PRIO_OWNER: u8 = 255;
/// The priority a master sends when it stops (RFC 5798 §5.2.4).
pub const PRIO_STOP: u8 = 0;

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

/// Where an instance stands (RFC 5798 §6.4, plus keepalived's FAULT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, or shut down (`Initialize`).
    Init,
    /// Watching the master; takes over when it falls silent.
    Backup,
    /// Owns the virtual addresses and advertises.
    Master,
    /// A tracked condition forces the instance down (keepalived's FAULT).
    Fault,
}

impl State {
    /// The name keepalived logs and passes to its notify scripts.
    pub const fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
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

/// A configuration the room refuses. A call that returns an error has changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A VRID outside 1..=255.
    #[error("virtual router id must be 1..=255")]
    BadVrid,
    /// Priority 0 (reserved for the stop advertisement).
    #[error("priority must be 1..=255")]
    BadPriority,
    /// An advertisement interval the version cannot carry: VRRPv2 whole seconds 1..=255,
    /// VRRPv3 centiseconds 1..=4095.
    #[error("advertisement interval not representable in this version")]
    BadInterval,
    /// No virtual address, or more than 255.
    #[error("an instance needs 1..=255 virtual addresses")]
    BadAddressCount,
    /// A virtual address or peer of another family than the primary address.
    #[error("addresses of mixed families")]
    FamilyMismatch,
    /// VRRPv2 is IPv4 only (RFC 3768).
    #[error("vrrp version 2 is ipv4 only")]
    V2Ipv6,
    /// Authentication is a VRRPv2 field; VRRPv3 has none.
    #[error("authentication needs vrrp version 2")]
    AuthNeedsV2,
    /// Another instance has the same VRID on the same interface and family.
    #[error("virtual router id already used on this interface")]
    DuplicateVrid,
    /// An instance, sync group or tracker handle this group did not hand out.
    #[error("no such instance, sync group or tracker")]
    NoSuchHandle,
    /// An instance that already belongs to a sync group.
    #[error("instance already in a sync group")]
    AlreadySynced,
    /// A tracking weight outside -254..=254.
    #[error("tracking weight must be -254..=254")]
    BadWeight,
}

#[cfg(test)]
mod tests;
