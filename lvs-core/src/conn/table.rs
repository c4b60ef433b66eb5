//! The slab and its two hash indexes.

use alloc::vec::Vec;
use core::hash::{Hash, Hasher};

use hashbrown::HashTable;

use super::timer::Wheel;
use super::{cf, Conn, ConnId, NIL};

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

impl Conn {
    pub(crate) fn in_key(&self) -> InKey {
        InKey {
            v6: self.flags & cf::V6 != 0,
            tmpl: self.is_template(),
            proto: self.proto,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }

    pub(crate) fn out_key(&self) -> OutKey {
        OutKey {
            v6: self.flags & cf::V6 != 0,
            proto: self.proto,
            daddr: self.daddr,
            dport: self.dport,
            caddr: self.caddr,
            cport: self.cport,
        }
    }
}

/// Size figures of the table, for capacity planning and the README's bytes per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Live entries (connections and templates).
    pub entries: usize,
    /// Bytes held by the slab, both indexes and the wheel.
    pub bytes: usize,
}

/// Connections and templates: a bounded slab with hash indexes and a timer wheel.
pub(crate) struct ConnTable {
    slab: Vec<Conn>,
    /// The first free slab slot, or [`NIL`]; free slots are chained through their `tnext` (a
    /// free slot is in no wheel list), so the free list costs no memory of its own.
    free: u32,
    live: usize,
    max: usize,
    in_idx: HashTable<u32>,
    out_idx: HashTable<u32>,
    hasher: ahash::RandomState,
    /// Bumped whenever an index gains or loses an entry: a lookup made at one epoch still
    /// answers at the same epoch (a burst probes every frame's tuple before processing any).
    epoch: u32,
    pub(crate) wheel: Wheel,
}

impl ConnTable {
    /// A table that holds at most `max` entries, hashing with `hasher` (seeded by the caller).
    pub(crate) fn new(max: usize, hasher: ahash::RandomState) -> Self {
        ConnTable {
            slab: Vec::new(),
            free: NIL,
            live: 0,
            max: max.min(u32::MAX as usize - 1),
            in_idx: HashTable::new(),
            out_idx: HashTable::new(),
            hasher,
            epoch: 0,
            wheel: Wheel::new(),
        }
    }

    /// Reserves room for `n` entries up front, so the table does not allocate after warm-up.
    pub(crate) fn reserve(&mut self, n: usize) {
        let n = n.min(self.max);
        self.slab.reserve(n.saturating_sub(self.slab.len()));
        let (h, slab) = (&self.hasher, &self.slab);
        self.in_idx.reserve(n, |id| hash_in(h, slab, *id));
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

    /// Stores `c`, links it in the indexes its flags ask for and in the wheel.
    /// `None` when the table is full.
    pub(crate) fn insert(&mut self, mut c: Conn) -> Option<ConnId> {
        if self.live >= self.max {
            return None;
        }
        c.tprev = NIL;
        c.tnext = NIL;
        let id = match self.slab.get_mut(self.free as usize) {
            Some(slot) => {
                let id = self.free;
                self.free = slot.tnext;
                *slot = c;
                id
            }
            None => {
                self.slab.push(c);
                u32::try_from(self.slab.len() - 1).ok()?
            }
        };
        self.live += 1;
        self.hash(ConnId(id));
        self.wheel.link(&mut self.slab, id);
        Some(ConnId(id))
    }

    /// Links an entry in the indexes its flags name.
    fn hash(&mut self, id: ConnId) {
        let Some(c) = self.slab.get(id.0 as usize) else { return };
        self.epoch = self.epoch.wrapping_add(1);
        let (flags, h) = (c.flags, &self.hasher);
        if flags & cf::IN_HASHED != 0 {
            let hv = h.hash_one(c.in_key());
            let slab = &self.slab;
            self.in_idx.insert_unique(hv, id.0, |i| hash_in(h, slab, *i));
        }
        if flags & cf::OUT_HASHED != 0 {
            let hv = h.hash_one(c.out_key());
            let slab = &self.slab;
            self.out_idx.insert_unique(hv, id.0, |i| hash_out(h, slab, *i));
        }
    }

    /// Takes an entry out of the client → virtual index (invalidated templates stop matching).
    pub(crate) fn unhash_in(&mut self, id: ConnId) {
        let Some(c) = self.slab.get(id.0 as usize) else { return };
        if c.flags & cf::IN_HASHED == 0 {
            return;
        }
        let hv = self.hasher.hash_one(c.in_key());
        self.epoch = self.epoch.wrapping_add(1);
        if let Ok(e) = self.in_idx.find_entry(hv, |i| *i == id.0) {
            e.remove();
        }
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            c.flags &= !cf::IN_HASHED;
        }
    }

    /// Re-files a hashed entry under the key `rekey` gives it (an invalidated template).
    pub(crate) fn rekey_in(&mut self, id: ConnId, rekey: impl FnOnce(&mut Conn)) {
        if self.slab.get(id.0 as usize).is_none_or(|c| c.flags & cf::IN_HASHED == 0) {
            return;
        }
        self.unhash_in(id);
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            rekey(c);
            c.flags |= cf::IN_HASHED;
        }
        self.hash(id);
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
        let hv = self.hasher.hash_one(c.out_key());
        self.epoch = self.epoch.wrapping_add(1);
        if let Ok(e) = self.out_idx.find_entry(hv, |i| *i == id.0) {
            e.remove();
        }
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            c.flags &= !cf::OUT_HASHED;
        }
    }

    /// Removes an entry that is still in the wheel (expire-now, flush).
    pub(crate) fn remove_armed(&mut self, id: ConnId) -> Option<Conn> {
        self.wheel.unlink(&mut self.slab, id.0);
        self.remove_unarmed(id)
    }

    /// Removes an entry that `pop_due` already took out of the wheel. The entry is returned as
    /// it was, its index flags included, so the caller can undo what they stood for.
    pub(crate) fn remove_unarmed(&mut self, id: ConnId) -> Option<Conn> {
        let c = self.slab.get(id.0 as usize).filter(|c| c.flags & cf::FREE == 0)?.clone();
        self.unhash_in(id);
        self.unhash_out(id);
        let slot = self.slab.get_mut(id.0 as usize)?;
        slot.flags |= cf::FREE;
        slot.tnext = self.free;
        self.free = id.0;
        self.live -= 1;
        Some(c)
    }

    /// Links an entry that `pop_due` handed out back into the wheel at its `expires`.
    pub(crate) fn relink(&mut self, id: ConnId) {
        self.wheel.link(&mut self.slab, id.0);
    }

    /// Sets an entry's expiry to `expires`, re-filing it if that is earlier than its slot.
    #[inline]
    pub(crate) fn arm(&mut self, id: ConnId, expires: u64) {
        if let Some(c) = self.slab.get_mut(id.0 as usize) {
            c.expires = expires;
            self.wheel.rearm(&mut self.slab, id.0);
        }
    }

    /// Looks up the client → virtual index.
    #[inline]
    pub(crate) fn find_in(&self, key: &InKey) -> Option<ConnId> {
        let hv = self.hasher.hash_one(key);
        let slab = &self.slab;
        self.in_idx.find(hv, |i| slab.get(*i as usize).is_some_and(|c| c.in_key() == *key)).map(|i| ConnId(*i))
    }

    /// Whether entry `id` is the one the client → virtual index files under `key` (what
    /// [`find_in`](Self::find_in) would answer), read from the entry alone.
    #[inline]
    pub(crate) fn holds_in(&self, id: ConnId, key: &InKey) -> bool {
        self.slab
            .get(id.0 as usize)
            .is_some_and(|c| c.flags & (cf::FREE | cf::IN_HASHED) == cf::IN_HASHED && c.in_key() == *key)
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
        let hv = self.hasher.hash_one(key);
        let slab = &self.slab;
        self.out_idx.find(hv, |i| slab.get(*i as usize).is_some_and(|c| c.out_key() == *key)).map(|i| ConnId(*i))
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
}

fn hash_in(h: &ahash::RandomState, slab: &[Conn], id: u32) -> u64 {
    slab.get(id as usize).map_or(0, |c| h.hash_one(c.in_key()))
}

fn hash_out(h: &ahash::RandomState, slab: &[Conn], id: u32) -> u64 {
    slab.get(id as usize).map_or(0, |c| h.hash_one(c.out_key()))
}
