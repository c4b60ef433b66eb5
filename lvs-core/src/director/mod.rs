//! The director: the whole IPVS state of one shard — services, real servers, the connection
//! table, neighbours and statistics — and the rooms that act on it, one file per concern:
//!
//! - this file — [`Director`], [`DirectorConfig`] and its [`PortConfig`]s, [`Verdict`], what
//!   can be read back, neighbours and time (`tick`, `next_deadline`);
//! - `ctl` — the control API, [`Command`] and atomic batches (`ip_vs_ctl.c`);
//! - `input` — the request path: service lookup, scheduling, the reuse rule, transmission
//!   (`ip_vs_in`, `ip_vs_schedule` in `ip_vs_core.c`);
//! - `output` — the NAT reply path (`ip_vs_out`, `handle_response`);
//! - `fnat` — FullNAT: local addresses and ports, the side table of FullNAT connections with
//!   its reply index, TOA and PROXY header insertion (Alibaba LVS, DPVS);
//! - `synproxy` — the SYN proxy: cookie SYN-ACKs, connections opened on a good cookie, the two
//!   handshakes spliced (Alibaba LVS, DPVS);
//! - `conn` — connection creation, binding to servers, expiry (`ip_vs_conn.c`);
//! - `icmp` — ICMP errors in both directions, and the refusals and resets the director sends;
//! - `frag` — later fragments following their first, and tunnelled packets fragmented to the
//!   path MTU;
//! - `defense` — the flood defences of `/proc/sys/net/ipv4/vs` (`update_defense_level`,
//!   `ip_vs_random_dropentry`, `ip_vs_todrop`);
//! - `invariants` — what must hold after any step, for the randomized tests (feature
//!   `testkit`);
//! - `sync` — connection sync daemons: the master's records, the backup's application of them,
//!   the full resync (`ip_vs_sync.c`).
//!
//! Persistence templates are made and checked in [`crate::persist`]; the state step that moves
//! the server counters is [`crate::proto`]'s `set_state` (`set_tcp_state`).

mod conn;
mod ctl;
mod defense;
mod fnat;
mod frag;
mod icmp;
mod input;
#[cfg(any(test, feature = "testkit"))]
mod invariants;
mod midflow;
mod output;
#[cfg(test)]
mod segs;
mod sync;
mod synproxy;

pub use ctl::{BatchError, Command};
pub use defense::{Defense, DefenseMode, DefenseStatus};
pub use fnat::FnatStats;
pub use sync::{ResyncMessage, SyncOutcome, SyncRefused, SyncStats};
pub use synproxy::SynproxyStats;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::HashMap;

use crate::addr::{Af, ServiceKey};
use crate::conn::{ConnId, ConnInfo, ConnTable, TableStats};
use crate::dest::{DestId, DestView, Dests, FwdMethod, RealServer};
use crate::error::Reason;
use crate::laddr::PortShare;
use crate::neigh::{MacAddr, Neighbour, NeighbourTable};
use crate::proto::Timeouts;
use crate::sched::{SchedFactory, Scheduler, SeededRng};
use crate::service::{ServiceConfig, ServiceView};
use crate::stats::{Stats, EST_INTERVAL_NS};
use crate::time::Instant;
use crate::wire::{Frame, PacketMeta};
use crate::xmit::fragment::FragOut;
use frag::FragTable;

/// Maps a parsed packet to a firewall mark (0 = none): the application's stand-in for
/// iptables/nft marking, consulted for frames that arrive without a mark.
pub type Classifier = Box<dyn Fn(&PacketMeta) -> u32 + Send>;

/// One of the application's ports (interfaces) as the director sees it: the source MAC of every
/// frame sent out of it, and the addresses the director owns on its link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortConfig {
    /// The port's MAC: the source of every frame the director sends out of this port.
    pub mac: MacAddr,
    /// The director's IPv4 address on this link (outer source of IPv4 tunnels leaving here).
    pub addr4: Option<Ipv4Addr>,
    /// The director's IPv6 address on this link (outer source of IPv6 tunnels leaving here).
    pub addr6: Option<Ipv6Addr>,
}

impl PortConfig {
    /// A port with this MAC and no addresses.
    pub fn new(mac: MacAddr) -> Self {
        PortConfig { mac, addr4: None, addr6: None }
    }

    /// The same port owning `addr` (IPv4 or IPv6) on its link.
    pub fn with_addr(mut self, addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => self.addr4 = Some(a),
            IpAddr::V6(a) => self.addr6 = Some(a),
        }
        self
    }

    fn addr(&self, af: Af) -> Option<IpAddr> {
        match af {
            Af::V4 => self.addr4.map(IpAddr::V4),
            Af::V6 => self.addr6.map(IpAddr::V6),
        }
    }
}

/// The default [`DirectorConfig::max_conns`].
const DEFAULT_MAX_CONNS: usize = 1 << 20;

/// How a director is set up. Hash and random seeds come from here, never from a constant.
#[derive(Clone, Debug)]
pub struct DirectorConfig {
    /// The application's ports: `ports[i]` is the port that [`Verdict::Transmit`]`{ port: i }`
    /// and [`Neighbour::port`] `i` name. A frame bound for a port missing here is dropped
    /// ([`Reason::UnknownPort`]). Empty by default: a director needs at least one.
    pub ports: Vec<PortConfig>,
    /// Most connections and templates the table holds; beyond it a new flow is dropped (or,
    /// while `drop_entry` acts, replaces a half-open entry). A smaller table wants a smaller
    /// [`Defense::amemthresh`]. At most 16,769,023 (2^24 − 8,193: what the index's 32-bit
    /// words address beside their 8-bit tags, less the values the entries' 24-bit timer links
    /// keep for the wheel's slots): [`Director::new`] caps a larger value to it.
    pub max_conns: usize,
    /// Seeds of the connection-table hashes. The defaults are fixed constants, fine for tests
    /// but predictable: a director facing untrusted traffic takes random ones
    /// ([`DirectorConfig::with_random_seeds`] with `std`, or the platform's RNG without it), so
    /// an attacker cannot aim table collisions.
    pub hash_seeds: [u64; 4],
    /// Seed of the schedulers' random generator.
    pub rng_seed: u64,
    /// Path MTU toward tunnelled real servers.
    pub tun_mtu: u16,
    /// Largest IP datagram toward FullNAT real servers: a TOA or PROXY header that would
    /// make a packet longer is left out (and counted in [`FnatStats`]).
    pub fnat_mtu: u16,
    /// `sloppy_tcp`: any non-RST TCP packet may create a connection.
    pub sloppy_tcp: bool,
    /// `sloppy_sctp`: any SCTP packet but an ABORT may create a connection, not only an INIT.
    pub sloppy_sctp: bool,
    /// `expire_nodest_conn`: expire a connection at its next packet once its server is
    /// deleted, and schedule that packet afresh.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template`: a template whose server has weight 0 stops matching.
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` (bit 1: reschedule a SYN on TIME_WAIT/CLOSE; bit 2: also FIN_WAIT of
    /// DR/TUN connections).
    pub conn_reuse_mode: u8,
    /// Answer refused packets with ICMP errors (port unreachable, fragmentation needed, time
    /// exceeded) as the kernel does.
    pub icmp_errors: bool,
    /// Answer a TCP segment to a virtual service that has no connection and cannot start one
    /// with a reset, as the kernel director's own TCP stack does (IPVS hands it such packets).
    pub tcp_resets: bool,
    /// Beyond the kernel: note real servers that look dead from the data path — one that answers
    /// a SYN with a reset (seen where replies pass the director: NAT), and a client that
    /// retransmits its SYN (any method) — for a health checker ([`Director::poll_suspect`]).
    pub passive_checks: bool,
    /// The secret of the SYN proxy's cookies (SipHash key). The default is a fixed constant,
    /// fine for tests but predictable: a director facing untrusted traffic takes a random one
    /// and rotates it ([`Director::set_synproxy_secret`]).
    pub synproxy_secret: [u8; 16],
    /// The MSS the SYN proxy offers clients (DPVS `synproxy_init_mss`); a FullNAT service
    /// offers less by what it adds to segments (TOA or PROXY header).
    pub synproxy_mss: u16,
    /// The window scale the SYN proxy offers clients that offer one (DPVS `synproxy_wscale`);
    /// the real server's own scale is translated to it on every segment.
    pub synproxy_wscale: u8,
    /// DPVS `synproxy_defer`: open the connection to the real server only when the client
    /// sends its first data, not on its bare ACK.
    pub synproxy_defer: bool,
    /// The flood defences (`amemthresh`, `drop_entry`, `drop_packet`, `secure_tcp`), all
    /// automatic by default where the kernel's are off.
    pub defense: Defense,
    /// Which FullNAT local ports this director takes: all of them alone, share `i` of `n` as
    /// shard `i` of `n` sharing the local addresses, so that a reply's port names its shard.
    pub fnat_port_share: PortShare,
    /// A hook that asks the processor to start loading cache lines: a burst
    /// ([`Director::process_burst`]) hands it the index lines of all its frames, then the
    /// entries those lines name, before reading any, so their cache misses overlap. `None` (the
    /// default) reads them without a prefetch. The core has no `unsafe`, so the instruction
    /// comes from the application (`lvs_dataplane::prefetch::hook` on x86_64 and aarch64).
    pub prefetch: Option<Prefetch>,
}

/// A prefetch hook ([`DirectorConfig::prefetch`]): called with the addresses of cache lines
/// the director is about to read, once per pass of a burst. It must only hint (never read
/// through the pointers nor keep them); the lines stay valid for the call.
pub type Prefetch = fn(lines: &[*const u8]);

impl Default for DirectorConfig {
    fn default() -> Self {
        DirectorConfig {
            ports: Vec::new(),
            max_conns: DEFAULT_MAX_CONNS,
            hash_seeds: [0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344, 0xA409_3822_299F_31D0, 0x082E_FA98_EC4E_6C89],
            rng_seed: 0x4528_21E6_38D0_1377,
            tun_mtu: 1500,
            fnat_mtu: 1500,
            sloppy_tcp: false,
            sloppy_sctp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            icmp_errors: true,
            tcp_resets: true,
            passive_checks: false,
            synproxy_secret: *b"lvs-syncookie-k0",
            synproxy_mss: 1452,
            synproxy_wscale: 7,
            synproxy_defer: false,
            defense: Defense::default(),
            fnat_port_share: PortShare::WHOLE,
            prefetch: None,
        }
    }
}

impl DirectorConfig {
    /// The same configuration with one more port (the next port number).
    pub fn port(mut self, port: PortConfig) -> Self {
        self.ports.push(port);
        self
    }
}

#[cfg(feature = "std")]
impl DirectorConfig {
    /// The same configuration with hash and scheduler seeds drawn from the operating system
    /// (through `std`'s randomly keyed hasher).
    pub fn with_random_seeds(mut self) -> Self {
        use core::hash::{BuildHasher, Hasher};
        let draw = |i: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.finish()
        };
        self.hash_seeds = [draw(0), draw(1), draw(2), draw(3)];
        self.rng_seed = draw(4);
        let (k0, k1) = (draw(5), draw(6));
        self.synproxy_secret[..8].copy_from_slice(&k0.to_le_bytes());
        self.synproxy_secret[8..].copy_from_slice(&k1.to_le_bytes());
        self
    }
}

/// What to do with a frame after [`Director::process`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place: send it out on `port`. `dest` is the real server it
    /// goes to (`None` for replies to clients and ICMP errors the director generated).
    Transmit {
        /// The application's port (interface) to send on.
        port: u16,
        /// The real server, if the frame goes to one.
        dest: Option<DestId>,
    },
    /// The frame was too long for the path MTU of a tunnel and was fragmented, as the kernel's
    /// stack fragments what `ip_vs_tunnel_xmit` sends: the frame holds the first fragment, and
    /// the next `more` frames of [`Director::fragments`] hold the rest. Send all of them on
    /// `port`, the frame first, before the next call to [`Director::process`] or
    /// [`Director::process_burst`] reuses those buffers.
    Fragmented {
        /// The application's port (interface) to send on.
        port: u16,
        /// The real server the fragments go to.
        dest: Option<DestId>,
        /// How many fragments follow the frame in [`Director::fragments`].
        more: u16,
    },
    /// The frame was dropped; the reason was counted.
    Drop(Reason),
    /// Deliver the frame to the application's own stack (a `Local` real server).
    Local,
    /// Not for a virtual service: untouched, for the application to handle (ARP, its own
    /// traffic).
    NotMine,
}

/// What the data path saw of a real server (with [`DirectorConfig::passive_checks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Symptom {
    /// The server answered a SYN with a reset.
    SynReset,
    /// A client sent its SYN again: nothing came back from the server.
    SynRetransmitted,
}

/// A real server the data path suspects, for a health checker to check at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suspicion {
    /// The server's service.
    pub service: ServiceKey,
    /// The server.
    pub server: crate::addr::Endpoint,
    /// What was seen.
    pub symptom: Symptom,
}

/// Suspicions a director keeps until they are polled; more are dropped.
const SUSPECTS_MAX: usize = 256;

/// One service, as listings see it.
pub struct ServiceInfo<'a> {
    /// Its configuration.
    pub config: &'a ServiceConfig,
    /// Its counters.
    pub stats: &'a Stats,
    /// Its real servers in list order.
    pub dests: ServiceView<'a>,
}

/// A service's live state (`struct ip_vs_service`): its configuration, its servers in the
/// kernel's list order, the scheduler that owns its `sched_data`, and its counters.
pub(crate) struct Service {
    pub(crate) cfg: ServiceConfig,
    /// Real servers in the kernel's list order: index 0 is the list head (the newest).
    pub(crate) order: Vec<DestId>,
    pub(crate) sched: Box<dyn Scheduler>,
    pub(crate) stats: Stats,
}

impl Service {
    fn view<'a>(&'a self, dests: &'a Dests) -> ServiceView<'a> {
        ServiceView::new(&self.order, dests, self.cfg.sched_flags)
    }

    fn info<'a>(&'a self, dests: &'a Dests) -> ServiceInfo<'a> {
        ServiceInfo { config: &self.cfg, stats: &self.stats, dests: self.view(dests) }
    }
}

/// The director: the whole IPVS state of one shard. [`Director::process`] shows a minimal one
/// at work.
pub struct Director {
    cfg: DirectorConfig,
    factory: SchedFactory,
    classifier: Option<Classifier>,
    svcs: Vec<Option<Service>>,
    svc_index: HashMap<ServiceKey, u32, ahash::RandomState>,
    dests: Dests,
    conns: ConnTable,
    nat_conns: usize,
    fnat: fnat::FnatState,
    synproxy: synproxy::SynproxyState,
    /// The SIP persistence engine's templates, by Call-ID.
    sip: crate::persist::sip::SipTemplates,
    timeouts: Timeouts,
    stats: Stats,
    drops: [u64; Reason::COUNT],
    neigh: NeighbourTable,
    rng: SeededRng,
    due: Vec<ConnId>,
    next_est: Option<u64>,
    frags: FragTable,
    /// Keyed hash of a tunnelled packet's flow: GUE's UDP source port (`skb_get_hash`).
    flow_hasher: ahash::RandomState,
    /// Fragments of tunnelled packets beyond the first, for the latest `process` call.
    frag_out: FragOut,
    /// The identification of the latest IPv6 outer packet that was fragmented.
    frag_id6: u32,
    ip_id: u16,
    sync: sync::SyncState,
    suspects: alloc::collections::VecDeque<Suspicion>,
    /// The latest time the director was told (`process`, `tick`): control calls, which take no
    /// time, start the dest trash timer from it.
    clock: u64,
    /// When the dest trash timer runs next, while the trash holds servers.
    trash_next: Option<u64>,
    /// The flood defences' live state.
    defense: defense::DefenseState,
    /// Half-open TCP connections in the table (what `drop_entry` may reclaim).
    half_open: usize,
}

impl Director {
    /// A director with no services; `factory` makes schedulers by name (`lvs_sched::by_name`).
    pub fn new(mut cfg: DirectorConfig, factory: SchedFactory) -> Self {
        cfg.max_conns = cfg.max_conns.min(crate::conn::MAX_ENTRIES);
        let [a, b, c, d] = cfg.hash_seeds;
        let hasher = || ahash::RandomState::with_seeds(a, b, c, d);
        Director {
            conns: ConnTable::new(cfg.max_conns, hasher()),
            svc_index: HashMap::with_hasher(hasher()),
            neigh: NeighbourTable::new(hasher()),
            frags: FragTable::new(hasher()),
            frag_out: FragOut::default(),
            frag_id6: 0,
            flow_hasher: ahash::RandomState::with_seeds(b, c, d, a),
            fnat: fnat::FnatState::new(hasher, cfg.fnat_port_share),
            sip: crate::persist::sip::SipTemplates::new(hasher),
            synproxy: synproxy::SynproxyState::new(cfg.synproxy_secret, hasher()),
            rng: SeededRng::new(cfg.rng_seed),
            defense: defense::DefenseState::new(cfg.defense),
            half_open: 0,
            cfg,
            factory,
            classifier: None,
            svcs: Vec::new(),
            dests: Dests::new(),
            nat_conns: 0,
            timeouts: Timeouts::default(),
            stats: Stats::default(),
            drops: [0; Reason::COUNT],
            due: Vec::new(),
            next_est: None,
            ip_id: 0,
            sync: sync::SyncState::default(),
            suspects: alloc::collections::VecDeque::new(),
            clock: 0,
            trash_next: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DirectorConfig {
        &self.cfg
    }

    /// Installs the classifier that marks frames for fwmark services.
    pub fn set_classifier(&mut self, c: Classifier) {
        self.classifier = Some(c);
    }

    /// Installs (or, with `None`, removes) the prefetch hook of [`DirectorConfig::prefetch`]:
    /// for a director built before its packet loop (`lvs_dataplane`'s `Runtime` installs one).
    pub fn set_prefetch(&mut self, hook: Option<Prefetch>) {
        self.cfg.prefetch = hook;
    }

    /// Reserves table room for `n` connections now, so the data path does not allocate later.
    pub fn reserve(&mut self, n: usize) {
        self.conns.reserve(n);
    }

    /// The next real server the data path suspects (with [`DirectorConfig::passive_checks`]).
    pub fn poll_suspect(&mut self) -> Option<Suspicion> {
        self.suspects.pop_front()
    }

    /// Notes that `dest` looks dead, when passive checks are on and the queue has room.
    fn suspect(&mut self, dest: DestId, symptom: Symptom) {
        if !self.cfg.passive_checks || self.suspects.len() >= SUSPECTS_MAX {
            return;
        }
        let Some(d) = self.dests.get(dest) else { return };
        let Some(s) = self.svc(d.svc) else { return };
        self.suspects.push_back(Suspicion { service: s.cfg.key, server: d.cfg.endpoint, symptom });
    }

    /// Counts a drop and says so.
    fn drop(&mut self, r: Reason) -> Verdict {
        self.drops[r.index()] += 1;
        Verdict::Drop(r)
    }

    /// The source MAC of a frame leaving on `port`, or `None` for a port that does not exist.
    fn port_mac(&self, port: u16) -> Option<MacAddr> {
        self.port(port).map(|p| p.mac)
    }

    /// Port `n` of the configuration.
    fn port(&self, n: u16) -> Option<&PortConfig> {
        self.cfg.ports.get(usize::from(n))
    }

    // ----- neighbours -----

    /// Tells the director the MAC (and port) of a host on a link: real servers and gateways.
    pub fn set_neighbour(&mut self, ip: IpAddr, n: Neighbour) {
        self.neigh.entries.insert(ip, n);
        self.refresh_next_hops();
    }

    /// Sets the default gateway of a family (the next hop toward clients).
    pub fn set_gateway(&mut self, af: Af, n: Neighbour) {
        match af {
            Af::V4 => self.neigh.gw4 = Some(n),
            Af::V6 => self.neigh.gw6 = Some(n),
        }
        self.refresh_next_hops();
    }

    fn next_hop(neigh: &NeighbourTable, rs: &RealServer) -> Option<Neighbour> {
        Self::hop(neigh, rs.fwd, &rs.endpoint.addr)
    }

    /// The next hop toward `addr` for forwarding method `fwd`: direct routing needs the server
    /// on a link of ours, the other methods may go through a gateway.
    fn hop(neigh: &NeighbourTable, fwd: FwdMethod, addr: &IpAddr) -> Option<Neighbour> {
        match fwd {
            FwdMethod::Route => neigh.entries.get(addr).copied(),
            _ => neigh.route(addr),
        }
    }

    fn refresh_next_hops(&mut self) {
        let neigh = &self.neigh;
        for d in self.dests.iter_mut() {
            d.nh = Self::next_hop(neigh, &d.cfg);
        }
    }

    // ----- reading state -----

    /// The services with their servers, in no particular order (listings sort them).
    pub fn services(&self) -> impl Iterator<Item = ServiceInfo<'_>> {
        self.svcs.iter().flatten().map(|s| s.info(&self.dests))
    }

    /// One service.
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceInfo<'_>> {
        Some(self.svc(*self.svc_index.get(key)?)?.info(&self.dests))
    }

    /// A real server by handle (deleted ones that linger included).
    pub fn dest(&self, id: DestId) -> Option<DestView<'_>> {
        self.dests.view(id)
    }

    /// Global counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The fragments beyond the first of every [`Verdict::Fragmented`] the latest
    /// [`Director::process`] or [`Director::process_burst`] call gave, in the order of those
    /// verdicts: each takes the next `more` frames. The next call replaces them.
    pub fn fragments(&self) -> &[Frame] {
        self.frag_out.frames()
    }

    /// [`Director::fragments`], mutably: an application that moves frames rather than copying
    /// them swaps an empty buffer of its own in for each (`core::mem::swap`); the director then
    /// reuses that buffer.
    pub fn fragments_mut(&mut self) -> &mut [Frame] {
        self.frag_out.frames_mut()
    }

    /// Drop counters, indexed by [`Reason::index`].
    pub fn drops(&self) -> &[u64; Reason::COUNT] {
        &self.drops
    }

    /// Live connections and templates.
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Memory held by the connection table.
    pub fn table_stats(&self) -> TableStats {
        self.conns.stats()
    }

    /// Every connection and template, as `ipvsadm -Lc` lists them.
    pub fn connections(&self, now: Instant) -> Vec<ConnInfo> {
        let n = crate::time::now_ms(now);
        self.conns
            .iter()
            .map(|(id, c)| ConnInfo::of(id, c, &self.conns.addrs(c), crate::proto::state_name(c), n))
            .collect()
    }

    /// The persistence engine and its data (`show_pe_data`: the SIP Call-ID) of a template
    /// [`connections`](Self::connections) listed with [`ConnInfo::pe`]; `None` once the
    /// template is gone.
    pub fn pe_data(&self, r: crate::conn::PeRef) -> Option<(crate::service::PersistEngine, &[u8])> {
        Some((crate::service::PersistEngine::Sip, self.sip.get(r.0)?.as_bytes()))
    }

    fn svc(&self, i: u32) -> Option<&Service> {
        self.svcs.get(i as usize).and_then(Option::as_ref)
    }

    fn svc_mut(&mut self, i: u32) -> Option<&mut Service> {
        self.svcs.get_mut(i as usize).and_then(Option::as_mut)
    }

    // ----- time -----

    fn start_clock(&mut self, now: Instant) {
        self.clock = self.clock.max(now.as_nanos());
        self.conns.wheel.start(now.as_nanos());
        self.defense.start(now.as_nanos());
        if self.next_est.is_none() {
            self.next_est = Some(now.as_nanos().saturating_add(EST_INTERVAL_NS));
        }
    }

    /// Expires connections whose time has come, empties the dest trash of servers unreferenced
    /// for 120 s, evaluates the flood defences every second ([`Defense`]), runs the rate
    /// estimator every 2 s and lets schedulers age their caches. Call it by
    /// [`Director::next_deadline`].
    ///
    /// DoS warning: the work grows with the number of entries that expire at once, and each
    /// second's `drop_entry` walk with the size of the table.
    ///
    /// ```
    /// # use lvs_core::{Director, DirectorConfig, Instant};
    /// # fn factory(_: &str) -> Result<Box<dyn lvs_core::Scheduler>, lvs_core::SchedError> {
    /// #     Err(lvs_core::SchedError::Unknown)
    /// # }
    /// let mut d = Director::new(DirectorConfig::default(), factory);
    /// let mut now = Instant::from_secs(0);
    /// // The application's loop: process frames as they come, tick when the director asks.
    /// while let Some(t) = d.next_deadline().filter(|t| *t <= now) {
    ///     d.tick(t);
    /// }
    /// now = now + core::time::Duration::from_secs(2);
    /// d.tick(now);
    /// assert_eq!(d.conn_count(), 0);
    /// ```
    pub fn tick(&mut self, now: Instant) {
        self.start_clock(now);
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        self.conns.pop_due(now.as_nanos(), &mut due);
        for id in due.iter().copied() {
            self.expire(now, id);
        }
        self.due = due;
        if self.trash_next.is_some_and(|t| now.as_nanos() >= t) {
            self.expire_trash(now.as_nanos());
        }
        self.defense_work(now);
        if let Some(mut t) = self.next_est {
            if now.as_nanos() >= t {
                if now.as_nanos() - t > 10 * EST_INTERVAL_NS {
                    t = now.as_nanos() - EST_INTERVAL_NS;
                }
                while now.as_nanos() >= t {
                    self.estimate();
                    match t.checked_add(EST_INTERVAL_NS) {
                        Some(next) => t = next,
                        None => {
                            t = u64::MAX;
                            break;
                        }
                    }
                }
                self.next_est = Some(t);
                for s in self.svcs.iter_mut().flatten() {
                    s.sched.tick(now);
                }
                self.frags.prune(now);
            }
        }
    }

    fn estimate(&mut self) {
        self.stats.estimate();
        for s in self.svcs.iter_mut().flatten() {
            s.stats.estimate();
        }
        for d in self.dests.iter_mut() {
            d.stats.estimate();
        }
    }

    /// When [`Director::tick`] (and [`Director::poll_sync`]) should next run, or `None` when
    /// nothing waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let wheel = self.conns.wheel.next_deadline();
        let (est, defense) =
            if self.svc_index.is_empty() { (None, None) } else { (self.next_est, self.defense.deadline()) };
        [wheel, est, defense, self.sync_deadline(), self.trash_next].into_iter().flatten().min().map(Instant)
    }
}

#[cfg(test)]
mod tests;
