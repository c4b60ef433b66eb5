//! Errors by role (the kernel's errno values, named): control calls return [`Error`]; the data
//! path returns a fieldless drop [`Reason`] with a counter slot, never a string.

use alloc::string::String;

/// A control-plane failure. A call that returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `-A` of a service that exists (`EEXIST`).
    #[error("service already exists")]
    ServiceExists,
    /// The service named does not exist (`ESRCH`).
    #[error("no such service")]
    NoSuchService,
    /// `-a` of a real server the service already has (`EEXIST`).
    #[error("destination already exists")]
    DestExists,
    /// The real server named does not exist in the service (`ENOENT`).
    #[error("no such destination")]
    NoSuchDest,
    /// A weight outside 0..=65535 (ipvsadm limits it to what fits in an int, the kernel to `INT_MAX`; we follow ipvsadm's documented range).
    #[error("weight {0} out of range (0..=65535)")]
    WeightOutOfRange(u32),
    /// A real server or service of the other address family where only one is allowed.
    #[error("address family mismatch")]
    FamilyMismatch,
    /// No scheduler of that name is registered.
    #[error("unknown scheduler '{0}' (known: rr wrr lc wlc sed nq dh sh lblc lblcr mh fo ovf)")]
    UnknownScheduler(String),
    /// The scheduler refused the service (for example `mh` with more servers than table slots).
    #[error("scheduler refused the service: {0}")]
    SchedulerRejected(&'static str),
    /// A persistence netmask that is not a contiguous prefix of the family.
    #[error("bad persistence netmask")]
    BadNetmask,
    /// A persistence timeout outside 1 s ..= 31 days.
    #[error("bad persistence timeout {0}")]
    BadTimeout(u32),
    /// Thresholds where the lower exceeds the upper.
    #[error("lower threshold {lower} is above upper threshold {upper}")]
    BadThreshold {
        /// `-x`.
        upper: u32,
        /// `-y`.
        lower: u32,
    },
    /// A port-0 service that is not persistent ("port zero only supported in persistent services").
    #[error("port zero is only supported by persistent services")]
    PortZeroNotPersistent,
    /// A fwmark service with mark 0.
    #[error("firewall mark must be non-zero")]
    ZeroFwmark,
    /// A GUE tunnel server without a UDP port (`ip_vs_add_dest`: "tunnel port is zero").
    #[error("tunnel port is zero")]
    ZeroTunnelPort,
    /// [`ServiceConfig::midflow_hash`] where it cannot keep its promise (`EINVAL`): with a
    /// scheduler other than `mh` or `sh`, or with a real server other than DR or TUN. An lvs
    /// extension: the kernel has no such option.
    ///
    /// [`ServiceConfig::midflow_hash`]: crate::service::ServiceConfig::midflow_hash
    #[error("midflow hash: {0}")]
    MidflowHash(&'static str),
    /// Something IPVS can express that this library does not do yet.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The connection table is full.
    #[error("connection table full")]
    TableFull,
    /// `--start-daemon` for a role that already runs (`EEXIST`).
    #[error("sync daemon already running as {0}")]
    DaemonRunning(&'static str),
    /// `--stop-daemon` for a role that does not run (`ESRCH`).
    #[error("no sync daemon running as {0}")]
    NoDaemon(&'static str),
    /// A sync sysctl out of its range (named).
    #[error("invalid value for {0}")]
    BadSyncParam(&'static str),
    /// `--add-laddr` of a local address the service already has (`EEXIST`).
    #[error("local address already exists")]
    LaddrExists,
    /// `--del-laddr` of a local address the service does not have (`ENOENT`).
    #[error("no such local address")]
    NoSuchLaddr,
    /// A line of an `ipvsadm -R` rule file could not be read.
    #[error("line {line}: {msg}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

impl Error {
    /// The kernel's errno for this error (Linux numbering), what `ip_vs_ctl.c` would return for
    /// the same request and what ipvsadm's `ipvs_strerror` reads.
    pub fn errno(&self) -> i32 {
        const ESRCH: i32 = 3;
        const ENOENT: i32 = 2;
        const ENOMEM: i32 = 12;
        const EEXIST: i32 = 17;
        const EINVAL: i32 = 22;
        const ERANGE: i32 = 34;
        const EOPNOTSUPP: i32 = 95;
        const EAFNOSUPPORT: i32 = 97;
        match self {
            Error::ServiceExists | Error::DestExists | Error::DaemonRunning(_) | Error::LaddrExists => EEXIST,
            Error::NoSuchService | Error::NoDaemon(_) => ESRCH,
            Error::NoSuchDest | Error::UnknownScheduler(_) | Error::NoSuchLaddr => ENOENT,
            Error::WeightOutOfRange(_) | Error::BadThreshold { .. } => ERANGE,
            Error::FamilyMismatch => EAFNOSUPPORT,
            Error::Unsupported(_) => EOPNOTSUPP,
            Error::TableFull => ENOMEM,
            Error::SchedulerRejected(_)
            | Error::BadNetmask
            | Error::BadTimeout(_)
            | Error::PortZeroNotPersistent
            | Error::ZeroFwmark
            | Error::ZeroTunnelPort
            | Error::BadSyncParam(_)
            | Error::MidflowHash(_)
            | Error::Parse { .. } => EINVAL,
        }
    }
}

/// Why the data path dropped a packet. Every variant has a counter slot
/// ([`Reason::index`]) in the director's drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The frame could not be parsed (truncated, bad header lengths, bad version).
    Malformed,
    /// A TCP packet for a service without a connection that is not a SYN (no sloppy TCP).
    NotSyn,
    /// The scheduler found no real server (the client got ICMP port unreachable).
    NoDest,
    /// The connection table is full.
    TableFull,
    /// The packet would exceed the tunnel MTU with DF set, or as IPv6 (the client got
    /// "fragmentation needed" / "packet too big"), or could not be carried in fragments.
    MtuExceeded,
    /// No neighbour entry (MAC) for the next hop.
    UnknownNeighbour,
    /// A non-first fragment whose first fragment was never seen.
    StrayFragment,
    /// The connection's real server was deleted (`expire_nodest_conn` semantics), or a tunnel
    /// connection has none here (a synced entry left unbound: no server, no tunnel type).
    DestUnavailable,
    /// TTL / hop limit would reach zero.
    TtlExpired,
    /// A packet for a port-0 or other-port service that is not persistent.
    PortMismatch,
    /// The frame has no headroom left for the header the method must add.
    NoHeadroom,
    /// A packet this director cannot handle: an SCTP fragment whose port NAT must change (its
    /// CRC32c covers the whole packet, and the director does not reassemble).
    Unsupported,
    /// The next hop sits behind a port the director's configuration does not have.
    UnknownPort,
    /// A FullNAT connection could not get a local address and port: the service has none, or
    /// every port of every one is in use (never a shared port).
    NoLocalPort,
    /// An ACK to a SYN-proxied service with no connection whose cookie is not good (forged,
    /// too old, for another flow): dropped, never answered.
    BadCookie,
    /// Not an error: a client segment the SYN proxy keeps (its copy held for the real server,
    /// or the bare ACK of a deferred connection); the frame itself is done with.
    SynproxyHeld,
    /// A new connection shed by the `drop_packet` defence (`ip_vs_todrop`).
    DropPacket,
    /// A new connection beyond its service's `max_conn`.
    ServiceConnLimit,
    /// A new connection beyond its real server's `max_conn`.
    DestConnLimit,
    /// The first packet of a flow to a service with the SIP persistence engine (`--pe sip`)
    /// that carries no Call-ID the kernel would take (or is not UDP): `ip_vs_sip_fill_param`
    /// fails and `ip_vs_sched_persist` has the packet dropped.
    NoCallId,
}

impl Reason {
    /// Number of reasons (size of the counter array).
    pub const COUNT: usize = 20;

    /// All reasons, in counter order.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Malformed,
        Reason::NotSyn,
        Reason::NoDest,
        Reason::TableFull,
        Reason::MtuExceeded,
        Reason::UnknownNeighbour,
        Reason::StrayFragment,
        Reason::DestUnavailable,
        Reason::TtlExpired,
        Reason::PortMismatch,
        Reason::NoHeadroom,
        Reason::Unsupported,
        Reason::UnknownPort,
        Reason::NoLocalPort,
        Reason::BadCookie,
        Reason::SynproxyHeld,
        Reason::DropPacket,
        Reason::ServiceConnLimit,
        Reason::DestConnLimit,
        Reason::NoCallId,
    ];

    /// The counter slot of this reason.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs and listings.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::NotSyn => "not-syn",
            Reason::NoDest => "no-dest",
            Reason::TableFull => "table-full",
            Reason::MtuExceeded => "mtu-exceeded",
            Reason::UnknownNeighbour => "unknown-neighbour",
            Reason::StrayFragment => "stray-fragment",
            Reason::DestUnavailable => "dest-unavailable",
            Reason::TtlExpired => "ttl-expired",
            Reason::PortMismatch => "port-mismatch",
            Reason::NoHeadroom => "no-headroom",
            Reason::Unsupported => "unsupported",
            Reason::UnknownPort => "unknown-port",
            Reason::NoLocalPort => "no-local-port",
            Reason::BadCookie => "bad-cookie",
            Reason::SynproxyHeld => "synproxy-held",
            Reason::DropPacket => "drop-packet",
            Reason::ServiceConnLimit => "service-conn-limit",
            Reason::DestConnLimit => "dest-conn-limit",
            Reason::NoCallId => "no-call-id",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_slots_are_dense() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{}", r.as_str());
        }
    }

    #[test]
    fn messages_are_short_and_lowercase() {
        let e = Error::Parse { line: 3, msg: "unknown option -Q".into() };
        assert_eq!(alloc::format!("{e}"), "line 3: unknown option -Q");
        assert_eq!(alloc::format!("{}", Error::NoSuchService), "no such service");
    }
}
