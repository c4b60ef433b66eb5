//! Real servers (`struct ip_vs_dest`, `ip_vs_ctl.c`): configuration, counters, flags, and the
//! arena that keeps a deleted server alive while connections still point at it (the kernel's
//! dest trash).

use alloc::vec::Vec;
use core::net::IpAddr;

use crate::addr::{Endpoint, ServiceKey};
use crate::neigh::Neighbour;
use crate::stats::Stats;

/// Handle of a real server in the director's arena. Stable for the server's whole life,
/// including the time it lingers after deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// How packets reach a real server (`IP_VS_CONN_F_FWD_MASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FwdMethod {
    /// NAT (`-m`): destination rewritten to the real server, replies come back through us.
    Masq,
    /// Direct routing (`-g`): only the MAC changes; the server answers the client directly.
    Route,
    /// IP-in-IP tunnelling (`-i`): the packet is encapsulated toward the server.
    Tunnel,
    /// The real server is this host: the packet goes to the application's own stack.
    Local,
    /// FullNAT (DPVS `-b`/`--fullnat` on a real server; Alibaba LVS): both addresses
    /// rewritten — client → one of the service's local addresses and ports, virtual service →
    /// real server — so replies come back to the director from servers anywhere routable.
    FullNat,
}

impl FwdMethod {
    /// ipvsadm's `Forward` column: `Masq`, `Route`, `Tunnel`, `Local`, and `FullNat` as DPVS's
    /// ipvsadm prints it (`fwd_name`).
    pub const fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Route => "Route",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Local => "Local",
            FwdMethod::FullNat => "FullNat",
        }
    }
}

/// The encapsulation toward a tunnelling server (`IP_VS_CONN_F_TUNNEL_TYPE_*`, ipvsadm 1.31's
/// `--tun-type`; GUE since Linux 5.2, GRE in a later 5.x).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunType {
    /// IP-in-IP (protocol 4, or 41 for an IPv6 packet): the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (draft-ietf-intarea-gue): outer UDP to [`TunConfig::port`],
    /// then a 4-byte GUE header naming the inner protocol.
    Gue,
    /// GRE (RFC 2784): a 4-byte header, 8 with a checksum, naming the inner EtherType.
    Gre,
}

impl TunType {
    /// ipvsadm's word for it (`tunnames`): `ipip`, `gue`, `gre`.
    pub const fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }
}

/// The tunnel checksum setting (`IP_VS_TUNNEL_ENCAP_FLAG_*`, ipvsadm's `--tun-nocsum`,
/// `--tun-csum`, `--tun-remcsum`). IP-in-IP ignores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunCsum {
    /// No checksum: GUE's UDP checksum is zero, GRE carries none. The default.
    #[default]
    NoCsum,
    /// GUE's UDP checksum computed; GRE's checksum field present and computed.
    Csum,
    /// GUE with Remote Checksum Offload (draft-herbert-remotecsumoffload, carried in GUE's
    /// private flags as Linux's `GUE_PFLAG_REMCSUM`). The kernel writes the
    /// option only for a packet whose own checksum is still to be filled in
    /// (`CHECKSUM_PARTIAL`); every frame reaches this director with its checksum complete, so,
    /// as the kernel does for such packets, only the UDP checksum is computed. GRE reads it as
    /// no checksum, as `ipvs_gre_encap` does.
    RemCsum,
}

/// How a tunnelling server's packets are wrapped: the kernel's `dest->tun_type`,
/// `dest->tun_port` and `dest->tun_flags`. Only read for [`FwdMethod::Tunnel`] servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunConfig {
    /// The encapsulation.
    pub kind: TunType,
    /// GUE's UDP destination port (`--tun-port`); the kernel refuses a GUE server without one.
    pub port: u16,
    /// The checksum setting.
    pub csum: TunCsum,
}

impl TunConfig {
    /// IP-in-IP: what a server gets without `--tun-type`.
    pub const IPIP: TunConfig = TunConfig { kind: TunType::Ipip, port: 0, csum: TunCsum::NoCsum };

    /// GUE toward UDP port `port`.
    pub const fn gue(port: u16, csum: TunCsum) -> Self {
        TunConfig { kind: TunType::Gue, port, csum }
    }

    /// GRE.
    pub const fn gre(csum: TunCsum) -> Self {
        TunConfig { kind: TunType::Gre, port: 0, csum }
    }
}

/// The largest weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// A real server's configuration, as `ipvsadm -a|-e` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Address and port (port 0 with port-0 or fwmark services means "the client's port").
    pub endpoint: Endpoint,
    /// Forwarding method.
    pub fwd: FwdMethod,
    /// Weight 0..=65535; 0 quiesces the server (no new connections).
    pub weight: u32,
    /// Upper connection threshold `-x` (0 = none).
    pub u_threshold: u32,
    /// Lower connection threshold `-y` (0 = use 3/4 of the upper).
    pub l_threshold: u32,
    /// Beyond the kernel: most connections (active and inactive) the server takes, persistent
    /// clients included; a new connection beyond it is dropped ([`Reason::DestConnLimit`]), where
    /// `-x` only makes the scheduler pass the server by. DPVS's `max_conn`, enforced as DPVS's
    /// `dp_vs_conn_bind_dest` does (0 = none).
    ///
    /// [`Reason::DestConnLimit`]: crate::Reason::DestConnLimit
    pub max_conn: u32,
    /// The encapsulation of a [`FwdMethod::Tunnel`] server (IP-in-IP unless set).
    pub tun: TunConfig,
}

impl RealServer {
    /// A server with the given address, port, method and weight, and no thresholds.
    pub fn new(addr: IpAddr, port: u16, fwd: FwdMethod, weight: u32) -> Self {
        RealServer {
            endpoint: Endpoint::new(addr, port),
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            max_conn: 0,
            tun: TunConfig::IPIP,
        }
    }

    /// The same server tunnelled with `tun` (GUE or GRE instead of IP-in-IP).
    pub fn with_tunnel(mut self, tun: TunConfig) -> Self {
        self.tun = tun;
        self
    }

    /// The same server taking at most `n` connections ([`RealServer::max_conn`]).
    pub fn with_max_conn(mut self, n: u32) -> Self {
        self.max_conn = n;
        self
    }

    /// The same server with thresholds `-x upper -y lower`.
    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Self {
        self.u_threshold = upper;
        self.l_threshold = lower;
        self
    }
}

/// `IP_VS_DEST_F_AVAILABLE`: linked into its service (cleared on delete).
pub(crate) const F_AVAILABLE: u8 = 0x1;
/// `IP_VS_DEST_F_OVERLOAD`: the upper threshold was reached.
pub(crate) const F_OVERLOAD: u8 = 0x2;

/// A real server's live state. Its counters move only through the director's binding and state
/// steps.
#[derive(Debug)]
pub(crate) struct Dest {
    pub(crate) cfg: RealServer,
    /// Index of the owning service in the director's service slab, or [`NO_SVC`] once that
    /// service is deleted (the kernel's `dest->svc` pointer to a service that is gone).
    pub(crate) svc: u32,
    /// The service the server was added to, by protocol, address and port or fwmark
    /// (`dest->protocol`, `vaddr`, `vport`, `vfwmark`): what `ip_vs_trash_get_dest` matches.
    pub(crate) vkey: ServiceKey,
    /// The latest non-zero weight (only `mh` reads it).
    pub(crate) last_weight: u32,
    pub(crate) flags: u8,
    pub(crate) active: u32,
    pub(crate) inactive: u32,
    pub(crate) persist: u32,
    /// Connections and templates bound to this server.
    pub(crate) refcnt: u32,
    pub(crate) stats: Stats,
    /// When the dest trash timer first found this deleted server unreferenced (`idle_start`).
    pub(crate) idle_since: Option<u64>,
    /// The next hop, resolved at control time from the neighbour table.
    pub(crate) nh: Option<Neighbour>,
}

/// [`Dest::svc`] of a server whose service was deleted.
pub(crate) const NO_SVC: u32 = u32::MAX;

impl Dest {
    pub(crate) fn new(cfg: RealServer, svc: u32, vkey: ServiceKey) -> Self {
        Dest {
            cfg,
            svc,
            vkey,
            last_weight: cfg.weight,
            flags: F_AVAILABLE,
            active: 0,
            inactive: 0,
            persist: 0,
            refcnt: 0,
            stats: Stats::default(),
            idle_since: None,
            nh: None,
        }
    }

    /// Connections that count toward the thresholds (`ip_vs_dest_totalconns`).
    pub(crate) fn total_conns(&self) -> u32 {
        self.active.saturating_add(self.inactive)
    }

    /// `ip_vs_bind_dest`'s overload rule: set when the total reaches the upper threshold.
    pub(crate) fn check_overload_on_bind(&mut self) {
        if self.cfg.u_threshold != 0 && self.total_conns() >= self.cfg.u_threshold {
            self.flags |= F_OVERLOAD;
        }
    }

    /// `ip_vs_unbind_dest`'s rule: clear below the lower threshold, or below 3/4 of the upper
    /// when there is no lower one.
    pub(crate) fn check_overload_on_unbind(&mut self) {
        let total = u64::from(self.total_conns());
        let clear = if self.cfg.l_threshold != 0 {
            total < u64::from(self.cfg.l_threshold)
        } else if self.cfg.u_threshold != 0 {
            total * 4 < u64::from(self.cfg.u_threshold) * 3
        } else {
            true
        };
        if clear {
            self.flags &= !F_OVERLOAD;
        }
    }
}

/// A read-only view of one real server, as schedulers and listings see it.
#[derive(Clone, Copy, Debug)]
pub struct DestView<'a> {
    id: DestId,
    d: &'a Dest,
}

impl<'a> DestView<'a> {
    /// The server's handle.
    pub fn id(&self) -> DestId {
        self.id
    }
    /// Address and port.
    pub fn endpoint(&self) -> Endpoint {
        self.d.cfg.endpoint
    }
    /// Address.
    pub fn addr(&self) -> IpAddr {
        self.d.cfg.endpoint.addr
    }
    /// Port.
    pub fn port(&self) -> u16 {
        self.d.cfg.endpoint.port
    }
    /// Forwarding method.
    pub fn fwd(&self) -> FwdMethod {
        self.d.cfg.fwd
    }
    /// Current weight.
    pub fn weight(&self) -> u32 {
        self.d.cfg.weight
    }
    /// The latest non-zero weight (`last_weight`).
    pub fn last_weight(&self) -> u32 {
        self.d.last_weight
    }
    /// Upper and lower thresholds.
    pub fn thresholds(&self) -> (u32, u32) {
        (self.d.cfg.u_threshold, self.d.cfg.l_threshold)
    }
    /// The connection limit ([`RealServer::max_conn`]; 0 = none).
    pub fn max_conn(&self) -> u32 {
        self.d.cfg.max_conn
    }
    /// The encapsulation of a tunnelling server ([`RealServer::tun`]).
    pub fn tun(&self) -> TunConfig {
        self.d.cfg.tun
    }
    /// The overload flag (`IP_VS_DEST_F_OVERLOAD`).
    pub fn is_overloaded(&self) -> bool {
        self.d.flags & F_OVERLOAD != 0
    }
    /// Still linked into its service (`IP_VS_DEST_F_AVAILABLE`).
    pub fn is_available(&self) -> bool {
        self.d.flags & F_AVAILABLE != 0
    }
    /// ActiveConn.
    pub fn active(&self) -> u32 {
        self.d.active
    }
    /// InActConn.
    pub fn inactive(&self) -> u32 {
        self.d.inactive
    }
    /// PersistConn (templates pointing here).
    pub fn persist(&self) -> u32 {
        self.d.persist
    }
    /// Traffic counters.
    pub fn stats(&self) -> &'a Stats {
        &self.d.stats
    }
}

/// The arena of real servers, indexed by [`DestId`].
#[derive(Debug, Default)]
pub(crate) struct Dests {
    slots: Vec<Option<Dest>>,
    free: Vec<u32>,
}

impl Dests {
    /// An empty arena.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Stores a new server of service `svc` (keyed `vkey`) and returns its handle.
    pub(crate) fn insert(&mut self, cfg: RealServer, svc: u32, vkey: ServiceKey) -> DestId {
        let d = Dest::new(cfg, svc, vkey);
        match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slots.get_mut(i as usize) {
                    *slot = Some(d);
                }
                DestId(i)
            }
            None => {
                self.slots.push(Some(d));
                DestId(u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX))
            }
        }
    }

    /// Frees a server's slot.
    pub(crate) fn remove(&mut self, id: DestId) {
        if let Some(slot) = self.slots.get_mut(id.0 as usize) {
            if slot.take().is_some() {
                self.free.push(id.0);
            }
        }
    }

    /// The live state of a server.
    pub(crate) fn get(&self, id: DestId) -> Option<&Dest> {
        self.slots.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// Mutable live state of a server.
    pub(crate) fn get_mut(&mut self, id: DestId) -> Option<&mut Dest> {
        self.slots.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// A view of a server.
    pub(crate) fn view(&self, id: DestId) -> Option<DestView<'_>> {
        self.get(id).map(|d| DestView { id, d })
    }

    /// Every server with its handle (deleted ones that linger included).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (DestId, &Dest)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|d| (DestId(i as u32), d)))
    }

    /// Every server with its handle, mutably.
    pub(crate) fn iter_mut_with_ids(&mut self) -> impl Iterator<Item = (DestId, &mut Dest)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| s.as_mut().map(|d| (DestId(i as u32), d)))
    }

    /// Every server, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Dest> {
        self.slots.iter_mut().filter_map(Option::as_mut)
    }
}

impl Dest {
    /// Changes the weight as `ipvsadm -e` does (keeping `last_weight` when it becomes 0).
    pub(crate) fn set_weight(&mut self, w: u32) {
        self.cfg.weight = w;
        if w != 0 {
            self.last_weight = w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ServiceKey {
        ServiceKey::tcp("203.0.113.100".parse().unwrap(), 80)
    }

    fn rs(w: u32) -> RealServer {
        RealServer::new("192.0.2.11".parse().unwrap(), 80, FwdMethod::Route, w)
    }

    #[test]
    fn overload_set_and_cleared_by_kernel_rule() {
        let mut d = Dest::new(rs(1).with_thresholds(4, 0), 0, key());
        (d.active, d.inactive) = (3, 0);
        d.check_overload_on_bind();
        assert_eq!(d.flags & F_OVERLOAD, 0);
        (d.active, d.inactive) = (3, 1);
        d.check_overload_on_bind();
        assert_ne!(d.flags & F_OVERLOAD, 0);
        // 3*4 = 12 is not < 4*3 = 12: still overloaded.
        (d.active, d.inactive) = (3, 0);
        d.check_overload_on_unbind();
        assert_ne!(d.flags & F_OVERLOAD, 0);
        (d.active, d.inactive) = (2, 0);
        d.check_overload_on_unbind();
        assert_eq!(d.flags & F_OVERLOAD, 0);

        let mut d = Dest::new(rs(1).with_thresholds(3, 1), 0, key());
        (d.active, d.inactive) = (3, 0);
        d.check_overload_on_bind();
        (d.active, d.inactive) = (1, 0);
        d.check_overload_on_unbind();
        assert_ne!(d.flags & F_OVERLOAD, 0, "1 is not below the lower threshold 1");
        (d.active, d.inactive) = (0, 0);
        d.check_overload_on_unbind();
        assert_eq!(d.flags & F_OVERLOAD, 0);
    }

    #[test]
    fn arena_reuses_slots() {
        let mut a = Dests::new();
        let x = a.insert(rs(1), 0, key());
        let y = a.insert(rs(2), 0, key());
        a.remove(x);
        assert!(a.get(x).is_none());
        let z = a.insert(rs(3), 0, key());
        assert_eq!(z, x);
        assert_eq!(a.view(y).unwrap().weight(), 2);
        let mut d = Dest::new(rs(5), 0, key());
        d.set_weight(0);
        assert_eq!((d.cfg.weight, d.last_weight), (0, 5));
    }
}
