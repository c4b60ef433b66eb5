//! The slab and its two hash indexes.

use alloc::vec::Vec;
use core::hash::{Hash, Hasher};
use core::net::{IpAddr, Ipv4Addr};

use super::index::{Peek, TagIndex, MAX_ENTRIES};
use super::timer::Wheel;
use super::{cf, Addrs, Conn, ConnId, NIL};
use crate::addr::from_raw;

/// Key of the client → virtual index (`ip_vs_conn_hashkey_param` for the in direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InKey {
    pub(crate) v6: bool,
    pub(crate) tmpl: bool,
    pub(crate) proto: u8,
    pub(crate) caddr: [u8; 16],
    pub(crate) cport: u16,
    pub(crate) vaddr: [u8; 16],
    pub(crate) vport: u16,
}

/// Key of the reply index: the reply's source (the real server) and destination (the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutKey {
    pub(crate) v6: bool,
    pub(crate) proto: u8,
    pub(crate) daddr: [u8; 16],
    pub(crate) dport: u16,
    pub(crate) caddr: [u8; 16],
    pub(crate) cport: u16,
}

// Both keys hash as three words (the two addresses, then ports, protocol and flags), not
// field by field: a derived `Hash` feeds the hasher eight times with a length before each
// address, and the key's hash is on every packet's path.
impl Hash for InKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.caddr));
        state.write_u128(u128::from_ne_bytes(self.vaddr));
        state.write_u64(small_words(self.cport, self.vport, self.proto, self.v6, self.tmpl));
    }
}

impl Hash for OutKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.daddr));
        state.write_u128(u128::from_ne_bytes(self.caddr));
        state.write_u64(small_words(self.dport, self.cport, self.proto, self.v6, false));
    }
}

/// A key's ports, protocol and flags packed into one word for hashing.
fn small_words(port1: u16, port2: u16, proto: u8, v6: bool, tmpl: bool) -> u64 {
    u64::from(port1) | u64::from(port2) << 16 | u64::from(proto) << 32 | u64::from(v6) << 40 | u64::from(tmpl) << 41
}

/// A lookup half done: the key's hash and what its home group of the index said.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peeked {
    hv: u64,
    peek: Peek,
}

impl Peeked {
    /// Whether the home group named an entry to compare.
    #[inline]
    pub(crate) fn candidate(&self) -> bool {
        matches!(self.peek, Peek::Candidate(_))
    }

    /// The entry the home group named to compare first.
    #[inline]
    pub(crate) fn candidate_id(&self) -> Option<u32> {
        match self.peek {
            Peek::Candidate(id) => Some(id),
            _ => None,
        }
    }
}

/// Size figures of the table, for capacity planning and the README's bytes per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Live entries (connections and templates).
    pub entries: usize,
    /// Bytes held by the slab, the side slab of IPv6 addresses, the sync end times, both
    /// indexes and the wheel.
    pub bytes: usize,
}

/// Connections and templates: a bounded slab with hash indexes and a timer wheel.
pub(crate) struct ConnTable {
    slab: Vec<Conn>,
    /// The first free slab slot, or [`NIL`]; free slots are chained through their `tnext` (a
    /// free slot is in no wheel list), so the free list costs no memory of its own.
    free: u32,
    /// The addresses of entries with an IPv6 side, by the slot in their `caddr`.
    wide: Vec<Addrs>,
    /// Free slots of `wide`.
    wide_free: Vec<u32>,
    /// The sync end time of each slab slot (`cp->sync_endtime`, wrapping milliseconds), grown
    /// the first time a sync master marks an entry: a director that does not sync pays nothing.
    sync_end: Vec<u32>,
    live: usize,
    max: usize,
    /// What [`reserve`](Self::reserve) was last asked for: the reply index takes that room
    /// with its first entry (a director that never NATs pays nothing for it).
    reserved: usize,
    in_idx: TagIndex,
    out_idx: TagIndex,
    hasher: ahash::RandomState,
    /// Bumped whenever an index gains or loses an entry: a lookup made at one epoch still
    /// answers at the same epoch (a burst probes every frame's tuple before processing any).
    epoch: u32,
    pub(crate) wheel: Wheel,
}

impl ConnTable {
    /// A table that holds at most `max` entries (at most [`MAX_ENTRIES`]: a larger `max` is
    /// capped), hashing with `hasher` (seeded by the caller).
    pub(crate) fn new(max: usize, hasher: ahash::RandomState) -> Self {
        let max = max.min(MAX_ENTRIES);
        ConnTable {
            slab: Vec::new(),
            free: NIL,
            wide: Vec::new(),
            wide_free: Vec::new(),
            sync_end: Vec::new(),
            live: 0,
            max,
            reserved: 0,
            in_idx: TagIndex::new(max),
            out_idx: TagIndex::new(max),
            hasher,
            epoch: 0,
            wheel: Wheel::new(),
        }
    }

    /// Reserves room for `n` entries up front, so the table does not allocate after warm-up:
    /// the slab and the client → virtual index now, the reply index now if it holds entries
    /// already, else with its first entry.
    pub(crate) fn reserve(&mut self, n: usize) {
        let n = n.min(self.max);
        self.reserved = n;
        self.slab.reserve(n.saturating_sub(self.slab.len()));
        let (h, slab, wide) = (&self.hasher, &self.slab, &self.wide);
        self.in_idx.reserve(n, |id| hash_in(h, slab, wide, id));
        if !self.out_idx.is_unsized() {
            self.out_idx.reserve(n, |id| hash_out(h, slab, wide, id));
        }
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Memory held by the table.
    pub(crate) fn stats(&self) -> TableStats {
        TableStats {
            entries: self.live,
            bytes: self.slab.capacity() * core::mem::size_of::<Conn>()
                + self.wide.capacity() * core::mem::size_of::<Addrs>()
                + self.wide_free.capacity() * 4
                + self.sync_end.capacity() * 4
                + self.in_idx.allocation_size()
                + self.out_idx.allocation_size()
                + self.wheel.allocation_size(),
        }
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slab.get(id.0 as usize)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id.0 as usize)
    }

    /// Stores `c` with addresses `a`, links it in the indexes its flags ask for and in the
    /// wheel. `None` when the table is full (or, against a hash it cannot have met by chance,
    /// an index is; see [`TagIndex`]); nothing changes then.
    pub(crate) fn insert(&mut self, mut c: Conn, a: &Addrs) -> Option<ConnId> {
        if self.live >= self.max {
            return None;
        }
        let id = match self.slab.get(self.free as usize) {
            Some(_) => self.free,
            None => u32::try_from(self.slab.len()).ok()?,
        };
        // The indexes first: they are all that can refuse.
        let (h, slab, wide) = (&self.hasher, &self.slab, &self.wide);
        let hin = (c.flags & cf::IN_HASHED != 0).then(|| h.hash_one(key_in(&c, a)));
        let hout = (c.flags & cf::OUT_HASHED != 0).then(|| h.hash_one(key_out(&c, a)));
        if let Some(hv) = hin {
            if !self.in_idx.insert(hv, id, |i| hash_in(h, slab, wide, i)) {
                return None;
            }
        }
        if let Some(hv) = hout {
            if self.out_idx.is_unsized() {
                self.out_idx.reserve(self.reserved, |i| hash_out(h, slab, wide, i));
            }
            if !self.out_idx.insert(hv, id, |i| hash_out(h, slab, wide, i)) {
                if let Some(hv) = hin {
                    self.in_idx.remove(hv, id);
                }
                return None;
            }
        }
        if hin.is_some() || hout.is_some() {
            self.epoch = self.epoch.wrapping_add(1);
        }
        c.set_tprev(NIL);
        c.set_tnext(NIL);
        [c.caddr, c.vaddr, c.daddr] = if c.wide() {
            let w = match self.wide_free.pop() {
                Some(w) => {
                    *self.wide.get_mut(w as usize)? = *a;
                    w
                }
                None => {
                    self.wide.push(*a);
                    u32::try_from(self.wide.len() - 1).ok()?
                }
            };
            [w, 0, 0]
        } else {
            [v4(&a.caddr), v4(&a.vaddr), v4(&a.daddr)]
        };
        match self.slab.get_mut(id as usize) {
            Some(slot) => {
                self.free = slot.tnext();
                *slot = c;
            }
            None => self.slab.push(c),
        }
        if let Some(e) = self.sync_end.get_mut(id as usize) {
            *e = 0;
        }
        self.live += 1;
        self.wheel.link(&mut self.slab, id);
        Some(ConnId(id))
    }

    /// Takes an entry out of the client → virtual index (invalidated templates stop matching).
    pub(crate) fn unhash_in(&mut self, id: ConnId) {
        let Some(c) = self.slab.get(id.0 as usize) else { return };
        if c.flags & cf::IN_HASHED == 0 {
            return;
        }
        let hv = self.hasher.hash_one(in_key(c, &self.wide));
        self.epoch = self.epoch.wrapping_add(1);
        self.in_idx.remove(hv, id.0);
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            c.flags &= !cf::IN_HASHED;
        }
    }

    /// Re-files a hashed entry under the key `rekey` gives it (an invalidated template). Should
    /// the index refuse the new key (see [`insert`](Self::insert)), the entry stays out of it.
    pub(crate) fn rekey_in(&mut self, id: ConnId, rekey: impl FnOnce(&mut Conn)) {
        if self.slab.get(id.0 as usize).is_none_or(|c| c.flags & cf::IN_HASHED == 0) {
            return;
        }
        self.unhash_in(id);
        let Some(c) = self.slab.get_mut(id.0 as usize) else { return };
        rekey(c);
        let (h, slab, wide) = (&self.hasher, &self.slab, &self.wide);
        let Some(c) = slab.get(id.0 as usize) else { return };
        let filed = self.in_idx.insert(h.hash_one(in_key(c, wide)), id.0, |i| hash_in(h, slab, wide, i));
        self.epoch = self.epoch.wrapping_add(1);
        if let Some(c) = self.slab.get_mut(id.0 as usize).filter(|_| filed) {
            c.flags |= cf::IN_HASHED;
        }
    }

    /// Takes an entry out of both indexes; it stays in the slab and the wheel.
    pub(crate) fn unhash(&mut self, id: ConnId) {
        self.unhash_in(id);
        self.unhash_out(id);
    }

    fn unhash_out(&mut self, id: ConnId) {
        let Some(c) = self.slab.get(id.0 as usize) else { return };
        if c.flags & cf::OUT_HASHED == 0 {
            return;
        }
        let hv = self.hasher.hash_one(out_key(c, &self.wide));
        self.epoch = self.epoch.wrapping_add(1);
        self.out_idx.remove(hv, id.0);
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            c.flags &= !cf::OUT_HASHED;
        }
    }

    /// Removes an entry that is still in the wheel (expire-now, flush).
    pub(crate) fn remove_armed(&mut self, id: ConnId) -> Option<(Conn, Addrs)> {
        if self.slab.get(id.0 as usize).is_none_or(|c| c.flags & cf::FREE != 0) {
            return None;
        }
        self.wheel.unlink(&mut self.slab, id.0);
        self.remove_unarmed(id)
    }

    /// Removes an entry that `pop_due` already took out of the wheel. The entry is returned as
    /// it was, its index flags and addresses included, so the caller can undo what they stood
    /// for.
    pub(crate) fn remove_unarmed(&mut self, id: ConnId) -> Option<(Conn, Addrs)> {
        let c = self.slab.get(id.0 as usize).filter(|c| c.flags & cf::FREE == 0)?.clone();
        let a = self.addrs(&c);
        self.unhash_in(id);
        self.unhash_out(id);
        if c.wide() {
            self.wide_free.push(c.caddr);
        }
        let slot = self.slab.get_mut(id.0 as usize)?;
        slot.flags |= cf::FREE;
        slot.set_tnext(self.free);
        self.free = id.0;
        self.live -= 1;
        Some((c, a))
    }

    /// Links an entry that `pop_due` handed out back into the wheel at its `expires`.
    pub(crate) fn relink(&mut self, id: ConnId) {
        self.wheel.link(&mut self.slab, id.0);
    }

    /// Sets an entry's expiry to `expires` (wrapping milliseconds,
    /// [`time::after_ms`](crate::time::after_ms)), re-filing it if that is earlier than its
    /// slot.
    #[inline]
    pub(crate) fn arm(&mut self, id: ConnId, expires: u32) {
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            let old = core::mem::replace(&mut c.expires, expires);
            self.wheel.rearm(&mut self.slab, id.0, old);
        }
    }

    /// Looks up the client → virtual index.
    #[inline]
    pub(crate) fn find_in(&self, key: &InKey) -> Option<ConnId> {
        self.find_in_hashed(key, self.hasher.hash_one(key))
    }

    /// [`find_in`](Self::find_in) for a key whose hash is `hv`.
    #[inline]
    fn find_in_hashed(&self, key: &InKey, hv: u64) -> Option<ConnId> {
        let (slab, wide) = (&self.slab, &self.wide);
        self.in_idx.find(hv, |i| slab.get(i as usize).is_some_and(|c| filed_in(c, wide, key))).map(ConnId)
    }

    /// The hash under which the client → virtual index files `key`.
    #[inline]
    pub(crate) fn hash_in(&self, key: &InKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The address of the client → virtual index's home group for hash `hv`, for a prefetch.
    #[inline]
    pub(crate) fn in_line(&self, hv: u64) -> Option<*const u8> {
        self.in_idx.home_line(hv)
    }

    /// The addresses of the cache lines entry `id` lies on, for a prefetch: its first byte's
    /// line, and the line of its last byte when a 48-byte entry straddles two (the second is
    /// `None` otherwise).
    #[inline]
    pub(crate) fn entry_lines(&self, id: u32) -> Option<(*const u8, Option<*const u8>)> {
        let c = self.slab.get(id as usize)?;
        let first: *const u8 = core::ptr::from_ref(c).cast();
        let last = first.wrapping_add(core::mem::size_of::<Conn>() - 1);
        let straddles = (first as usize) / 64 != (last as usize) / 64;
        Some((first, straddles.then_some(last)))
    }

    /// The first half of a lookup in the client → virtual index: reads the home group of
    /// `key`'s hash `hv` ([`hash_in`](Self::hash_in)), one cache line, touching no entry. A
    /// burst takes this step for all its frames before [`resolve_in`](Self::resolve_in) for
    /// any, so the loads overlap.
    #[inline]
    pub(crate) fn peek_in(&self, hv: u64) -> Peeked {
        Peeked { hv, peek: self.in_idx.peek(hv) }
    }

    /// The second half of a lookup begun by [`peek_in`](Self::peek_in) at the same epoch:
    /// what [`find_in`](Self::find_in) answers, reading the candidate entry first.
    #[inline]
    pub(crate) fn resolve_in(&self, key: &InKey, p: Peeked) -> Option<ConnId> {
        match p.peek {
            Peek::Absent => None,
            Peek::Candidate(id) if self.slab.get(id as usize).is_some_and(|c| filed_in(c, &self.wide, key)) => {
                Some(ConnId(id))
            }
            _ => self.find_in_hashed(key, p.hv),
        }
    }

    /// Whether entry `id` is the one the client → virtual index files under `key` (what
    /// [`find_in`](Self::find_in) would answer), read from the entry alone.
    #[inline]
    pub(crate) fn holds_in(&self, id: ConnId, key: &InKey) -> bool {
        self.slab
            .get(id.0 as usize)
            .is_some_and(|c| c.flags & (cf::FREE | cf::IN_HASHED) == cf::IN_HASHED && filed_in(c, &self.wide, key))
    }

    /// Whether live entry `id` carries the client → virtual key `key`, filed in that index or
    /// not (a SIP template is filed by its Call-ID instead).
    pub(crate) fn has_in_key(&self, id: ConnId, key: &InKey) -> bool {
        self.slab.get(id.0 as usize).is_some_and(|c| c.flags & cf::FREE == 0 && filed_in(c, &self.wide, key))
    }

    /// The index epoch: unchanged means no entry entered or left an index since it was read.
    #[inline]
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Reads the timer fields of entry `id` (the part of the entry a lookup's key comparison
    /// does not read), so that a burst's first pass brings the whole entry into the cache.
    #[inline]
    pub(crate) fn touch(&self, id: ConnId) {
        if let Some(c) = self.slab.get(id.0 as usize) {
            core::hint::black_box(c.expires);
        }
    }

    /// Looks up the reply index.
    #[inline]
    pub(crate) fn find_out(&self, key: &OutKey) -> Option<ConnId> {
        self.find_out_hashed(key, self.hasher.hash_one(key))
    }

    /// [`find_out`](Self::find_out) for a key whose hash is `hv`.
    #[inline]
    fn find_out_hashed(&self, key: &OutKey, hv: u64) -> Option<ConnId> {
        let (slab, wide) = (&self.slab, &self.wide);
        self.out_idx.find(hv, |i| slab.get(i as usize).is_some_and(|c| filed_out(c, wide, key))).map(ConnId)
    }

    /// [`peek_in`](Self::peek_in) for the reply index, for a key whose hash is `hv`
    /// ([`hash_out`](Self::hash_out)).
    #[inline]
    pub(crate) fn peek_out(&self, hv: u64) -> Peeked {
        Peeked { hv, peek: self.out_idx.peek(hv) }
    }

    /// [`hash_in`](Self::hash_in) for the reply index.
    #[inline]
    pub(crate) fn hash_out(&self, key: &OutKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// [`in_line`](Self::in_line) for the reply index.
    #[inline]
    pub(crate) fn out_line(&self, hv: u64) -> Option<*const u8> {
        self.out_idx.home_line(hv)
    }

    /// [`resolve_in`](Self::resolve_in) for the reply index.
    #[inline]
    pub(crate) fn resolve_out(&self, key: &OutKey, p: Peeked) -> Option<ConnId> {
        match p.peek {
            Peek::Absent => None,
            Peek::Candidate(id) if self.slab.get(id as usize).is_some_and(|c| filed_out(c, &self.wide, key)) => {
                Some(ConnId(id))
            }
            _ => self.find_out_hashed(key, p.hv),
        }
    }

    /// Entries whose time has come, unlinked from the wheel (see [`Wheel::pop_due`]).
    pub(crate) fn pop_due(&mut self, now: u64, due: &mut Vec<ConnId>) {
        self.wheel.pop_due(&mut self.slab, now, due);
    }

    /// Every live entry with its handle.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slab.iter().enumerate().filter(|(_, c)| c.flags & cf::FREE == 0).map(|(i, c)| (ConnId(i as u32), c))
    }

    /// Slab slots, live or free: entries have handles below this.
    pub(crate) fn slots(&self) -> usize {
        self.slab.len()
    }

    /// The live entry in slot `i`, if any.
    pub(crate) fn live(&self, i: usize) -> Option<&Conn> {
        self.slab.get(i).filter(|c| c.flags & cf::FREE == 0)
    }

    /// The addresses of entry `c` (an entry of this table).
    #[inline]
    pub(crate) fn addrs(&self, c: &Conn) -> Addrs {
        addrs(c, &self.wide)
    }

    /// The real server's address of `c` (`cp->daddr`), read alone.
    #[inline]
    pub(crate) fn daddr(&self, c: &Conn) -> IpAddr {
        if c.wide() {
            from_raw(c.daf(), &self.wide.get(c.caddr as usize).map_or([0; 16], |a| a.daddr))
        } else {
            IpAddr::V4(Ipv4Addr::from(c.daddr.to_ne_bytes()))
        }
    }

    /// The virtual address of `c` (`cp->vaddr`), read alone.
    #[inline]
    pub(crate) fn vaddr(&self, c: &Conn) -> IpAddr {
        if c.wide() {
            from_raw(c.af(), &self.wide.get(c.caddr as usize).map_or([0; 16], |a| a.vaddr))
        } else {
            IpAddr::V4(Ipv4Addr::from(c.vaddr.to_ne_bytes()))
        }
    }

    /// The sync end time of entry `id` (`cp->sync_endtime`); 0 until a sync master marks it.
    pub(crate) fn sync_end(&self, id: ConnId) -> u32 {
        self.sync_end.get(id.0 as usize).copied().unwrap_or(0)
    }

    /// Records the sync end time of entry `id`, growing the side array to the slab the first
    /// time.
    pub(crate) fn set_sync_end(&mut self, id: ConnId, end: u32) {
        let i = id.0 as usize;
        if i >= self.slab.len() {
            return;
        }
        if self.sync_end.len() <= i {
            self.sync_end.resize(self.slab.capacity().max(i + 1), 0);
        }
        if let Some(e) = self.sync_end.get_mut(i) {
            *e = end;
        }
    }
}

/// An IPv4 address from the first four bytes of its 16-byte form.
fn v4(a: &[u8; 16]) -> u32 {
    u32::from_ne_bytes([a[0], a[1], a[2], a[3]])
}

/// The 16-byte form of an IPv4 address kept by [`v4`].
fn raw4(a: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[..4].copy_from_slice(&a.to_ne_bytes());
    r
}

/// The addresses of `c`, from the entry or from the side slab `wide`.
#[inline]
fn addrs(c: &Conn, wide: &[Addrs]) -> Addrs {
    if c.wide() {
        const NONE: Addrs = Addrs { caddr: [0; 16], vaddr: [0; 16], daddr: [0; 16] };
        wide.get(c.caddr as usize).copied().unwrap_or(NONE)
    } else {
        Addrs { caddr: raw4(c.caddr), vaddr: raw4(c.vaddr), daddr: raw4(c.daddr) }
    }
}

/// The client → virtual key entry `c` is filed under.
#[inline]
fn in_key(c: &Conn, wide: &[Addrs]) -> InKey {
    key_in(c, &addrs(c, wide))
}

/// The client → virtual key of entry `c` with addresses `a`.
#[inline]
fn key_in(c: &Conn, a: &Addrs) -> InKey {
    InKey {
        v6: c.flags & cf::V6 != 0,
        tmpl: c.is_template(),
        proto: c.proto,
        caddr: a.caddr,
        cport: c.cport,
        vaddr: a.vaddr,
        vport: c.vport,
    }
}

/// The reply key entry `c` is filed under.
#[inline]
fn out_key(c: &Conn, wide: &[Addrs]) -> OutKey {
    key_out(c, &addrs(c, wide))
}

/// The reply key of entry `c` with addresses `a`.
#[inline]
fn key_out(c: &Conn, a: &Addrs) -> OutKey {
    OutKey { v6: c.flags & cf::V6 != 0, proto: c.proto, daddr: a.daddr, dport: c.dport, caddr: a.caddr, cport: c.cport }
}

/// Whether entry `c` is filed under `key` in the client → virtual index: `in_key(c) == key`,
/// comparing the entry's own fields first and an IPv4 entry's addresses as words, without
/// building its key.
#[inline]
fn filed_in(c: &Conn, wide: &[Addrs], key: &InKey) -> bool {
    if c.cport != key.cport
        || c.vport != key.vport
        || c.proto != key.proto
        || (c.flags & cf::V6 != 0) != key.v6
        || c.is_template() != key.tmpl
    {
        return false;
    }
    if c.wide() {
        wide.get(c.caddr as usize).is_some_and(|a| a.caddr == key.caddr && a.vaddr == key.vaddr)
    } else {
        // An IPv4 key's addresses are `addr::raw` forms, zero past their first four bytes.
        c.caddr == v4(&key.caddr) && c.vaddr == v4(&key.vaddr)
    }
}

/// Whether entry `c` is filed under `key` in the reply index (`out_key(c) == key`).
#[inline]
fn filed_out(c: &Conn, wide: &[Addrs], key: &OutKey) -> bool {
    if c.dport != key.dport || c.cport != key.cport || c.proto != key.proto || (c.flags & cf::V6 != 0) != key.v6 {
        return false;
    }
    if c.wide() {
        wide.get(c.caddr as usize).is_some_and(|a| a.daddr == key.daddr && a.caddr == key.caddr)
    } else {
        c.daddr == v4(&key.daddr) && c.caddr == v4(&key.caddr)
    }
}

fn hash_in(h: &ahash::RandomState, slab: &[Conn], wide: &[Addrs], id: u32) -> u64 {
    slab.get(id as usize).map_or(0, |c| h.hash_one(in_key(c, wide)))
}

fn hash_out(h: &ahash::RandomState, slab: &[Conn], wide: &[Addrs], id: u32) -> u64 {
    slab.get(id as usize).map_or(0, |c| h.hash_one(out_key(c, wide)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ConnTable {
        ConnTable::new(8, ahash::RandomState::with_seeds(1, 2, 3, 4))
    }

    fn addrs(c: u8, v: u8, d: u8, wide: bool) -> Addrs {
        let a = |x: u8| {
            let mut r = [0u8; 16];
            if wide {
                r = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x];
            } else {
                r[..4].copy_from_slice(&[192, 0, 2, x]);
            }
            r
        };
        Addrs { caddr: a(c), vaddr: a(v), daddr: a(d) }
    }

    fn key(c: &Conn, a: &Addrs) -> InKey {
        InKey {
            v6: c.flags & cf::V6 != 0,
            tmpl: false,
            proto: c.proto,
            caddr: a.caddr,
            cport: c.cport,
            vaddr: a.vaddr,
            vport: c.vport,
        }
    }

    /// IPv4 entries keep their addresses in place, entries with an IPv6 side (either family of
    /// a tunnelled server) in the side slab; each is found under its key and gives its addresses
    /// back, and a freed side slot is taken again before the side slab grows.
    #[test]
    fn addresses_in_place_and_aside() {
        let mut t = table();
        let base = Conn { proto: 6, cport: 1000, vport: 80, dport: 80, flags: cf::IN_HASHED, ..Conn::BLANK };
        let v4 = Conn { ..base.clone() };
        let v6 = Conn { cport: 1001, flags: cf::IN_HASHED | cf::V6 | cf::DEST_V6, ..base.clone() };
        let v4to6 = Conn { cport: 1002, flags: cf::IN_HASHED | cf::DEST_V6, ..base.clone() };
        let (a4, a6) = (addrs(1, 2, 3, false), addrs(1, 2, 3, true));
        let a4to6 = Addrs { daddr: a6.daddr, ..a4 };
        let cases = [(v4, a4), (v6, a6), (v4to6, a4to6)];
        let ids: Vec<ConnId> = cases.iter().map(|(c, a)| t.insert(c.clone(), a).unwrap()).collect();
        assert_eq!(t.wide.len(), 2);
        for ((c, a), id) in cases.iter().zip(&ids) {
            let k = key(c, a);
            assert_eq!(t.find_in(&k), Some(*id));
            assert_eq!(t.addrs(t.get(*id).unwrap()), *a);
            let mut vaddr = k.vaddr;
            vaddr[3] ^= 1;
            for other in [
                InKey { tmpl: true, ..k },
                InKey { v6: !k.v6, ..k },
                InKey { proto: 17, ..k },
                InKey { vport: 81, ..k },
                InKey { vaddr, ..k },
            ] {
                assert_eq!(t.find_in(&other), None, "{other:?}");
            }
        }
        let (c, a) = t.remove_armed(ids[1]).unwrap();
        assert_eq!(a, a6);
        assert_eq!(t.find_in(&key(&c, &a)), None);
        let again = t.insert(c.clone(), &a).unwrap();
        assert_eq!((again, t.wide.len()), (ids[1], 2), "slab and side slots are reused");
        assert_eq!(t.find_in(&key(&c, &a)), Some(again));
    }

    /// Freed slots are chained through the free list and taken last-freed first; a reused slot
    /// starts with no sync end time.
    #[test]
    fn free_slots_are_reused() {
        let mut t = table();
        let c = |p: u16| Conn { proto: 17, cport: p, flags: cf::IN_HASHED, ..Conn::BLANK };
        let a = addrs(1, 2, 3, false);
        let ids: Vec<ConnId> = (0..4).map(|p| t.insert(c(p), &a).unwrap()).collect();
        t.set_sync_end(ids[1], 77);
        assert_eq!(t.sync_end(ids[1]), 77);
        t.remove_armed(ids[1]).unwrap();
        t.remove_armed(ids[2]).unwrap();
        assert!(t.remove_armed(ids[2]).is_none(), "a free slot is not freed twice");
        assert_eq!(t.len(), 2);
        assert_eq!(t.insert(c(10), &a), Some(ids[2]));
        assert_eq!(t.insert(c(11), &a), Some(ids[1]));
        assert_eq!(t.sync_end(ids[1]), 0);
        assert_eq!(t.insert(c(12), &a), Some(ConnId(4)));
        assert_eq!((t.len(), t.slots()), (5, 5));
    }

    /// A reserved table sizes its client → virtual index at once and its reply index with
    /// the first entry that needs it (a NAT connection); neither grows while the reserved
    /// count of entries goes in.
    #[test]
    fn reserve_sizes_both_indexes() {
        let mut t = ConnTable::new(1 << 20, ahash::RandomState::with_seeds(1, 2, 3, 4));
        t.reserve(3000);
        let (in0, out0) = (t.in_idx.allocation_size(), t.out_idx.allocation_size());
        assert_eq!(out0, 0, "no reply index before a NAT entry");
        let a = addrs(1, 2, 3, false);
        let nat = |p: u16| Conn { proto: 6, cport: p, flags: cf::IN_HASHED | cf::OUT_HASHED, ..Conn::BLANK };
        for p in 0..3000 {
            let mut a = a;
            a.caddr[2] = (p >> 8) as u8;
            assert!(t.insert(nat(p), &a).is_some());
        }
        assert_eq!(t.in_idx.allocation_size(), in0);
        assert_eq!(t.out_idx.allocation_size(), in0, "sized like the other from the reserve");
    }
}
