//! The sync message formats of `ip_vs_sync.c`, both versions, encoded and decoded.
//!
//! **Version 1** (the kernel's default, `sync_version=1`): an 8-byte header
//! `reserved=0 | syncid | size (be16) | count | version=1 | spare=0 (be16)`, then per connection
//! `type (bit 0 = IPv6) | protocol | ver_size (version in the top 4 bits, length in the low 12)
//! | flags (be32) | state (be16) | cport vport dport | fwmark (be32) | timeout (be32, seconds)
//! | caddr vaddr daddr` (36 bytes for IPv4, 72 for IPv6), followed by options
//! `type | length | data` — sequence numbers (1), persistence-engine data (2) and name (3); an
//! unknown type with bit `0x40` set is optional — and padding to a 4-byte boundary before the
//! next record.
//!
//! **Version 0** (`sync_version=0`, IPv4 only): a 4-byte header `count | syncid | size (be16)`,
//! then 24-byte records `reserved | protocol | cport vport dport | caddr vaddr daddr | flags
//! (be16) | state (be16)`, each followed by 24 bytes of sequence numbers when the flags carry
//! `IN_SEQ`/`OUT_SEQ`. No timeout, no fwmark.
//!
//! A receiver tells them apart as the kernel does ([`parse`]): version 1 only when the version
//! byte is 1 and the reserved byte and the spare field are 0; anything else is read as version
//! 0. Decoding follows `ip_vs_process_message`: a malformed message is refused whole, a record
//! the kernel skips yields [`Entry::Skip`] and decoding goes on, and a record the kernel
//! "drops the buffer" on ends the message with an [`Abort`] (the records before it stand).

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Connection flags as the kernel puts them on the wire (`IP_VS_CONN_F_*`).
pub mod flags {
    /// Forwarding method mask: 0 MASQ, 1 LOCALNODE, 2 TUNNEL, 3 DROUTE, 4 BYPASS.
    pub const FWD_MASK: u32 = 0x0007;
    /// Masquerading (NAT).
    pub const MASQ: u32 = 0x0000;
    /// Local node.
    pub const LOCALNODE: u32 = 0x0001;
    /// IP tunnelling.
    pub const TUNNEL: u32 = 0x0002;
    /// Direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// The entry came from a sync message.
    pub const SYNC: u32 = 0x0020;
    /// Hashed in the table (never sent).
    pub const HASHED: u32 = 0x0040;
    /// Never saw the server's side (DR, TUN, local).
    pub const NOOUTPUT: u32 = 0x0080;
    /// Counted in InActConn.
    pub const INACTIVE: u32 = 0x0100;
    /// Outgoing sequence adjustment.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Incoming sequence adjustment.
    pub const IN_SEQ: u32 = 0x0400;
    /// Either sequence adjustment: a sequence option follows.
    pub const SEQ_MASK: u32 = IN_SEQ | OUT_SEQ;
    /// The client port is not known yet.
    pub const NO_CPORT: u32 = 0x0800;
    /// Persistence template.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling (never sent).
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a backup takes from a record (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// What a record may change in an entry a backup already has (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

/// Protocol version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The original format (`sync_version=0`).
    V0,
    /// The current format (`sync_version=1`, the default).
    V1,
}

/// The kernel's version-1 header length.
pub const V1_HEADER: usize = 8;
/// The version-0 header length.
pub const V0_HEADER: usize = 4;
/// A version-0 record without sequence numbers.
pub const V0_RECORD: usize = 24;
/// A version-0 record with sequence numbers.
pub const V0_RECORD_SEQ: usize = 48;
/// A version-1 IPv4 record without options.
pub const V1_RECORD_V4: usize = 36;
/// A version-1 IPv6 record without options.
pub const V1_RECORD_V6: usize = 72;
/// The longest persistence-engine data a record may carry (`IP_VS_PEDATA_MAXLEN`).
pub const PE_DATA_MAX: usize = 255;
/// The longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 16;

const OPT_SEQ: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
const OPT_OPTIONAL: u8 = 0x40;
const SEQ_LEN: usize = 24;

/// One direction's sequence adjustment (`struct ip_vs_seq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seq {
    /// Add the delta from this sequence number on.
    pub init_seq: u32,
    /// The delta.
    pub delta: u32,
    /// The delta before the last resized packet.
    pub previous_delta: u32,
}

/// Both directions' sequence adjustments (`struct ip_vs_sync_conn_options`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqOptions {
    /// Client → server.
    pub in_seq: Seq,
    /// Server → client.
    pub out_seq: Seq,
}

/// One connection or template as a sync message carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record<'a> {
    /// IP protocol (0 for fwmark templates).
    pub proto: u8,
    /// Kernel connection flags ([`flags`]).
    pub flags: u32,
    /// Protocol state number (the kernel's `IP_VS_TCP_S_*`, template `NONE`=0 / `ASSURED`=1).
    pub state: u16,
    /// Client address (IPv4 or IPv6, like the other two).
    pub caddr: IpAddr,
    /// Virtual address (the mark as an address for fwmark templates).
    pub vaddr: IpAddr,
    /// Real server address.
    pub daddr: IpAddr,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real server port.
    pub dport: u16,
    /// Firewall mark of a fwmark service's connection (version 1 only).
    pub fwmark: u32,
    /// Timeout in seconds; 0 = the receiver's own (version 0 always sends 0).
    pub timeout: u32,
    /// Sequence adjustments (present when `flags` has `IN_SEQ` or `OUT_SEQ` in version 0).
    pub seq: Option<SeqOptions>,
    /// Persistence-engine data (version 1).
    pub pe_data: Option<&'a [u8]>,
    /// Persistence-engine name (version 1).
    pub pe_name: Option<&'a [u8]>,
}

impl Record<'_> {
    /// Whether the addresses are IPv6.
    pub fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// Encoded length in a version-1 message, without padding.
    pub fn v1_len(&self) -> usize {
        let base = if self.is_v6() { V1_RECORD_V6 } else { V1_RECORD_V4 };
        base + self.seq.map_or(0, |_| SEQ_LEN + 2)
            + self.pe_data.map_or(0, |d| d.len() + 2)
            + self.pe_name.map_or(0, |n| n.len() + 2)
    }

    /// Encoded length in a version-0 message.
    pub fn v0_len(&self) -> usize {
        if self.flags & flags::SEQ_MASK != 0 {
            V0_RECORD_SEQ
        } else {
            V0_RECORD
        }
    }
}

/// Why a whole message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MessageError {
    /// Shorter than the smallest header ("message header too short").
    #[error("message shorter than its header")]
    TooShort,
    /// The header's size is not the datagram's length ("bogus message size").
    #[error("header size does not match the datagram")]
    BadSize,
}

/// Why the rest of a message was dropped ("Dropping buffer ..."); the records before stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Abort {
    /// A record runs past the end of the message.
    #[error("record runs past the message")]
    Truncated,
    /// A version-1 record whose size field carries a version other than 0.
    #[error("record of an unknown version")]
    RecordVersion,
    /// A version-1 record of a type that is neither IPv4 nor IPv6.
    #[error("record of an unknown type")]
    RecordType,
    /// A record size smaller than its fixed part.
    #[error("record shorter than its fixed part")]
    RecordSize,
    /// An option header or option data runs past the record, or has length 0.
    #[error("option runs past its record")]
    OptionBounds,
    /// A sequence option of the wrong length, or found twice.
    #[error("bad sequence option")]
    BadSeqOption,
    /// Persistence-engine data or name too long, or found twice.
    #[error("bad persistence-engine option")]
    BadPeOption,
}

/// Why one record was skipped while the rest of the message is still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Skip {
    /// An unknown option that is not marked optional.
    #[error("unknown mandatory option")]
    MandatoryOption,
}

/// One item of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A record to apply.
    Record(Record<'a>),
    /// A record the receiver skips.
    Skip(Skip),
}

/// A message whose header passed: its version, syncid and records.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The format.
    pub version: Version,
    /// The sender's sync id.
    pub syncid: u8,
    /// How many records the header announces.
    pub count: u8,
    buf: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2).map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn v4(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(be32(b, at)))
}

fn v6(b: &[u8], at: usize) -> IpAddr {
    let mut o = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        o.copy_from_slice(s);
    }
    IpAddr::V6(Ipv6Addr::from(o))
}

fn seq_at(b: &[u8], at: usize) -> Seq {
    Seq { init_seq: be32(b, at), delta: be32(b, at + 4), previous_delta: be32(b, at + 8) }
}

fn seqs_at(b: &[u8], at: usize) -> SeqOptions {
    SeqOptions { in_seq: seq_at(b, at), out_seq: seq_at(b, at + 12) }
}

/// Reads a datagram's header (`ip_vs_process_message`): at least 4 bytes, and a size field equal
/// to the datagram's length. The sync id is the receiver's to check.
///
/// # Errors
/// [`MessageError`] when the datagram is refused whole.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, MessageError> {
    if buf.len() < V0_HEADER {
        return Err(MessageError::TooShort);
    }
    if usize::from(be16(buf, 2)) != buf.len() {
        return Err(MessageError::BadSize);
    }
    let is_v1 = buf.len() >= V1_HEADER && buf[0] == 0 && buf[5] == 1 && be16(buf, 6) == 0;
    let (version, count) = if is_v1 { (Version::V1, buf[4]) } else { (Version::V0, buf[0]) };
    Ok(Message { version, syncid: buf[1], count, buf })
}

impl<'a> Message<'a> {
    /// The records, in order.
    pub fn entries(&self) -> Entries<'a> {
        let pos = match self.version {
            Version::V0 => V0_HEADER,
            Version::V1 => V1_HEADER,
        };
        Entries { version: self.version, buf: self.buf, pos, left: self.count, done: false }
    }
}

/// The records of a [`Message`]; an `Err` ends it.
pub struct Entries<'a> {
    version: Version,
    buf: &'a [u8],
    pos: usize,
    left: u8,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, Abort>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = match self.version {
            Version::V0 => self.next_v0(),
            Version::V1 => self.next_v1(),
        };
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

impl<'a> Entries<'a> {
    /// `ip_vs_process_message_v0`.
    fn next_v0(&mut self) -> Result<Entry<'a>, Abort> {
        let (b, p) = (self.buf, self.pos);
        if p + V0_RECORD > b.len() {
            return Err(Abort::Truncated);
        }
        let fl = u32::from(be16(b, p + 20));
        let seq = if fl & flags::SEQ_MASK != 0 {
            if p + V0_RECORD_SEQ > b.len() {
                return Err(Abort::Truncated);
            }
            self.pos += V0_RECORD_SEQ;
            Some(seqs_at(b, p + V0_RECORD))
        } else {
            self.pos += V0_RECORD;
            None
        };
        Ok(Entry::Record(Record {
            proto: b[p + 1],
            flags: fl,
            state: be16(b, p + 22),
            cport: be16(b, p + 2),
            vport: be16(b, p + 4),
            dport: be16(b, p + 6),
            caddr: v4(b, p + 8),
            vaddr: v4(b, p + 12),
            daddr: v4(b, p + 16),
            fwmark: 0,
            timeout: 0,
            seq,
            pe_data: None,
            pe_name: None,
        }))
    }

    /// One record of `ip_vs_process_message` and `ip_vs_proc_sync_conn`.
    fn next_v1(&mut self) -> Result<Entry<'a>, Abort> {
        let (b, p) = (self.buf, self.pos);
        if p + V1_RECORD_V4 > b.len() {
            return Err(Abort::Truncated);
        }
        let ver_size = be16(b, p + 2);
        let size = usize::from(ver_size & 0x0fff);
        let end = p + size;
        if end > b.len() {
            return Err(Abort::Truncated);
        }
        if ver_size >> 12 != 0 {
            return Err(Abort::RecordVersion);
        }
        // The next record starts at the 4-byte boundary after this one.
        self.pos = p + ((size + 3) & !3);
        let ty = b[p];
        let fixed = if ty & 1 != 0 {
            V1_RECORD_V6
        } else if ty == 0 {
            V1_RECORD_V4
        } else {
            return Err(Abort::RecordType);
        };
        if p + fixed > end {
            return Err(Abort::RecordSize);
        }
        let (caddr, vaddr, daddr) = if fixed == V1_RECORD_V6 {
            (v6(b, p + 24), v6(b, p + 40), v6(b, p + 56))
        } else {
            (v4(b, p + 24), v4(b, p + 28), v4(b, p + 32))
        };
        let mut rec = Record {
            proto: b[p + 1],
            flags: be32(b, p + 4),
            state: be16(b, p + 8),
            cport: be16(b, p + 10),
            vport: be16(b, p + 12),
            dport: be16(b, p + 14),
            fwmark: be32(b, p + 16),
            timeout: be32(b, p + 20),
            caddr,
            vaddr,
            daddr,
            seq: None,
            pe_data: None,
            pe_name: None,
        };
        let mut o = p + fixed;
        while o < end {
            if o + 2 > end {
                return Err(Abort::OptionBounds);
            }
            let (ty, len) = (b[o], usize::from(b[o + 1]));
            o += 2;
            if len == 0 || o + len > end {
                return Err(Abort::OptionBounds);
            }
            let data = &b[o..o + len];
            match ty & !OPT_OPTIONAL {
                OPT_SEQ => {
                    if len != SEQ_LEN || rec.seq.is_some() {
                        return Err(Abort::BadSeqOption);
                    }
                    rec.seq = Some(seqs_at(b, o));
                }
                OPT_PE_DATA => {
                    if len > PE_DATA_MAX || rec.pe_data.is_some() {
                        return Err(Abort::BadPeOption);
                    }
                    rec.pe_data = Some(data);
                }
                OPT_PE_NAME => {
                    if len > PE_NAME_MAX || rec.pe_name.is_some() {
                        return Err(Abort::BadPeOption);
                    }
                    rec.pe_name = Some(data);
                }
                _ if ty & OPT_OPTIONAL == 0 => return Ok(Entry::Skip(Skip::MandatoryOption)),
                _ => {}
            }
            o += len;
        }
        Ok(Entry::Record(rec))
    }
}

/// Builds one message record by record, as a master fills its current sync buffer.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    version: Version,
    buf: Vec<u8>,
    cap: usize,
    count: u8,
}

impl MessageBuilder {
    /// An empty message of `version` from `syncid`, at most `maxlen` bytes (unless its first
    /// record alone is longer, as in `ip_vs_sync_buff_create`).
    pub fn new(version: Version, syncid: u8, maxlen: usize) -> Self {
        let mut buf = Vec::with_capacity(maxlen);
        match version {
            Version::V0 => buf.extend_from_slice(&[0, syncid, 0, V0_HEADER as u8]),
            Version::V1 => buf.extend_from_slice(&[0, syncid, 0, V1_HEADER as u8, 0, 1, 0, 0]),
        }
        MessageBuilder { version, buf, cap: maxlen, count: 0 }
    }

    /// The format.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Records so far.
    pub fn count(&self) -> u8 {
        self.count
    }

    /// Whether the message has no record yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `r` still fits: a message takes records while it stays within its maximum
    /// length, and its first record always (the record count is one byte, so 255 at most).
    pub fn fits(&self, r: &Record<'_>) -> bool {
        self.is_empty() || (self.count < u8::MAX && self.buf.len() + self.need(r) <= self.cap)
    }

    /// Bytes `r` adds, padding included.
    fn need(&self, r: &Record<'_>) -> usize {
        match self.version {
            Version::V0 => r.v0_len(),
            Version::V1 => (4 - self.buf.len() % 4) % 4 + r.v1_len(),
        }
    }

    /// Appends `r` (the caller checked [`MessageBuilder::fits`]). A version-0 message cannot
    /// carry IPv6 or a timeout; such a record is left out and `false` returned.
    pub fn push(&mut self, r: &Record<'_>) -> bool {
        if self.is_empty() {
            self.cap = self.cap.max(self.buf.len() + self.need(r));
        }
        match self.version {
            Version::V0 => {
                let (IpAddr::V4(c), IpAddr::V4(v), IpAddr::V4(d)) = (r.caddr, r.vaddr, r.daddr) else { return false };
                self.buf.extend_from_slice(&[0, r.proto]);
                for x in [r.cport, r.vport, r.dport] {
                    self.buf.extend_from_slice(&x.to_be_bytes());
                }
                for a in [c, v, d] {
                    self.buf.extend_from_slice(&a.octets());
                }
                self.buf.extend_from_slice(&((r.flags & !flags::HASHED) as u16).to_be_bytes());
                self.buf.extend_from_slice(&r.state.to_be_bytes());
                if r.flags & flags::SEQ_MASK != 0 {
                    self.put_seqs(&r.seq.unwrap_or_default());
                }
            }
            Version::V1 => {
                while self.buf.len() % 4 != 0 {
                    self.buf.push(0);
                }
                let len = r.v1_len();
                self.buf.push(u8::from(r.is_v6()));
                self.buf.push(r.proto);
                self.buf.extend_from_slice(&((len & 0x0fff) as u16).to_be_bytes());
                self.buf.extend_from_slice(&(r.flags & !flags::HASHED).to_be_bytes());
                self.buf.extend_from_slice(&r.state.to_be_bytes());
                for x in [r.cport, r.vport, r.dport] {
                    self.buf.extend_from_slice(&x.to_be_bytes());
                }
                self.buf.extend_from_slice(&r.fwmark.to_be_bytes());
                self.buf.extend_from_slice(&r.timeout.to_be_bytes());
                for a in [r.caddr, r.vaddr, r.daddr] {
                    match a {
                        IpAddr::V4(a) => self.buf.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => self.buf.extend_from_slice(&a.octets()),
                    }
                }
                if let Some(s) = &r.seq {
                    self.buf.extend_from_slice(&[OPT_SEQ, SEQ_LEN as u8]);
                    self.put_seqs(s);
                }
                // The kernel sends a name only with data; either is encoded as given.
                for (ty, v) in [(OPT_PE_DATA, r.pe_data), (OPT_PE_NAME, r.pe_name)] {
                    if let Some(v) = v {
                        self.buf.extend_from_slice(&[ty, v.len() as u8]);
                        self.buf.extend_from_slice(v);
                    }
                }
            }
        }
        self.count += 1;
        let size = (self.buf.len() as u16).to_be_bytes();
        self.buf[2..4].copy_from_slice(&size);
        match self.version {
            Version::V0 => self.buf[0] = self.count,
            Version::V1 => self.buf[4] = self.count,
        }
        true
    }

    fn put_seqs(&mut self, s: &SeqOptions) {
        for q in [s.in_seq, s.out_seq] {
            for x in [q.init_seq, q.delta, q.previous_delta] {
                self.buf.extend_from_slice(&x.to_be_bytes());
            }
        }
    }

    /// The finished datagram.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The datagram so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}
