//! The VRRP advertisement (keepalived's `vrrphdr_t`, `vrrp_build_vrrp_v2/v3`,
//! `vrrp_check_packet`), both versions, encoded and decoded.
//!
//! **VRRPv3** (RFC 5798 §5.2): `version=3 | type=1` in one byte, `VRID`, `Priority`,
//! `Count IPvX Addr`, then 4 reserved bits and a 12-bit `Max Adver Int` in centiseconds, the
//! `Checksum`, and the addresses (4 or 16 bytes each). The checksum covers the message and the
//! pseudo-header of RFC 8200 §8.1 (source, destination, length, next header 112) for IPv4 and
//! IPv6 alike, as keepalived computes it.
//!
//! **VRRPv2** (RFC 3768 §5.3): `version=2 | type=1`, `VRID`, `Priority`, `Count IP Addrs`,
//! `Auth Type`, `Adver Int` in seconds, `Checksum`, the IPv4 addresses and 8 bytes of
//! authentication data. The checksum covers the message alone. Auth type 0 is none, 1 a simple
//! password (kept for old peers), 2 IPsec AH (deprecated; decoded as a counted drop).
//!
//! # Panics
//!
//! Nothing here panics on any input: every byte access is checked (indexing, `unwrap` and
//! `expect` are denied), and a malformed advertisement is an `Err` with its [`Reason`].
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Reason, PROTO};
use crate::wire::csum;

/// The fixed header: version/type, VRID, priority, count, two bytes of interval (and auth
/// type), checksum.
pub const HEADER_LEN: usize = 8;
/// VRRPv2 authentication data after the addresses.
pub const AUTH_LEN: usize = 8;
/// The only type defined, ADVERTISEMENT.
pub const TYPE_ADVERT: u8 = 1;
/// The largest VRRPv3 Max Adver Int, in centiseconds (12 bits).
pub const MAX_INTERVAL_CS: u16 = 0x0fff;

const AUTH_NONE: u8 = 0;
const AUTH_PASS: u8 = 1;
const AUTH_AH: u8 = 2;

/// The protocol version of an advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, interval in seconds, optional simple password.
    V2,
    /// RFC 5798: IPv4 and IPv6, interval in centiseconds, pseudo-header checksum.
    V3,
}

impl Version {
    /// The number in the version field.
    pub const fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 §5.3.6, keepalived's `authentication` block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: none; the authentication data is zero.
    #[default]
    None,
    /// Type 1: a simple password of up to 8 bytes, zero-padded (keepalived `auth_type PASS`,
    /// which uses only the first 8 characters).
    Password([u8; AUTH_LEN]),
}

impl Auth {
    /// A simple password from text, cut to 8 bytes and zero-padded as keepalived does.
    pub fn password(text: &str) -> Auth {
        let mut p = [0u8; AUTH_LEN];
        for (d, s) in p.iter_mut().zip(text.bytes()) {
            *d = s;
        }
        Auth::Password(p)
    }

    const fn kind(&self) -> u8 {
        match self {
            Auth::None => AUTH_NONE,
            Auth::Password(_) => AUTH_PASS,
        }
    }
}

/// The addresses of an advertisement, as they sit on the wire: all IPv4 (4 bytes each) or all
/// IPv6 (16 bytes each), at most 255.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Addrs<'a> {
    v6: bool,
    raw: &'a [u8],
}

impl<'a> Addrs<'a> {
    /// A view over encoded addresses; `None` unless `raw` holds a whole number (at most 255) of
    /// addresses of the family.
    pub fn new(v6: bool, raw: &'a [u8]) -> Option<Self> {
        let size = addr_size(v6);
        (raw.len() % size == 0 && raw.len() / size <= usize::from(u8::MAX)).then_some(Addrs { v6, raw })
    }

    /// Whether the addresses are IPv6.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.raw.len() / addr_size(self.v6)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The encoded bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The addresses in wire order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let v6 = self.v6;
        self.raw.chunks_exact(addr_size(v6)).map(move |c| read_addr(v6, c))
    }

    /// Whether `ip` is among the addresses.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.iter().any(|a| a == *ip)
    }

    /// Whether both lists hold the same addresses, in any order (keepalived's check: equal
    /// counts, and every address of one in the other).
    pub fn same_set(&self, other: &Addrs<'_>) -> bool {
        self.v6 == other.v6 && self.len() == other.len() && self.iter().all(|a| other.contains(&a))
    }
}

fn addr_size(v6: bool) -> usize {
    if v6 {
        16
    } else {
        4
    }
}

fn read_addr(v6: bool, c: &[u8]) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        if let Some(s) = c.get(..16) {
            o.copy_from_slice(s);
        }
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        let mut o = [0u8; 4];
        if let Some(s) = c.get(..4) {
            o.copy_from_slice(s);
        }
        IpAddr::V4(Ipv4Addr::from(o))
    }
}

/// Encodes addresses for [`Addrs::new`]: each in network byte order, in the order given.
pub fn encode_addrs(addrs: &[IpAddr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(addrs.len() * 16);
    for a in addrs {
        match a {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    out
}

/// One advertisement, decoded or to be encoded (smoltcp's `Repr` shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// The protocol version.
    pub version: Version,
    /// The virtual router id.
    pub vrid: u8,
    /// The sender's priority: 255 owner, 1..=254 backup-capable, 0 stopping.
    pub priority: u8,
    /// VRRPv3: Max Adver Int in centiseconds (12 bits). VRRPv2: Adver Int in seconds (8 bits).
    pub interval: u16,
    /// VRRPv2 authentication; always [`Auth::None`] for VRRPv3.
    pub auth: Auth,
    /// The virtual addresses.
    pub addrs: Addrs<'a>,
}

/// The sum of the VRRPv3 pseudo-header (RFC 8200 §8.1; for IPv4 the same fields in their
/// IPv4 sizes, which add up to the same sum).
fn pseudo_sum(src: &IpAddr, dst: &IpAddr, len: usize) -> u32 {
    let mut sum = 0;
    for a in [src, dst] {
        sum = match a {
            IpAddr::V4(a) => csum::add(sum, &a.octets()),
            IpAddr::V6(a) => csum::add(sum, &a.octets()),
        };
    }
    let len = u32::try_from(len).unwrap_or(0);
    csum::add(sum, &[(len >> 24) as u8, (len >> 16) as u8, (len >> 8) as u8, len as u8, 0, PROTO])
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

impl<'a> Repr<'a> {
    /// Decodes and checks an advertisement: the IP payload `buf` as bounded by the IP header's
    /// length (Ethernet padding removed), from `src` to `dst`. Checks, in order: the fixed
    /// header is there ([`Reason::Length`]); source and destination are of one family
    /// ([`Reason::Family`]); version 2 or 3, and 2 only over IPv4 ([`Reason::Version`]); type 1
    /// ([`Reason::Type`]); the length is exactly what the address count (and VRRPv2's
    /// authentication data) gives ([`Reason::Length`], RFC 5798 §7.1); VRRPv2 auth type 0 or 1
    /// ([`Reason::AuthAh`] for 2, [`Reason::AuthType`] otherwise); the checksum
    /// ([`Reason::Checksum`]). What an instance checks beyond that (TTL, VRID, interval,
    /// password, addresses) is its own.
    ///
    /// # Errors
    /// The [`Reason`] of the first check that fails.
    pub fn parse(buf: &'a [u8], src: IpAddr, dst: IpAddr) -> Result<Self, Reason> {
        if buf.len() < HEADER_LEN {
            return Err(Reason::Length);
        }
        let v6 = src.is_ipv6();
        if dst.is_ipv6() != v6 {
            return Err(Reason::Family);
        }
        let version = match byte(buf, 0) >> 4 {
            2 if !v6 => Version::V2,
            3 => Version::V3,
            _ => return Err(Reason::Version),
        };
        if byte(buf, 0) & 0x0f != TYPE_ADVERT {
            return Err(Reason::Type);
        }
        let count = usize::from(byte(buf, 3));
        let addrs_end = HEADER_LEN + count * addr_size(v6);
        let auth_len = if version == Version::V2 { AUTH_LEN } else { 0 };
        if buf.len() != addrs_end + auth_len {
            return Err(Reason::Length);
        }
        let raw = buf.get(HEADER_LEN..addrs_end).ok_or(Reason::Length)?;
        let addrs = Addrs::new(v6, raw).ok_or(Reason::Length)?;
        let (interval, auth) = match version {
            Version::V3 => (be16(buf, 4) & MAX_INTERVAL_CS, Auth::None),
            Version::V2 => {
                let auth = match byte(buf, 4) {
                    AUTH_NONE => Auth::None,
                    AUTH_PASS => {
                        let mut p = [0u8; AUTH_LEN];
                        p.copy_from_slice(buf.get(addrs_end..).ok_or(Reason::Length)?);
                        Auth::Password(p)
                    }
                    AUTH_AH => return Err(Reason::AuthAh),
                    _ => return Err(Reason::AuthType),
                };
                (u16::from(byte(buf, 5)), auth)
            }
        };
        let sum = match version {
            Version::V3 => pseudo_sum(&src, &dst, buf.len()),
            Version::V2 => 0,
        };
        if csum::finish(csum::add(sum, buf)) != 0 {
            return Err(Reason::Checksum);
        }
        Ok(Repr { version, vrid: byte(buf, 1), priority: byte(buf, 2), interval, auth, addrs })
    }

    /// The encoded length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self.addrs.raw.len()
            + match self.version {
                Version::V2 => AUTH_LEN,
                Version::V3 => 0,
            }
    }

    /// Appends the advertisement, checksum included, as sent from `src` to `dst` (VRRPv3's
    /// checksum depends on both; keepalived computes it per unicast peer). A VRRPv2 interval is
    /// cut to 8 bits, a VRRPv3 one to 12; VRRPv3 carries no authentication.
    pub fn emit(&self, src: IpAddr, dst: IpAddr, out: &mut Vec<u8>) {
        let start = out.len();
        out.push((self.version.number() << 4) | TYPE_ADVERT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(self.addrs.len() as u8);
        match self.version {
            Version::V3 => out.extend_from_slice(&(self.interval & MAX_INTERVAL_CS).to_be_bytes()),
            Version::V2 => out.extend_from_slice(&[self.auth.kind(), self.interval as u8]),
        }
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(self.addrs.raw);
        if self.version == Version::V2 {
            match &self.auth {
                Auth::None => out.extend_from_slice(&[0; AUTH_LEN]),
                Auth::Password(p) => out.extend_from_slice(p),
            }
        }
        let msg = out.get(start..).unwrap_or_default();
        let sum = match self.version {
            Version::V3 => pseudo_sum(&src, &dst, msg.len()),
            Version::V2 => 0,
        };
        let check = csum::finish(csum::add(sum, msg)).to_be_bytes();
        if let Some(c) = out.get_mut(start + 6..start + 8) {
            c.copy_from_slice(&check);
        }
    }

    /// The encoded advertisement from `src` to `dst`.
    pub fn to_bytes(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit(src, dst, &mut out);
        out
    }
}
