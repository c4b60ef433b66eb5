//! The SIP persistence engine (`ip_vs_pe_sip.c`, `ipvsadm --pe sip`): a persistent service's
//! templates keyed by the Call-ID of the first datagram of each UDP flow, as well as by the
//! masked client address, protocol, virtual address and port.
//!
//! The kernel's engine, read function by function:
//! - `ip_vs_sip_fill_param`: only UDP; the Call-ID as [`crate::wire::sip::call_id`] finds it. A packet
//!   without one (or a TCP segment) makes `ip_vs_sched_persist` fail with `*ignored = -1`, and
//!   `ip_vs_in` drops it — there is no fallback to the plain template, despite the comment in
//!   `ip_vs_sip_fill_param` saying so ([`Reason::NoCallId`](crate::Reason::NoCallId)).
//! - `ip_vs_sip_ct_match`: a template matches on family, masked client address, virtual
//!   address (the mark for a fwmark service), virtual port, protocol, the template flag and the
//!   Call-ID, byte for byte. So one client's calls spread over the servers, call by call, where
//!   plain persistence would send them all to one; and two clients sharing a Call-ID still have
//!   a template each.
//! - `ip_vs_sip_hashkey_raw`: the template is hashed by its Call-ID alone; here it lives in its
//!   own index (the director's SIP table), never in the connection table's client → virtual index, so a
//!   plain template lookup never finds it. The connections themselves are ordinary entries:
//!   the Call-ID is read only when a flow is scheduled, never on an established flow's packets.
//! - `ip_vs_sip_show_pe_data`: `-Lcn --persistent-conn` and `/proc/net/ip_vs_conn` show the
//!   engine's name and the Call-ID after a template's other columns.
//!
//! Left out: `ip_vs_sip_conn_out` (5.x), which makes a connection for a SIP request a real
//! server sends out through a NAT director. The library's reply path only translates replies
//! of connections it has; see the README's parity section.

use hashbrown::{HashMap, HashTable};

use crate::conn::table::InKey;
use crate::conn::{ConnId, ConnTable};

pub use crate::service::PersistEngine;
pub use crate::wire::sip::CALL_ID_MAX;

/// A Call-ID as a template keeps it: at most [`CALL_ID_MAX`] bytes, held inline so a template
/// costs no allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId {
    len: u8,
    bytes: [u8; CALL_ID_MAX],
}

impl CallId {
    /// `b` as a Call-ID; `None` when it is empty or longer than [`CALL_ID_MAX`].
    pub fn new(b: &[u8]) -> Option<CallId> {
        let len = u8::try_from(b.len()).ok().filter(|l| *l > 0)?;
        let mut bytes = [0; CALL_ID_MAX];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(CallId { len, bytes })
    }

    /// The Call-ID's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl core::fmt::Debug for CallId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CallId({:?})", alloc::string::String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The director's SIP templates: each one's Call-ID by template handle, and an index by
/// Call-ID hash (`ip_vs_sip_hashkey_raw`) that `find` walks with the template's other fields
/// read from the table (`ip_vs_sip_ct_match`), so an invalidated template — its ports set to
/// 65535 in place — stops matching without being re-filed. It holds one entry per SIP
/// template in the table, so the table's size bounds it.
pub(crate) struct SipTemplates {
    ids: HashMap<u32, CallId, ahash::RandomState>,
    index: HashTable<u32>,
    hasher: ahash::RandomState,
}

impl SipTemplates {
    /// An empty set, hashing with `hasher` (seeded by the director's configuration).
    pub(crate) fn new(hasher: impl Fn() -> ahash::RandomState) -> Self {
        SipTemplates { ids: HashMap::with_hasher(hasher()), index: HashTable::new(), hasher: hasher() }
    }

    /// `ip_vs_ct_in_get` for a SIP parameter: the template filed under `key` (with the
    /// template flag, client port 0) and `call_id`.
    pub(crate) fn find(&self, conns: &ConnTable, key: &InKey, call_id: &[u8]) -> Option<ConnId> {
        let hv = self.hasher.hash_one(call_id);
        self.index
            .iter_hash(hv)
            .copied()
            .find(|id| self.ids.get(id).is_some_and(|c| c.as_bytes() == call_id) && conns.has_in_key(ConnId(*id), key))
            .map(ConnId)
    }

    /// Files template `id` under `call_id`.
    pub(crate) fn insert(&mut self, id: ConnId, call_id: CallId) {
        self.remove(id);
        let hv = self.hasher.hash_one(call_id.as_bytes());
        let (ids, h) = (&self.ids, &self.hasher);
        self.index.insert_unique(hv, id.0, |i| ids.get(i).map_or(0, |c| h.hash_one(c.as_bytes())));
        self.ids.insert(id.0, call_id);
    }

    /// Forgets template `id` (it is being freed).
    pub(crate) fn remove(&mut self, id: ConnId) {
        let Some(c) = self.ids.remove(&id.0) else { return };
        let hv = self.hasher.hash_one(c.as_bytes());
        if let Ok(e) = self.index.find_entry(hv, |i| *i == id.0) {
            e.remove();
        }
    }

    /// The Call-ID of template `id`.
    pub(crate) fn get(&self, id: ConnId) -> Option<&CallId> {
        self.ids.get(&id.0)
    }

    /// SIP templates held.
    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}
