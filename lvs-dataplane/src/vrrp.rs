//! VRRP on the wire, as keepalived's VRRP process drives the network (`vrrp_scheduler.c`'s
//! read and timer loop, `vrrp_arp.c`, `vrrp_ndisc.c`, `vrrp_ipaddress.c`): the sans-IO
//! [`Group`] of `lvs_core::vrrp` behind raw IP protocol 112 sockets.
//!
//! [`VrrpIo`] owns, for each interface the group's instances run on, a raw socket per family
//! (bound to the interface, TTL / hop limit 255, member of `224.0.0.18` / `ff02::12` on it unless
//! every instance of that family uses unicast peers) and a packet socket for announcements. It
//! hands every advertisement that arrives to [`Group::handle`] with the IP header's source,
//! destination and TTL (an IPv4 raw socket gives the header; IPv6 gives them as
//! `IPV6_PKTINFO` and `IPV6_HOPLIMIT`), and carries out what [`Group::poll`] hands back:
//!
//! | action | done by |
//! |---|---|
//! | `Send` | the raw socket, from the instance's primary address (`IP_PKTINFO` / `IPV6_PKTINFO`); with `use_vmac`, a multicast advertisement leaves as a whole frame from the virtual MAC through the packet socket |
//! | `AddAddresses`, `RemoveAddresses` | [`Hooks::add_addresses`], [`Hooks::remove_addresses`]: the application decides what owning a virtual address means |
//! | `Announce` | gratuitous ARP ([`gratuitous_arp`]) or unsolicited neighbour advertisement ([`unsolicited_na`]) through the packet socket, `count` times |
//! | `Notify`, a sync group's state | [`Hooks::notify`], [`Hooks::sync_group`] |
//!
//! What owning the addresses means is the application's: an AF_PACKET director answers ARP
//! and neighbour solicitations for them and takes their traffic; a router or a namespace lab
//! puts them on a kernel interface, which [`KernelAddresses`] does over rtnetlink.
//!
//! ```no_run
//! use lvs_core::vrrp::{Config, Group};
//! use lvs_core::Af;
//! use lvs_dataplane::runtime::{MonotonicClock, StopHandle};
//! use lvs_dataplane::vrrp::{interface_addr, KernelAddresses, VrrpIo};
//!
//! // keepalived: vrrp_instance { interface eth0; virtual_router_id 51; priority 150;
//! //                             virtual_ipaddress { 192.0.2.100 } }
//! let primary = interface_addr("eth0", Af::V4)?.ok_or("eth0 has no IPv4 address")?;
//! let mut cfg = Config::new(51, primary, vec!["192.0.2.100".parse()?]);
//! cfg.priority = 150;
//! let mut group = Group::new();
//! group.add_instance(cfg)?;
//! let mut vrrp = VrrpIo::open(group, &["eth0"], KernelAddresses)?;
//! let (clock, stop) = (MonotonicClock::default(), StopHandle::default());
//! vrrp.start(clock.now());
//! vrrp.run(&clock, &stop)?; // until another thread calls stop.stop()
//! vrrp.shutdown(clock.now()); // priority 0: the best backup takes over at once
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A director pair
//!
//! What keepalived ties to an instance, an application ties through the group and the hooks:
//!
//! - **Connection sync** follows the instance ([`lvs_sync`], keepalived's `lvs_sync_daemon`):
//!   [`LvsSyncDaemon::hooks`] wraps the application's hooks, and [`LvsSyncDaemon::apply`], from
//!   the runtime's loop, runs the master daemon while the instance is MASTER and the backup
//!   daemon otherwise, with the VRID as syncid.
//! - **The interface** ([`link_up`]): keepalived puts an instance whose interface is down into
//!   FAULT; here a tracker of weight 0, set from [`link_up`] in the loop that drives the
//!   [`VrrpIo`].
//! - **A health-check quorum**: a tracker of negative weight takes that much off the priority
//!   while the quorum is lost, so that a peer of higher priority than what is left takes over
//!   (it preempts, or its master-down timer runs out); keepalived does the same with a
//!   `track_script` or `track_file` of that weight. Weight 0 forces FAULT instead.
//! - **Events** (keepalived's `notify_master`, `notify_backup`, `notify_fault`, `notify_stop`):
//!   [`Hooks::notify`], with the instance, the event and the priority in force;
//!   [`SyncHooks`] passes them on to the hooks it wraps.
//!
//! ```no_run
//! use std::time::Duration;
//! use lvs_core::vrrp::{Config, Group, Target, Track};
//! use lvs_dataplane::runtime::{MonotonicClock, StopHandle};
//! use lvs_dataplane::vrrp::{link_up, KernelAddresses, LvsSyncDaemon, VrrpIo};
//!
//! let clock = MonotonicClock::default();
//! let mut cfg = Config::new(51, "192.0.2.3".parse()?, vec!["192.0.2.1".parse()?]);
//! cfg.priority = 150;
//! let mut group = Group::new();
//! let vr = group.add_instance(cfg)?;
//! let down = |weight| [Track { target: Target::Instance(vr), weight, reverse: false }];
//! // eth0 down: FAULT. Fewer than two real servers alive: priority 150 − 60 = 90, below a
//! // peer's 100.
//! let link = group.add_tracker(clock.now(), link_up("eth0")?, &down(0))?;
//! let quorum = group.add_tracker(clock.now(), true, &down(-60))?;
//! let lvs_syncd = LvsSyncDaemon::new(&group, vr, "sync0")?; // apply() it in the runtime's loop
//! let mut vrrp = VrrpIo::open(group, &["eth0"], lvs_syncd.hooks(KernelAddresses))?;
//! vrrp.start(clock.now());
//! let stop = StopHandle::default();
//! # let alive = || 3;
//! while !stop.is_stopped() {
//!     let now = clock.now();
//!     vrrp.group_mut().set_tracker(now, link, link_up("eth0")?)?;
//!     vrrp.group_mut().set_tracker(now, quorum, alive() >= 2)?;
//!     vrrp.poll(now);
//!     vrrp.wait(now, Duration::from_millis(10))?;
//! }
//! vrrp.shutdown(clock.now());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod lvs_sync;

pub use lvs_sync::{LvsSyncDaemon, SyncHooks};

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::time::Duration;

use etherparse::checksum::Sum16BitWords;
use etherparse::icmpv6::NeighborAdvertisementHeader;
use etherparse::{
    ArpEthIpv4Packet, ArpOperation, EtherType, Ethernet2Header, Icmpv6Header, Icmpv6Type, IpDscp, IpNumber, Ipv4Header,
    Ipv4HeaderSlice, Ipv6FlowLabel, Ipv6Header,
};
use lvs_core::vrrp::{
    virtual_mac, Action, AddressChange, Announce, Event, Group, GroupAction, InstanceId, IpHeader, State, SyncId,
    Transmit, PRIO_OWNER, PROTO, TTL,
};
use lvs_core::{Af, Instant, MacAddr};

use crate::runtime::{MonotonicClock, StopHandle};
use crate::sys::{linux, netlink, rawip};

/// The most datagrams read from one socket in one pass.
const RECV_BURST: usize = 64;
/// The receive buffer: the largest advertisement (255 IPv6 addresses) behind the largest IPv4
/// header, with room to spare.
const BUF_LEN: usize = 8192;
/// Network control (`IPTOS_PREC_INTERNETCONTROL`, DSCP CS6): the TOS / traffic class of
/// advertisements, as routing protocols send theirs.
const TOS: u8 = 0xc0;
/// The shortest Ethernet frame without its checksum; shorter ones are padded.
const ETH_MIN: usize = 60;
/// How long [`VrrpIo::run`] waits at most before it looks at its stop handle again.
const STOP_CHECK: Duration = Duration::from_millis(10);
/// A neighbour advertisement's ICMPv6 message: header, target, one option of 8 bytes.
const ICMPV6_NA_LEN: usize = 8 + 16 + 8;
/// The option carrying the target link-layer address (RFC 4861 §4.6.1).
const NDP_OPT_TARGET_LL: u8 = 2;
/// All-nodes, where unsolicited neighbour advertisements go (RFC 4861 §7.2.6).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An interface's primary IPv4 address, or its IPv6 link-local address: what
/// [`lvs_core::vrrp::Config::primary`] should be unless the application chooses (keepalived's
/// default source address, `mcast_src_ip` / `unicast_src_ip` unset). `None` when the interface
/// has none of that family.
///
/// # Errors
/// When there is no such interface, or the addresses cannot be listed.
pub fn interface_addr(ifname: &str, af: Af) -> io::Result<Option<IpAddr>> {
    linux::ifindex(ifname)?;
    let found = rawip::interface(ifname)?.addrs.into_iter().find(|a| match (af, a) {
        (Af::V4, IpAddr::V4(_)) => true,
        (Af::V6, IpAddr::V6(a)) => a.segments()[0] & 0xffc0 == 0xfe80,
        _ => false,
    });
    Ok(found)
}

/// Whether interface `ifname` is up and running: administratively up (`IFF_UP`) and
/// operationally up (`IFF_RUNNING`: it has carrier; a veth whose peer is down has none). This
/// is what keepalived watches on an instance's interface, which it tracks by default (FAULT
/// while it is down, unless `dont_track_primary`); here the application wires it to a tracker
/// of weight 0, as the [module doc](self) shows.
///
/// # Errors
/// When there is no such interface, or the interfaces cannot be listed.
pub fn link_up(ifname: &str) -> io::Result<bool> {
    linux::ifindex(ifname)?;
    Ok(rawip::interface(ifname)?.running)
}

/// A gratuitous ARP for `addr` from `mac`, as a whole Ethernet frame: a broadcast ARP request
/// whose sender and target protocol addresses are both `addr` (RFC 5227 §3; the target hardware
/// address zero), padded to the shortest frame.
pub fn gratuitous_arp(mac: MacAddr, addr: Ipv4Addr) -> Vec<u8> {
    let eth = Ethernet2Header { source: mac.0, destination: [0xff; 6], ether_type: EtherType::ARP };
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: mac.0,
        sender_ipv4: addr.octets(),
        target_mac: [0; 6],
        target_ipv4: addr.octets(),
    };
    let mut f = Vec::with_capacity(ETH_MIN);
    f.extend_from_slice(&eth.to_bytes());
    f.extend_from_slice(&arp.to_bytes());
    f.resize(ETH_MIN, 0);
    f
}

/// An unsolicited neighbour advertisement for `target` at `mac`, from `src` (an address of the
/// interface, its link-local one as a rule) to all nodes, as a whole Ethernet frame: Router and
/// Override set, Solicited clear, with the target link-layer address option (RFC 5798 §6.4.2,
/// RFC 4861 §7.2.6), hop limit 255.
pub fn unsolicited_na(mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = ALL_NODES;
    let eth =
        Ethernet2Header { source: mac.0, destination: multicast_mac(IpAddr::V6(dst)), ether_type: EtherType::IPV6 };
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: ICMPV6_NA_LEN as u16,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit: TTL,
        source: src.octets(),
        destination: dst.octets(),
    };
    let na = Icmpv6Type::NeighborAdvertisement(NeighborAdvertisementHeader {
        router: true,
        solicited: false,
        r#override: true,
    });
    // The body after the first eight bytes: the target, then option 2 (8 bytes) with the MAC.
    let mut body = Vec::with_capacity(ICMPV6_NA_LEN - 8);
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[NDP_OPT_TARGET_LL, 1]);
    body.extend_from_slice(&mac.0);
    let head = Icmpv6Header { icmp_type: na, checksum: 0 }.to_bytes();
    let checksum = Sum16BitWords::new()
        .add_16bytes(src.octets())
        .add_16bytes(dst.octets())
        .add_4bytes((ICMPV6_NA_LEN as u32).to_be_bytes())
        .add_2bytes([0, IpNumber::IPV6_ICMP.0])
        .add_slice(&head)
        .add_slice(&body)
        .ones_complement()
        .to_be();
    let head = Icmpv6Header { icmp_type: na, checksum }.to_bytes();
    let mut f = Vec::with_capacity(14 + 40 + ICMPV6_NA_LEN);
    f.extend_from_slice(&eth.to_bytes());
    f.extend_from_slice(&ip.to_bytes());
    f.extend_from_slice(&head);
    f.extend_from_slice(&body);
    f
}

/// The Ethernet address a multicast IP address maps to (RFC 1112 §6.4, RFC 2464 §7).
fn multicast_mac(dst: IpAddr) -> [u8; 6] {
    match dst {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
    }
}

/// A multicast advertisement as a whole frame from `src_mac` (the virtual router MAC).
fn advert_frame(src_mac: MacAddr, t: &Transmit) -> io::Result<Vec<u8>> {
    let invalid = || io::Error::from(io::ErrorKind::InvalidInput);
    let (ether_type, ip) = match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u16::try_from(t.bytes.len()).map_err(|_| invalid())?;
            let mut h = Ipv4Header::new(len, TTL, IpNumber(PROTO), s.octets(), d.octets()).map_err(|_| invalid())?;
            h.dscp = IpDscp::CS6;
            h.header_checksum = h.calc_header_checksum();
            (EtherType::IPV4, h.to_bytes().to_vec())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let h = Ipv6Header {
                traffic_class: TOS,
                flow_label: Ipv6FlowLabel::ZERO,
                payload_length: u16::try_from(t.bytes.len()).map_err(|_| invalid())?,
                next_header: IpNumber(PROTO),
                hop_limit: TTL,
                source: s.octets(),
                destination: d.octets(),
            };
            (EtherType::IPV6, h.to_bytes().to_vec())
        }
        _ => return Err(invalid()),
    };
    let eth = Ethernet2Header { source: src_mac.0, destination: multicast_mac(t.dst), ether_type };
    let mut f = Vec::with_capacity(14 + ip.len() + t.bytes.len());
    f.extend_from_slice(&eth.to_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&t.bytes);
    if f.len() < ETH_MIN {
        f.resize(ETH_MIN, 0);
    }
    Ok(f)
}

/// Where an action comes from, for the [`Hooks`].
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The instance.
    pub instance: InstanceId,
    /// Its virtual router id.
    pub vrid: u8,
    /// Its port ([`lvs_core::vrrp::Config::port`]).
    pub port: u16,
    /// The interface of that port.
    pub ifname: &'a str,
}

/// What the application does when an instance takes or gives up its virtual addresses, and
/// what it is told (keepalived's notify scripts). Called from [`VrrpIo::start`],
/// [`VrrpIo::poll`] and [`VrrpIo::shutdown`], in the order the group hands the actions out.
pub trait Hooks {
    /// The instance became master: take `change.addrs` (answer for them, put them on an
    /// interface, ...).
    ///
    /// # Errors
    /// Whatever stopped it; counted in [`VrrpIoStats::hook_errors`].
    fn add_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()>;

    /// The instance left master (or is starting, or shutting down): give `change.addrs` up.
    ///
    /// # Errors
    /// Whatever stopped it; counted in [`VrrpIoStats::hook_errors`].
    fn remove_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()>;

    /// The instance entered a state, or as master heard a lower priority
    /// (`notify_master`, `notify_backup`, `notify_fault`, `notify_stop`,
    /// `notify_master_rx_lower_pri`).
    fn notify(&mut self, _at: &Origin<'_>, _event: Event, _priority: u8) {}

    /// A sync group entered a state (a sync group's `notify_*`).
    fn sync_group(&mut self, _id: SyncId, _state: State) {}
}

/// [`Hooks`] that put the virtual addresses on the instance's kernel interface and take them
/// off again over rtnetlink (`ip addr add|del ADDR/32 dev IF`, `/128` for IPv6 without
/// duplicate detection), as keepalived does with its `virtual_ipaddress` without a prefix. The
/// virtual MAC and Accept_Mode are not the kernel interface's business here: the addresses are
/// added either way. An application with hooks of its own can call these from them.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelAddresses;

impl KernelAddresses {
    fn change(add: bool, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        let ifindex = linux::ifindex(at.ifname)?;
        let mut result = Ok(());
        for &a in &change.addrs {
            let prefix = if a.is_ipv6() { 128 } else { 32 };
            if let Err(e) = netlink::change_addr(add, ifindex, a, prefix) {
                result = Err(e);
            }
        }
        result
    }
}

impl Hooks for KernelAddresses {
    /// Adds each address (one already there is left as it is).
    fn add_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        KernelAddresses::change(true, at, change)
    }

    /// Removes each address (one not there is no error).
    fn remove_addresses(&mut self, at: &Origin<'_>, change: &AddressChange) -> io::Result<()> {
        KernelAddresses::change(false, at, change)
    }
}

/// What the VRRP sockets did. The group counts what the advertisements held
/// ([`Group::drops`], each instance's drops and [`lvs_core::vrrp::Stats`]); these count the
/// packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VrrpIoStats {
    /// Advertisements received and handed to the group.
    pub received: u64,
    /// Of those, the ones the group refused (by reason in its drop counters).
    pub refused: u64,
    /// Datagrams not handed on: cut off, a bad IPv4 header, or IPv6 without its destination
    /// or hop limit.
    pub malformed: u64,
    /// Receive errors other than "nothing to read".
    pub recv_errors: u64,
    /// Advertisements sent (one per destination).
    pub sent: u64,
    /// Advertisements the kernel refused.
    pub send_errors: u64,
    /// Gratuitous ARPs and unsolicited neighbour advertisements sent.
    pub announced: u64,
    /// Announcements that could not be sent (refused, or no MAC to announce).
    pub announce_errors: u64,
    /// [`Hooks::add_addresses`] and [`Hooks::remove_addresses`] calls that failed.
    pub hook_errors: u64,
}

/// The sockets of one interface.
struct Link {
    ifname: String,
    mac: Option<MacAddr>,
    v4: Option<rawip::RawIp>,
    v6: Option<rawip::RawIp>,
    packet: rawip::PacketTx,
}

impl Link {
    /// Opens what the instances on this interface need: a raw socket per family they use,
    /// joined to the group when one of them is multicast, and the packet socket.
    fn open(ifname: &str, group: &Group, port: u16) -> io::Result<Link> {
        let ifindex = linux::ifindex(ifname)?;
        let mac = rawip::interface(ifname)?.mac.map(MacAddr);
        let o = rawip::RawOpts { ifname, ifindex, proto: PROTO, hops: TTL, tos: TOS };
        let mut socks = [None, None];
        for (v6, slot) in [false, true].into_iter().zip(&mut socks) {
            let mine: Vec<_> = group
                .instances()
                .map(|(_, i)| i.config())
                .filter(|c| c.port == port && c.primary.is_ipv6() == v6)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let sock = rawip::RawIp::open(v6, &o)?;
            if mine.iter().any(|c| c.unicast_peers.is_empty()) {
                sock.join(lvs_core::vrrp::group_addr(if v6 { Af::V6 } else { Af::V4 }))?;
            }
            *slot = Some(sock);
        }
        let [v4, v6] = socks;
        Ok(Link { ifname: ifname.to_string(), mac, v4, v6, packet: rawip::PacketTx::open(ifindex)? })
    }
}

/// A [`Group`] on the network: its sockets, the application's [`Hooks`], counters. Drive it as
/// the group is driven — [`VrrpIo::start`], [`VrrpIo::poll`] whenever a socket is readable or
/// [`VrrpIo::next_deadline`] passes ([`VrrpIo::wait`] waits for either), [`VrrpIo::shutdown`]
/// at the end — or let [`VrrpIo::run`] loop. Dropping it without `shutdown` closes the sockets
/// silently: to its peers, a router that died (they take over after Master_Down_Interval).
pub struct VrrpIo<H: Hooks> {
    group: Group,
    /// By port.
    links: Vec<Link>,
    hooks: H,
    buf: Vec<u8>,
    fds: Vec<RawFd>,
    stats: VrrpIoStats,
}

impl<H: Hooks> VrrpIo<H> {
    /// Opens the sockets of `group`: port `i` of its instances ([`lvs_core::vrrp::Config::port`])
    /// is interface `interfaces[i]`. The instances stay in INIT until [`VrrpIo::start`].
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] for an instance whose port names no interface; an unknown
    /// interface; a socket the system refuses (raw and packet sockets need `CAP_NET_RAW`).
    pub fn open(group: Group, interfaces: &[&str], hooks: H) -> io::Result<VrrpIo<H>> {
        if group.instances().any(|(_, i)| usize::from(i.config().port) >= interfaces.len()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an instance's port names no interface"));
        }
        let links = interfaces
            .iter()
            .enumerate()
            .map(|(port, ifname)| Link::open(ifname, &group, port as u16))
            .collect::<io::Result<Vec<Link>>>()?;
        let fds = links.iter().flat_map(|l| [&l.v4, &l.v6]).flatten().map(|s| s.fd()).collect();
        Ok(VrrpIo { group, links, hooks, buf: vec![0; BUF_LEN], fds, stats: VrrpIoStats::default() })
    }

    /// Starts the instances (RFC 5798 §6.4.1). Before that, each instance's addresses are given
    /// up through [`Hooks::remove_addresses`], as keepalived removes its virtual addresses when
    /// it starts, so that addresses a crashed predecessor left behind do not answer for a
    /// backup; the address owner's (priority 255) are its own and stay.
    pub fn start(&mut self, now: Instant) {
        let leftovers: Vec<(InstanceId, AddressChange)> = self
            .group
            .instances()
            .filter(|(_, i)| i.state() == State::Init && i.config().priority != PRIO_OWNER)
            .map(|(id, i)| {
                let c = i.config();
                (
                    id,
                    AddressChange {
                        addrs: c.vips.clone(),
                        vmac: c.use_vmac.then(|| virtual_mac(Af::of(&c.primary), c.vrid)),
                        accept: c.accept,
                    },
                )
            })
            .collect();
        for (id, change) in leftovers {
            self.carry_out(id, Action::RemoveAddresses(change));
        }
        self.group.start(now);
        self.act(now);
    }

    /// One pass at `now`: every advertisement waiting (up to 64 per socket) to the group, then
    /// every action due.
    pub fn poll(&mut self, now: Instant) {
        self.receive(now);
        self.act(now);
    }

    /// Shuts the instances down: a master sends priority 0 (a backup takes over after its
    /// Skew_Time) and gives up its addresses.
    pub fn shutdown(&mut self, now: Instant) {
        self.group.shutdown(now);
        self.act(now);
    }

    /// Waits until a socket is readable, the group's next deadline, or `max` from `now`.
    ///
    /// # Errors
    /// When `poll(2)` fails.
    pub fn wait(&self, now: Instant, max: Duration) -> io::Result<()> {
        let until = self.group.next_deadline().map_or(max, |t| t.saturating_since(now).min(max));
        // Rounded up: waking before the deadline would only spin.
        let ms = i32::try_from(until.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        linux::poll_readable(&self.fds, ms)
    }

    /// [`VrrpIo::poll`] and [`VrrpIo::wait`] until `stop` is asked, looking at it at least every
    /// 10 ms. It neither starts nor shuts down the instances.
    ///
    /// # Errors
    /// When `poll(2)` fails.
    pub fn run(&mut self, clock: &MonotonicClock, stop: &StopHandle) -> io::Result<()> {
        while !stop.is_stopped() {
            let now = clock.now();
            self.poll(now);
            self.wait(now, STOP_CHECK)?;
        }
        Ok(())
    }

    /// When [`VrrpIo::poll`] next has work besides what arrives.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.group.next_deadline()
    }

    /// The group: its instances, their states and counters.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// The group, to set tracked conditions; [`VrrpIo::poll`] then carries out what follows.
    pub fn group_mut(&mut self) -> &mut Group {
        &mut self.group
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The hooks, mutably.
    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// The counters.
    pub fn stats(&self) -> VrrpIoStats {
        self.stats
    }

    /// The receive sockets' descriptors, to wait on for readability in a loop of one's own.
    pub fn raw_fds(&self) -> &[RawFd] {
        &self.fds
    }

    /// Reads every socket (up to [`RECV_BURST`] datagrams each) and hands the advertisements to
    /// the group.
    fn receive(&mut self, now: Instant) {
        for (port, link) in self.links.iter().enumerate() {
            for sock in [&link.v4, &link.v6].into_iter().flatten() {
                for _ in 0..RECV_BURST {
                    let r = match sock.recv(&mut self.buf) {
                        Ok(r) => r,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            self.stats.recv_errors += 1;
                            break;
                        }
                    };
                    let Some((ip, payload)) = advertisement(&self.buf, &r) else {
                        self.stats.malformed += 1;
                        continue;
                    };
                    self.stats.received += 1;
                    if self.group.handle(now, port as u16, &ip, payload).is_err() {
                        self.stats.refused += 1;
                    }
                }
            }
        }
    }

    /// Carries out every action the group has due at `now`.
    fn act(&mut self, now: Instant) {
        while let Some(a) = self.group.poll(now) {
            match a {
                GroupAction::Instance(id, action) => self.carry_out(id, action),
                GroupAction::Sync(id, state) => {
                    log::info!(target: "lvs::vrrp", "VRRP sync group {id:?} entering {} STATE", state.name());
                    self.hooks.sync_group(id, state);
                }
            }
        }
    }

    /// One action of instance `id`.
    fn carry_out(&mut self, id: InstanceId, action: Action) {
        let Some(cfg) = self.group.instance(id).map(|i| i.config()) else { return };
        let Some(link) = self.links.get(usize::from(cfg.port)) else { return };
        let at = Origin { instance: id, vrid: cfg.vrid, port: cfg.port, ifname: &link.ifname };
        match action {
            Action::Send(t) => match transmit(link, &t) {
                Ok(()) => self.stats.sent += 1,
                Err(e) => {
                    // At most once per advertisement interval: not worth more than debug.
                    log::debug!(target: "lvs::vrrp", "{}: advertisement not sent: {e}", instance_name(&at));
                    self.stats.send_errors += 1;
                }
            },
            Action::AddAddresses(c) => {
                if let Err(e) = self.hooks.add_addresses(&at, &c) {
                    log::error!(target: "lvs::vrrp", "{}: cannot take {:?}: {e}", instance_name(&at), c.addrs);
                    self.stats.hook_errors += 1;
                }
            }
            Action::RemoveAddresses(c) => {
                if let Err(e) = self.hooks.remove_addresses(&at, &c) {
                    log::error!(target: "lvs::vrrp", "{}: cannot give up {:?}: {e}", instance_name(&at), c.addrs);
                    self.stats.hook_errors += 1;
                }
            }
            Action::Announce(a) => {
                let frame = announce_frame(link, cfg.primary, &a);
                for _ in 0..a.count {
                    match frame.as_ref().map(|f| link.packet.send(f)) {
                        Some(Ok(())) => self.stats.announced += 1,
                        _ => self.stats.announce_errors += 1,
                    }
                }
            }
            Action::Notify { event, priority } => {
                log_transition(&at, event, priority);
                self.hooks.notify(&at, event, priority);
            }
        }
    }
}

/// How the log names an instance: keepalived's `VRRP_Instance(NAME)`, with the VRID and
/// interface for the name the library does not keep.
fn instance_name(at: &Origin<'_>) -> String {
    format!("VRRP_Instance(vrid {} on {})", at.vrid, at.ifname)
}

/// A state change (or a lower priority heard as master) as keepalived logs it: `Entering
/// MASTER STATE` and the like; FAULT and a lower-priority master are warnings.
fn log_transition(at: &Origin<'_>, event: Event, priority: u8) {
    let (level, what) = match event {
        Event::Master => (log::Level::Info, "Entering MASTER STATE"),
        Event::Backup => (log::Level::Info, "Entering BACKUP STATE"),
        Event::Fault => (log::Level::Warn, "Entering FAULT STATE"),
        Event::Stop => (log::Level::Info, "Stopped"),
        Event::MasterRxLowerPri => (log::Level::Warn, "Master received an advertisement of lower priority"),
    };
    log::log!(target: "lvs::vrrp", level, "{} {what} (priority {priority})", instance_name(at));
}

/// Sends one advertisement: through the raw socket of its family, or with a virtual MAC to a
/// multicast group as a whole frame through the packet socket.
fn transmit(link: &Link, t: &Transmit) -> io::Result<()> {
    match t.src_mac {
        Some(mac) if t.dst.is_multicast() => link.packet.send(&advert_frame(mac, t)?),
        _ => {
            let sock = if t.dst.is_ipv6() { &link.v6 } else { &link.v4 };
            let sock = sock.as_ref().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            sock.send(t.src, t.dst, &t.bytes)
        }
    }
}

/// The frame announcing `a` on `link`, from the instance whose primary address is `primary`
/// (the source of an IPv6 advertisement); `None` when there is no MAC to announce.
fn announce_frame(link: &Link, primary: IpAddr, a: &Announce) -> Option<Vec<u8>> {
    let mac = a.mac.or(link.mac)?;
    match (a.addr, primary) {
        (IpAddr::V4(addr), _) => Some(gratuitous_arp(mac, addr)),
        (IpAddr::V6(addr), IpAddr::V6(src)) => Some(unsolicited_na(mac, src, addr)),
        (IpAddr::V6(_), IpAddr::V4(_)) => None,
    }
}

/// The IP header fields and the VRRP message of a datagram a raw socket received: for IPv4
/// from the header in front of it, bounded by the header's total length; for IPv6 from what
/// came with it. `None` when it is cut off or the header is bad.
fn advertisement<'a>(buf: &'a [u8], r: &rawip::Received) -> Option<(IpHeader, &'a [u8])> {
    if r.truncated {
        return None;
    }
    let data = buf.get(..r.len)?;
    match r.dst {
        Some(dst) => {
            let ip = IpHeader { src: r.src?, dst: IpAddr::V6(dst), ttl: r.hops? };
            Some((ip, data))
        }
        None => {
            let h = Ipv4HeaderSlice::from_slice(data).ok()?;
            let payload = data.get(h.slice().len()..usize::from(h.total_len()))?;
            let ip = IpHeader { src: IpAddr::V4(h.source_addr()), dst: IpAddr::V4(h.destination_addr()), ttl: h.ttl() };
            Some((ip, payload))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    #[test]
    fn a_gratuitous_arp_names_the_address_twice() {
        let f = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(f.len(), ETH_MIN);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Arp(arp)) = p.net else { panic!("not ARP: {p:?}") };
        assert_eq!(arp.operation(), ArpOperation::REQUEST);
        assert_eq!(arp.sender_hw_addr(), &MAC.0);
        assert_eq!(arp.sender_protocol_addr(), &[192, 0, 2, 100]);
        assert_eq!(arp.target_protocol_addr(), &[192, 0, 2, 100]);
        assert_eq!(&f[0..6], &[0xff; 6]);
    }

    #[test]
    fn an_unsolicited_na_carries_router_override_and_the_mac() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = unsolicited_na(MAC, src, target);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("not IPv6") };
        assert_eq!(ip.header().hop_limit(), 255);
        assert_eq!(ip.header().destination_addr(), ALL_NODES);
        let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("not ICMPv6") };
        let Icmpv6Type::NeighborAdvertisement(h) = icmp.icmp_type() else { panic!("not an NA") };
        assert!(h.router && h.r#override && !h.solicited);
        let body = icmp.payload();
        assert_eq!(&body[..16], &target.octets());
        assert_eq!(&body[16..24], &[2, 1, 0x02, 0, 0, 0, 0, 0x01]);
        // The checksum verifies over the pseudo-header.
        let expect = icmp.icmp_type().calc_checksum(src.octets(), ALL_NODES.octets(), body).unwrap();
        assert_eq!(icmp.checksum(), expect);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    }

    #[test]
    fn a_virtual_mac_advertisement_is_a_whole_frame() {
        let vmac = virtual_mac(Af::V4, 51);
        let t = Transmit {
            src: "192.0.2.2".parse().unwrap(),
            dst: "224.0.0.18".parse().unwrap(),
            src_mac: Some(vmac),
            bytes: vec![0x21, 51, 100, 1, 0, 1, 0, 0, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let f = advert_frame(vmac, &t).unwrap();
        assert_eq!(&f[0..12], &[0x01, 0x00, 0x5e, 0, 0, 0x12, 0, 0, 0x5e, 0, 1, 51]);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else { panic!("not IPv4") };
        assert_eq!((ip.header().ttl(), ip.header().protocol().0, ip.header().dcp().value()), (255, PROTO, 48));
        assert_eq!(ip.payload().payload, &t.bytes[..]);
        let (ip, payload) = advertisement(
            &f[14..],
            &rawip::Received { len: f.len() - 14, src: Some(t.src), ..rawip::Received::default() },
        )
        .unwrap();
        assert_eq!((ip.src, ip.dst, ip.ttl, payload), (t.src, t.dst, 255, &t.bytes[..]));
    }

    #[test]
    fn a_datagram_that_is_cut_off_or_not_ip_is_malformed() {
        let ok = rawip::Received { len: 20, ..rawip::Received::default() };
        assert!(advertisement(&[0u8; 20], &ok).is_none(), "not an IPv4 header");
        let cut = rawip::Received { len: 40, truncated: true, ..rawip::Received::default() };
        assert!(advertisement(&[0u8; 40], &cut).is_none());
        // IPv6 without its hop limit.
        let v6 = rawip::Received {
            len: 8,
            src: Some("fe80::1".parse().unwrap()),
            dst: Some(lvs_core::vrrp::GROUP_V6),
            ..rawip::Received::default()
        };
        assert!(advertisement(&[0u8; 8], &v6).is_none());
        let v6 = rawip::Received { hops: Some(255), ..v6 };
        assert_eq!(advertisement(&[0u8; 8], &v6).map(|(ip, p)| (ip.ttl, p.len())), Some((255, 8)));
    }
}
