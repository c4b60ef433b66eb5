//! The master's send side (`ip_vs_sync_buff` and the master thread): one message being filled
//! per sync socket, full messages queued up to `sync_qlen_max`, a partly filled message sent
//! once it is [`FLUSH_NS`] old.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::wire::{MessageBuilder, Record, Version};
use super::{Role, FLUSH_NS};

/// A datagram to send: to the group at `port + socket`, by the sockets of the daemon `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The daemon that sends it: the master (records, resync start and end) or the backup (its
    /// resync request).
    pub from: Role,
    /// Which sync socket (0..`sync_ports`): it goes to the daemon's port plus this.
    pub socket: u8,
    /// The UDP payload.
    pub bytes: Vec<u8>,
}

/// Counters of a master.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MasterStats {
    /// Records put into messages.
    pub records: u64,
    /// Messages handed out to send.
    pub messages: u64,
    /// Full messages dropped because `sync_qlen_max` were already queued.
    pub queue_full: u64,
    /// Records a version-0 message cannot carry (IPv6).
    pub not_v0: u64,
}

struct Socket {
    cur: Option<(MessageBuilder, u64)>,
    queue: VecDeque<Vec<u8>>,
}

/// The send queues of a master daemon.
pub struct Master {
    syncid: u8,
    maxlen: usize,
    qlen_max: usize,
    sockets: Vec<Socket>,
    next: usize,
    stats: MasterStats,
}

impl Master {
    /// A master sending as `syncid`, messages of at most `maxlen` bytes, over `sockets`
    /// sockets, queueing at most `qlen_max` full messages per socket.
    pub fn new(syncid: u8, maxlen: u16, sockets: u8, qlen_max: usize) -> Self {
        let sockets = (0..sockets.max(1)).map(|_| Socket { cur: None, queue: VecDeque::new() }).collect();
        Master { syncid, maxlen: usize::from(maxlen), qlen_max, sockets, next: 0, stats: MasterStats::default() }
    }

    /// Number of sync sockets.
    pub fn sockets(&self) -> u8 {
        self.sockets.len() as u8
    }

    /// Counters.
    pub fn stats(&self) -> &MasterStats {
        &self.stats
    }

    /// Adds a record for socket `socket` in format `version` at `now` (ns): the current message
    /// takes it if it fits and is of that version, otherwise the current message is queued and
    /// a new one started (`ip_vs_sync_conn`, `sb_queue_tail`).
    pub fn add(&mut self, now: u64, socket: usize, version: Version, rec: &Record<'_>) {
        let n = self.sockets.len();
        let Some(s) = self.sockets.get_mut(socket % n) else { return };
        let stale = s.cur.as_ref().is_some_and(|(b, _)| b.version() != version || !b.fits(rec));
        if stale {
            if let Some((b, _)) = s.cur.take() {
                if s.queue.len() < self.qlen_max {
                    s.queue.push_back(b.finish());
                } else {
                    self.stats.queue_full += 1;
                }
            }
        }
        let (b, _) = s.cur.get_or_insert_with(|| (MessageBuilder::new(version, self.syncid, self.maxlen), now));
        if b.push(rec) {
            self.stats.records += 1;
        } else {
            self.stats.not_v0 += 1;
            if b.is_empty() {
                s.cur = None;
            }
        }
    }

    /// The next datagram to send at `now`: queued full messages first, then a partly filled
    /// message once it has waited [`FLUSH_NS`].
    pub fn poll(&mut self, now: u64) -> Option<Datagram> {
        let n = self.sockets.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if let Some(bytes) = self.sockets[i].queue.pop_front() {
                self.next = (i + 1) % n;
                return Some(self.sent(i, bytes));
            }
        }
        for i in 0..n {
            let due = self.sockets[i].cur.as_ref().is_some_and(|(_, first)| now.saturating_sub(*first) >= FLUSH_NS);
            if due {
                let (b, _) = self.sockets[i].cur.take()?;
                return Some(self.sent(i, b.finish()));
            }
        }
        None
    }

    fn sent(&mut self, i: usize, bytes: Vec<u8>) -> Datagram {
        self.stats.messages += 1;
        Datagram { from: Role::Master, socket: i as u8, bytes }
    }

    /// Queues every partly filled message now (the end of a resync stream).
    pub fn flush(&mut self) {
        for s in &mut self.sockets {
            if let Some((b, _)) = s.cur.take() {
                s.queue.push_back(b.finish());
            }
        }
    }

    /// Whether a full message waits to be sent.
    pub fn has_queued(&self) -> bool {
        self.sockets.iter().any(|s| !s.queue.is_empty())
    }

    /// When a partly filled message falls due (ns).
    pub fn next_deadline(&self) -> Option<u64> {
        self.sockets.iter().filter_map(|s| s.cur.as_ref().map(|(_, f)| f + FLUSH_NS)).min()
    }
}
