//! Fragments: a datagram's later fragments carry no ports, so they follow the connection their
//! first fragment used (the kernel reassembles first; we remember the first fragment's choice).

use hashbrown::HashMap;

use super::{Director, Verdict};
use crate::addr::{from_raw, raw, Af, ServiceKey};
use crate::conn::table::InKey;
use crate::conn::ConnId;
use crate::error::Reason;
use crate::time::Instant;
use crate::wire::{Frame, PacketMeta};

/// How long a fragment entry lives (the kernel's `ipfrag_time`).
const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;
/// Most datagrams in flight whose later fragments are tracked.
const FRAG_MAX: usize = 4096;

/// What identifies a datagram's fragments: addresses, IP ID and protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct FragKey {
    v6: bool,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
}

impl FragKey {
    fn of(meta: &PacketMeta, id: u32) -> FragKey {
        FragKey { v6: meta.af == Af::V6, src: raw(&meta.src), dst: raw(&meta.dst), id, proto: meta.proto }
    }
}

/// The connection a datagram's first fragment went to, and the key that found it.
#[derive(Clone, Copy)]
struct FragEntry {
    conn: ConnId,
    key: InKey,
    expires: u64,
}

/// The small table that lets later fragments follow their first, bounded by [`FRAG_MAX`].
pub(super) struct FragTable {
    map: HashMap<FragKey, FragEntry, ahash::RandomState>,
}

impl FragTable {
    pub(super) fn new(hasher: ahash::RandomState) -> Self {
        FragTable { map: HashMap::with_hasher(hasher) }
    }

    /// Remembers that the datagram `fid` of `meta` went to `conn`, found by `key`. When the
    /// table is full of live entries the datagram is not remembered.
    pub(super) fn remember(&mut self, now: Instant, meta: &PacketMeta, fid: u32, conn: ConnId, key: InKey) {
        if self.map.len() >= FRAG_MAX {
            self.prune(now);
            if self.map.len() >= FRAG_MAX {
                return;
            }
        }
        let e = FragEntry { conn, key, expires: now.as_nanos().saturating_add(FRAG_TIMEOUT_NS) };
        self.map.insert(FragKey::of(meta, fid), e);
    }

    /// The live entry of datagram `fid`.
    fn find(&self, now: Instant, meta: &PacketMeta, fid: u32) -> Option<FragEntry> {
        self.map.get(&FragKey::of(meta, fid)).filter(|e| e.expires > now.as_nanos()).copied()
    }

    /// Forgets expired entries.
    pub(super) fn prune(&mut self, now: Instant) {
        let n = now.as_nanos();
        self.map.retain(|_, e| e.expires > n);
    }
}

impl Director {
    /// A non-first fragment follows the connection its first fragment used.
    pub(super) fn later_fragment(&mut self, now: Instant, frame: &mut Frame, meta: &PacketMeta, fid: u32) -> Verdict {
        let live = self.frags.find(now, meta, fid);
        let conn = live.and_then(|e| self.conns.find_in(&e.key).filter(|c| *c == e.conn));
        let Some(id) = conn else {
            // A fragment without ports can only be matched to a service by its address.
            let to_vip = self.svcs.iter().flatten().any(|s| match s.cfg.key {
                ServiceKey::Inet { addr, .. } => addr == meta.dst,
                ServiceKey::Fwmark { .. } => false,
            }) || self.find_service(frame, meta).is_some();
            return if to_vip { self.drop(Reason::StrayFragment) } else { Verdict::NotMine };
        };
        let Some(c) = self.conns.get(id) else { return self.drop(Reason::StrayFragment) };
        let Some(dest) = c.dest_id() else { return self.drop(Reason::StrayFragment) };
        let (fwd, daddr, dport) = (c.fwd(), from_raw(c.daf(), &self.conns.addrs(c).daddr), c.dport);
        if !self.dest_available(dest) {
            return self.drop(Reason::DestUnavailable);
        }
        self.count(dest, u32::from(meta.ip_len), false);
        self.transmit(frame, meta, Some(dest), fwd, &daddr, dport)
    }
}
