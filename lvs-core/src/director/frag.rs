//! Fragments. In: a datagram's later fragments carry no ports, so they follow the connection
//! their first fragment used (the kernel reassembles first; we remember the first fragment's
//! choice). Out: a tunnelled packet longer than the path MTU leaves in fragments, as the stack
//! fragments what `ip_vs_tunnel_xmit` sends (`ip_fragment`, `ip6_fragment`).

use hashbrown::HashMap;

use super::{Director, Verdict};
use crate::addr::{raw, Af, ServiceKey};
use crate::conn::table::InKey;
use crate::conn::ConnId;
use crate::dest::DestId;
use crate::error::Reason;
use crate::time::Instant;
use crate::wire::{Frame, PacketMeta};
use crate::xmit::fragment::{fragment_v4, fragment_v6};

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
    /// Sends a tunnelled frame whose outer header starts at `l3`: whole when it fits the tunnel
    /// MTU, otherwise fragmented (`ip_finish_output` → `ip_fragment`, `ip6_finish_output` →
    /// `ip6_fragment`; IPVS sets `ignore_df`, and a DF packet was refused before).
    ///
    /// DoS warning: the work and the fragments written grow with the packet's length over
    /// the MTU (at most 8 191 fragments of a 64 KiB datagram with the smallest MTU).
    pub(super) fn send_tunnelled(
        &mut self,
        frame: &mut Frame,
        l3: usize,
        port: u16,
        dest: Option<DestId>,
        outer: Af,
    ) -> Verdict {
        let mtu = self.cfg.tun_mtu;
        if frame.len().saturating_sub(l3) <= usize::from(mtu) {
            return Verdict::Transmit { port, dest };
        }
        let split = match outer {
            Af::V4 => fragment_v4(frame, l3, mtu, &mut self.frag_out),
            Af::V6 => {
                self.frag_id6 = self.frag_id6.wrapping_add(1);
                fragment_v6(frame, l3, mtu, self.frag_id6, &mut self.frag_out)
            }
        };
        match split {
            Ok(more) => Verdict::Fragmented { port, dest, more },
            Err(_) => self.drop(Reason::MtuExceeded),
        }
    }

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
        let (fwd, daddr, dport) = (c.fwd(), self.conns.daddr(c), c.dport);
        if !self.dest_available(dest) {
            return self.drop(Reason::DestUnavailable);
        }
        self.count(dest, u32::from(meta.ip_len), false);
        self.transmit(frame, meta, Some(dest), fwd, &daddr, dport)
    }
}
