//! Connection synchronisation between directors (`ip_vs_sync.c`), sans-IO: the message formats
//! ([`wire`]), the master's send queue ([`master`]), when a connection is worth a record
//! ([`needed`]), and the daemon settings `ipvsadm --start-daemon` and the `sync_*` sysctls give.
//!
//! The [`Director`](crate::Director) drives this room: a master queues records from its packet
//! path and hands out datagrams with `poll_sync`; a backup feeds received datagrams to
//! `handle_sync`. Sockets live in `lvs-dataplane`.
//!
//! Beyond the kernel, a backup may ask a master for its whole table
//! ([`ResyncMessage`](crate::director::ResyncMessage)): the master then streams every entry,
//! rate-limited, in ordinary records.

pub mod master;
pub mod wire;

use alloc::string::String;
use core::net::{IpAddr, Ipv4Addr};

use crate::proto::tcp::TcpState;
use crate::wire::ipproto;
pub use master::{Datagram, Master};
pub use wire::Version;

/// The kernel's default multicast group, 224.0.0.81 (`IP_VS_SYNC_GROUP`).
pub const DEFAULT_GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81));
/// The kernel's default UDP port (`IP_VS_SYNC_PORT`).
pub const DEFAULT_PORT: u16 = 8848;
/// The sync id when none is given: ipvsadm 1.31 sends 0 (its man page says so; only its usage
/// text says 255). A backup with syncid 0 takes every syncid.
pub const DEFAULT_SYNCID: u8 = 0;
/// How long a partly filled message may wait before it is sent (`IPVS_SYNC_FLUSH_TIME`, 2 s).
pub const FLUSH_NS: u64 = 2_000_000_000;
/// The most sync sockets (`IPVS_SYNC_PORTS_MAX`).
pub const PORTS_MAX: u8 = 16;

/// Which side of the sync a daemon is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends the connections it makes (`--start-daemon master`).
    Master,
    /// Takes the connections a master sends (`--start-daemon backup`).
    Backup,
}

impl Role {
    /// The word ipvsadm uses.
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// A sync daemon's settings, as `ipvsadm --start-daemon` gives them (`struct
/// ipvs_sync_daemon_cfg`). Zero values mean "the kernel's default" until
/// [`DaemonConfig::resolved`] fills them in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DaemonConfig {
    /// `--mcast-interface`: the interface that carries sync traffic.
    pub ifname: String,
    /// `--syncid`: messages carry it; a backup with syncid 0 takes every syncid.
    pub syncid: u8,
    /// `--sync-maxlen`: the largest message payload (0 = the link MTU less the IP and UDP headers).
    pub maxlen: u16,
    /// `--mcast-group` (`None` = 224.0.0.81); an IPv6 group makes the daemon speak IPv6.
    pub group: Option<IpAddr>,
    /// `--mcast-port` (0 = 8848). Socket `i` of `sync_ports` uses `port + i`.
    pub port: u16,
    /// `--mcast-ttl` (0 = 1).
    pub ttl: u8,
}

impl DaemonConfig {
    /// A daemon on `ifname` with every other setting at ipvsadm's default (syncid 0).
    pub fn new(ifname: &str) -> Self {
        DaemonConfig { ifname: ifname.into(), syncid: DEFAULT_SYNCID, maxlen: 0, group: None, port: 0, ttl: 0 }
    }

    /// The settings in force once started (`start_sync_thread`): group 224.0.0.81, port 8848
    /// and TTL 1 by default; `maxlen` clamped to 1..=65535−headers for a master (1024.. for a
    /// backup) or, when not given, the MTU less the IP and UDP headers — 1500 for a master, the
    /// interface's `mtu` (at least 1500) for a backup.
    pub fn resolved(&self, role: Role, mtu: u16) -> Self {
        let group = self.group.unwrap_or(DEFAULT_GROUP);
        let hlen: u16 = if group.is_ipv6() { 40 + 8 } else { 20 + 8 };
        let (mtu, min) = match role {
            Role::Master => (1500, 1),
            Role::Backup => (mtu.max(1500), 1024),
        };
        let maxlen = if self.maxlen == 0 { mtu - hlen } else { self.maxlen.clamp(min, u16::MAX - hlen) };
        DaemonConfig {
            ifname: self.ifname.clone(),
            syncid: self.syncid,
            maxlen,
            group: Some(group),
            port: if self.port == 0 { DEFAULT_PORT } else { self.port },
            ttl: if self.ttl == 0 { 1 } else { self.ttl },
        }
    }

    /// The multicast group in force.
    pub fn group(&self) -> IpAddr {
        self.group.unwrap_or(DEFAULT_GROUP)
    }
}

/// The sync sysctls (`net.ipv4.vs.sync_*`), with the kernel's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncParams {
    /// `sync_version`: the format a master sends (a backup reads both).
    pub version: Version,
    /// `sync_threshold`, first value: a connection is sent when its packet count modulo
    /// `period` equals this (default 3).
    pub threshold: u32,
    /// `sync_threshold`, second value (default 50); 0 = only once, at `threshold` packets.
    pub period: u32,
    /// `sync_refresh_period` in seconds (0 = off): do not send an unchanged connection again
    /// before this much of its timer has passed.
    pub refresh_period: u32,
    /// `sync_retries` (0..=3): resend a refresh this many times, every `refresh_period / 8`.
    pub retries: u8,
    /// `sync_persist_mode`: for persistent services send only the templates.
    pub persist_mode: bool,
    /// `sync_qlen_max`: full messages a master queues before it drops new ones.
    pub qlen_max: usize,
    /// `sync_ports`: sockets (and ports, `port + i`) per daemon, 1..=16.
    pub ports: u8,
    /// `sync_sock_size`: socket buffer size in bytes for the I/O side (0 = system default).
    pub sock_size: u32,
    /// Beyond the kernel: records per second a master streams when a backup asks for the whole
    /// table (0 = never answer, and a backup does not ask).
    pub resync_rate: u32,
}

impl Default for SyncParams {
    fn default() -> Self {
        SyncParams {
            version: Version::V1,
            threshold: 3,
            period: 50,
            refresh_period: 0,
            retries: 0,
            persist_mode: false,
            qlen_max: 8192,
            ports: 1,
            sock_size: 0,
            resync_rate: 0,
        }
    }
}

impl SyncParams {
    /// Checks the values as the sysctl handlers do: threshold below a non-zero period,
    /// retries at most 3, 1..=16 ports.
    ///
    /// # Errors
    /// [`crate::Error::BadSyncParam`] naming the sysctl.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.period != 0 && self.threshold >= self.period {
            return Err(crate::Error::BadSyncParam("sync_threshold"));
        }
        if self.retries > 3 {
            return Err(crate::Error::BadSyncParam("sync_retries"));
        }
        if self.ports == 0 || self.ports > PORTS_MAX {
            return Err(crate::Error::BadSyncParam("sync_ports"));
        }
        Ok(())
    }
}

/// What a master knows of an entry when deciding whether to send it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// A persistence template.
    pub template: bool,
    /// Controlled by a template (`in_persistence`).
    pub persistent: bool,
    /// IP protocol.
    pub proto: u8,
    /// Protocol state number.
    pub state: u8,
    /// The entry's current timeout in milliseconds.
    pub timeout_ms: u32,
}

/// An entry's sync bookkeeping: `cp->old_state` and `cp->sync_endtime` (milliseconds on a
/// wrapping clock, the low two bits counting retries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// The state last sent.
    pub old_state: u8,
    /// When the entry would have expired at its last send, in wrapping milliseconds.
    pub endtime: u32,
}

/// Whether a master sends entry `c` now that it has seen `pkts` packets
/// (`ip_vs_sync_conn_needed`): TCP only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and
/// TIME_WAIT, SCTP only in ESTABLISHED, the SHUTDOWN states and CLOSED, at once on a change to
/// any of them but ESTABLISHED; otherwise when
/// `pkts % period == threshold` (templates on every packet of their connections), and with a
/// refresh period not again before the timer has moved that far (retries aside). Updates `mark`
/// when it says yes.
pub fn needed(p: &SyncParams, c: &Candidate, mark: &mut Mark, pkts: u32, now_ms: u32) -> bool {
    let n = now_ms.wrapping_add(c.timeout_ms) & !3;
    let orig = mark.endtime;
    if c.template {
        // Templates go by the packet count of their connections only.
    } else if p.persist_mode && c.persistent {
        return false;
    } else if c.proto == ipproto::TCP {
        let st = TcpState::from_u8(c.state);
        let synced = matches!(
            st,
            Some(
                TcpState::Established | TcpState::FinWait | TcpState::Close | TcpState::CloseWait | TcpState::TimeWait
            )
        );
        if !synced {
            return false;
        }
        if c.state != mark.old_state && st != Some(TcpState::Established) {
            mark.old_state = c.state;
            mark.endtime = n;
            return true;
        }
    } else if c.proto == ipproto::SCTP {
        use crate::proto::sctp::state;
        let synced = matches!(
            c.state,
            state::ESTABLISHED
                | state::SHUTDOWN_SENT
                | state::SHUTDOWN_RECEIVED
                | state::SHUTDOWN_ACK_SENT
                | state::CLOSED
        );
        if !synced {
            return false;
        }
        if c.state != mark.old_state && c.state != state::ESTABLISHED {
            mark.old_state = c.state;
            mark.endtime = n;
            return true;
        }
    }
    let mut n = n;
    if p.refresh_period > 0 {
        let diff = n.wrapping_sub(orig) as i32;
        let min_diff = (c.timeout_ms >> 1).max(10_000);
        let refresh_ms = p.refresh_period.saturating_mul(1000);
        if diff.unsigned_abs() < refresh_ms.min(min_diff) {
            let retries = orig & 3;
            if retries >= u32::from(p.retries) {
                return false;
            }
            let resend_at = orig.wrapping_sub(c.timeout_ms).wrapping_add(refresh_ms >> 3);
            if (now_ms.wrapping_sub(resend_at) as i32) < 0 {
                return false;
            }
            n |= retries + 1;
        }
    }
    if p.period > 0 {
        if !c.template && pkts % p.period != p.threshold {
            return false;
        }
    } else if p.refresh_period == 0 && pkts != p.threshold {
        return false;
    }
    mark.old_state = c.state;
    mark.endtime = n;
    true
}

#[cfg(test)]
mod tests;
