//! One `ipvsadm` command line read as ipvsadm 1.31 reads it: its words split as popt splits
//! them, each option taken as `parse_options` takes it (value ranges, defaults, the order it
//! sees them in), the checks of `process_options` (`generic_opt_check`'s table of options each
//! command takes, the zero-port, one-packet, forwarding and tunnel rules) and, when something
//! is wrong, ipvsadm's own message and exit status. What comes out is a [`Request`]: a
//! [`Command`] for the director, a listing, `-S`, `-R` or `-v`.
//!
//! DPVS's ipvsadm adds FullNAT's verbs to the same table: `-P`/`--add-laddr`,
//! `-Q`/`--del-laddr` and `-G`/`--get-laddr` with `-z`/`--laddr` for a service's local
//! addresses, `--fullnat` (and `-b` on `-a`/`-e`, where ipvsadm's `--sched-flags` has no
//! business) as a forwarding method, and `--proxy-protocol` and `-j`/`--synproxy enable|disable`
//! on `-A`/`-E`.
//!
//! lvs adds one option of its own, which neither ipvsadm nor DPVS knows: `--midflow-hash` on
//! `-A`/`-E` ([`ServiceConfig::midflow_hash`]; the kernel's nearest is the global `sloppy_tcp`
//! sysctl). Like `-o`, it is a switch: an `-E` without it turns it off.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::listing::{Format, Listing};
use crate::addr::{Af, Proto, ServiceKey};
use crate::dest::{FwdMethod, RealServer, TunConfig, TunCsum, TunType};
use crate::director::Command;
use crate::laddr::ClientAddr;
use crate::persist::sip::PersistEngine;
use crate::service::{Netmask, SchedFlags, ServiceConfig, DEFAULT_PERSIST_TIMEOUT, MAX_PERSIST_TIMEOUT};
use crate::sync::{DaemonConfig, Role};
use crate::wire::proxy::ProxyVersion;

/// What ipvsadm prints on standard error and exits with when it refuses a command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The exit status: 2 for what ipvsadm catches itself (`fail(2, ..)`), 255 for popt's
    /// errors and `tryhelp_exit(-1)`.
    pub status: u8,
    /// The text, without the final newline.
    pub message: String,
    /// Whether ipvsadm exits on the spot (`fail`, `tryhelp_exit`) rather than returning from
    /// `process_options` (popt's errors, and what the kernel refuses): inside `-R`, the first
    /// ends the restore and the second goes on with the next line.
    pub exits: bool,
}

impl Failure {
    /// `fail(2, ..)`.
    fn usage(message: impl Into<String>) -> Failure {
        Failure { status: 2, message: message.into(), exits: true }
    }

    /// `tryhelp_exit(argv[0], -1)`.
    fn try_help() -> Failure {
        Failure {
            status: 255,
            message: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.".to_string(),
            exits: true,
        }
    }

    /// A failure `process_options` returns instead of exiting: popt's, or what the kernel
    /// refuses (exit status 255 when it ends the invocation).
    pub(super) fn returned(message: impl Into<String>) -> Failure {
        Failure { status: 255, message: message.into(), exits: false }
    }
}

/// What an ipvsadm command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A change for the director (`-A -E -D -a -e -d -C -Z --set --start-daemon --stop-daemon`).
    Apply(Command),
    /// `-L`/`-l` with its options.
    List(Listing),
    /// `-S` (`-n` or not).
    Save,
    /// `-R`: rules from standard input.
    Restore,
    /// `-v`.
    Version,
    /// `-h`.
    Help,
    /// DPVS's `-G`: the local addresses of one service, or of every service.
    Laddrs(Option<ServiceKey>),
}

/// ipvsadm's commands, in its `CMD_*` order (the rows of `commands_v_options`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
}

impl Cmd {
    /// `cmdnames`.
    fn name(self) -> &'static str {
        [
            "add-service",
            "edit-service",
            "delete-service",
            "flush",
            "list",
            "add-server",
            "delete-server",
            "edit-server",
            "set",
            "start-daemon",
            "stop-daemon",
            "restore",
            "save",
            "zero",
            "add-laddr",
            "del-laddr",
            "get-laddr",
        ][self as usize]
    }

    /// The command's row of `commands_v_options`, one character per option in `OPTNAMES`
    /// order: `+` compulsory, `x` illegal, `1` at most one of these, blank optional. The last
    /// columns are DPVS's options and then lvs's `--midflow-hash`, and the last rows DPVS's
    /// local-address commands (where DPVS's `--ifname`, a DPDK port, has no counterpart).
    fn row(self) -> &'static [u8; OPTS] {
        match self {
            Cmd::Add | Cmd::Edit => b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxxx   ",
            Cmd::Del => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b" 11xxxxxxxxx11       xxxxxxx xxxxxxxxx",
            Cmd::AddDest | Cmd::EditDest => b"xx+xxx+    xxxxxxxxxxxxxxxxxx     xxxx",
            Cmd::DelDest => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StartDaemon => b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxxxx",
            Cmd::StopDaemon => b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxxxx",
            Cmd::Save => b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::AddLaddr | Cmd::DelLaddr => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+xxx",
            Cmd::GetLaddr => b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        }
    }
}

/// How many options the table knows (`NUMBER_OF_OPT`): ipvsadm 1.31's 34, then DPVS's, then
/// lvs's.
const OPTS: usize = 38;

/// `optnames`: an option's number is its index here (`OPTC_*`).
const OPTNAMES: [&str; OPTS] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
    "local-address",
    "proxy-protocol",
    "synproxy",
    "midflow-hash",
];

// The `OPTC_*` numbers this parser refers to by name.
const O_NUMERIC: usize = 0;
const O_CONNECTION: usize = 1;
const O_SERVICE: usize = 2;
const O_PERSISTENT: usize = 4;
const O_TIMEOUT: usize = 12;
const O_DAEMON: usize = 13;
const O_STATS: usize = 14;
const O_RATE: usize = 15;
const O_THRESHOLDS: usize = 16;
const O_PERSISTENTCONN: usize = 17;
const O_TUN_TYPE: usize = 29;
const O_TUN_PORT: usize = 30;
const O_TUN_NOCSUM: usize = 31;
const O_TUN_CSUM: usize = 32;
const O_TUN_REMCSUM: usize = 33;
/// The last of ipvsadm's tunnel options.
const O_TUN_LAST: usize = 33;
const O_LADDR: usize = 34;
const O_PROXY_PROTOCOL: usize = 35;
const O_SYNPROXY: usize = 36;
const O_MIDFLOW_HASH: usize = 37;

/// What an option carries, as its popt table entry says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Value,
    /// `POPT_ARGFLAG_OPTIONAL`: the next word is its value unless it starts with `-`.
    Optional,
}

/// ipvsadm's option table (`options_table`): long name, short letter, argument, and the
/// `OPTC_*` it sets (`None` for the commands and for `-6`/`--sort`, which set none).
const TABLE: [(&str, Option<char>, Arg, Tag); 66] = [
    ("add-service", Some('A'), Arg::None, Tag::Cmd(Cmd::Add)),
    ("edit-service", Some('E'), Arg::None, Tag::Cmd(Cmd::Edit)),
    ("delete-service", Some('D'), Arg::None, Tag::Cmd(Cmd::Del)),
    ("clear", Some('C'), Arg::None, Tag::Cmd(Cmd::Flush)),
    ("list", Some('L'), Arg::None, Tag::Cmd(Cmd::List)),
    ("list", Some('l'), Arg::None, Tag::Cmd(Cmd::List)),
    ("zero", Some('Z'), Arg::None, Tag::Cmd(Cmd::Zero)),
    ("add-server", Some('a'), Arg::None, Tag::Cmd(Cmd::AddDest)),
    ("edit-server", Some('e'), Arg::None, Tag::Cmd(Cmd::EditDest)),
    ("delete-server", Some('d'), Arg::None, Tag::Cmd(Cmd::DelDest)),
    ("set", None, Arg::None, Tag::Cmd(Cmd::Timeout)),
    ("help", Some('h'), Arg::None, Tag::Help),
    ("version", Some('v'), Arg::None, Tag::Version),
    ("restore", Some('R'), Arg::None, Tag::Cmd(Cmd::Restore)),
    ("save", Some('S'), Arg::None, Tag::Cmd(Cmd::Save)),
    ("start-daemon", None, Arg::Value, Tag::Cmd(Cmd::StartDaemon)),
    ("stop-daemon", None, Arg::Value, Tag::Cmd(Cmd::StopDaemon)),
    ("tcp-service", Some('t'), Arg::Value, Tag::Service(Some(Proto::Tcp))),
    ("udp-service", Some('u'), Arg::Value, Tag::Service(Some(Proto::Udp))),
    ("sctp-service", None, Arg::Value, Tag::Service(Some(Proto::Sctp))),
    ("fwmark-service", Some('f'), Arg::Value, Tag::Service(None)),
    ("scheduler", Some('s'), Arg::Value, Tag::Opt(3)),
    ("persistent", Some('p'), Arg::Optional, Tag::Opt(O_PERSISTENT)),
    ("netmask", Some('M'), Arg::Value, Tag::Opt(5)),
    ("real-server", Some('r'), Arg::Value, Tag::Opt(6)),
    ("masquerading", Some('m'), Arg::None, Tag::Fwd(FwdMethod::Masq)),
    ("ipip", Some('i'), Arg::None, Tag::Fwd(FwdMethod::Tunnel)),
    ("gatewaying", Some('g'), Arg::None, Tag::Fwd(FwdMethod::Route)),
    ("weight", Some('w'), Arg::Value, Tag::Opt(8)),
    ("u-threshold", Some('x'), Arg::Value, Tag::Opt(9)),
    ("l-threshold", Some('y'), Arg::Value, Tag::Opt(10)),
    ("numeric", Some('n'), Arg::None, Tag::Opt(O_NUMERIC)),
    ("connection", Some('c'), Arg::None, Tag::Opt(O_CONNECTION)),
    ("mcast-interface", None, Arg::Value, Tag::Opt(11)),
    ("syncid", None, Arg::Value, Tag::Opt(19)),
    ("timeout", None, Arg::None, Tag::Opt(O_TIMEOUT)),
    ("daemon", None, Arg::None, Tag::Opt(O_DAEMON)),
    ("stats", None, Arg::None, Tag::Opt(O_STATS)),
    ("rate", None, Arg::None, Tag::Opt(O_RATE)),
    ("thresholds", None, Arg::None, Tag::Opt(O_THRESHOLDS)),
    ("persistent-conn", None, Arg::None, Tag::Opt(O_PERSISTENTCONN)),
    ("nosort", None, Arg::None, Tag::Opt(18)),
    ("sort", None, Arg::None, Tag::Sort),
    ("exact", Some('X'), Arg::None, Tag::Opt(20)),
    ("ipv6", Some('6'), Arg::None, Tag::Ipv6),
    ("ops", Some('o'), Arg::None, Tag::Opt(21)),
    ("pe", None, Arg::Value, Tag::Opt(22)),
    ("sched-flags", Some('b'), Arg::Value, Tag::Opt(23)),
    ("mcast-group", None, Arg::Value, Tag::Opt(24)),
    ("mcast-port", None, Arg::Value, Tag::Opt(25)),
    ("mcast-ttl", None, Arg::Value, Tag::Opt(26)),
    ("sync-maxlen", None, Arg::Value, Tag::Opt(27)),
    ("tun-info", None, Arg::None, Tag::Opt(28)),
    ("tun-type", None, Arg::Value, Tag::Opt(O_TUN_TYPE)),
    ("tun-port", None, Arg::Value, Tag::Opt(O_TUN_PORT)),
    ("tun-nocsum", None, Arg::None, Tag::Opt(O_TUN_NOCSUM)),
    ("tun-csum", None, Arg::None, Tag::Opt(O_TUN_CSUM)),
    ("tun-remcsum", None, Arg::None, Tag::Opt(O_TUN_REMCSUM)),
    ("add-laddr", Some('P'), Arg::None, Tag::Cmd(Cmd::AddLaddr)),
    ("del-laddr", Some('Q'), Arg::None, Tag::Cmd(Cmd::DelLaddr)),
    ("get-laddr", Some('G'), Arg::None, Tag::Cmd(Cmd::GetLaddr)),
    ("fullnat", None, Arg::None, Tag::Fwd(FwdMethod::FullNat)),
    ("laddr", Some('z'), Arg::Value, Tag::Opt(O_LADDR)),
    ("proxy-protocol", None, Arg::Value, Tag::Opt(O_PROXY_PROTOCOL)),
    ("synproxy", Some('j'), Arg::Value, Tag::Opt(O_SYNPROXY)),
    ("midflow-hash", None, Arg::None, Tag::Opt(O_MIDFLOW_HASH)),
];

/// DPVS's `-b`, `--fullnat`, which a real-server command reads in place of `--sched-flags`.
const FULLNAT_B: (Arg, Tag) = (Arg::None, Tag::Fwd(FwdMethod::FullNat));

/// What an option does when ipvsadm's switch meets it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Cmd(Cmd),
    Help,
    Version,
    /// `-t`, `-u`, `--sctp-service`; `-f` (no protocol).
    Service(Option<Proto>),
    Fwd(FwdMethod),
    Ipv6,
    Sort,
    /// Any other option, by its `OPTC_*` number.
    Opt(usize),
}

fn by_long(name: &str) -> Option<(Arg, Tag)> {
    TABLE.iter().find(|o| o.0 == name).map(|o| (o.2, o.3))
}

/// A popt error, printed as `WORD: WHAT` (`poptBadOption`, `poptStrerror`).
struct PoptError {
    word: String,
    what: &'static str,
}

/// The words of a command line as popt hands them out (`poptGetNextOpt`): `--long[=value]`,
/// bundled short options `-Ln`, a short option's value glued on (`-w3`) or in the next word,
/// and words that are no option kept aside (`poptGetArg`), all of them after `--`.
struct Popt<'a, S> {
    args: &'a [S],
    next: usize,
    /// The rest of a bundle of short options and the word it came from.
    bundle: Option<(String, String)>,
    leftovers: Vec<String>,
    only_args: bool,
    /// Set once the command is a real-server one: `-b` is then DPVS's `--fullnat`.
    b_is_fullnat: bool,
}

impl<'a, S: AsRef<str>> Popt<'a, S> {
    fn new(args: &'a [S]) -> Self {
        Popt { args, next: 0, bundle: None, leftovers: Vec::new(), only_args: false, b_is_fullnat: false }
    }

    fn by_short(&self, c: char) -> Option<(Arg, Tag)> {
        if c == 'b' && self.b_is_fullnat {
            return Some(FULLNAT_B);
        }
        TABLE.iter().find(|o| o.1 == Some(c)).map(|o| (o.2, o.3))
    }

    /// The value of an option whose word held none.
    fn value(&mut self, arg: Arg, word: &str) -> Result<Option<String>, PoptError> {
        match self.args.get(self.next).map(AsRef::as_ref) {
            None if arg == Arg::Optional => Ok(None),
            None => Err(PoptError { word: word.to_string(), what: "missing argument" }),
            Some(v) if arg == Arg::Optional && v.starts_with('-') => Ok(None),
            Some(v) => {
                self.next += 1;
                Ok(Some(v.to_string()))
            }
        }
    }

    /// The next option with its value, `None` when the words are used up.
    fn next_opt(&mut self) -> Result<Option<(Tag, Option<String>, String)>, PoptError> {
        loop {
            if let Some((rest, word)) = self.bundle.take() {
                let mut chars = rest.chars();
                let Some(c) = chars.next() else { continue };
                let rest = chars.as_str().to_string();
                let (arg, tag) =
                    self.by_short(c).ok_or_else(|| PoptError { word: word.clone(), what: "unknown option" })?;
                if arg == Arg::None {
                    if !rest.is_empty() {
                        self.bundle = Some((rest, word.clone()));
                    }
                    return Ok(Some((tag, None, word)));
                }
                let v = if rest.is_empty() { self.value(arg, &word)? } else { Some(rest) };
                return Ok(Some((tag, v, word)));
            }
            let Some(word) = self.args.get(self.next).map(|w| w.as_ref().to_string()) else { return Ok(None) };
            self.next += 1;
            if self.only_args || word == "-" || !word.starts_with('-') {
                self.leftovers.push(word);
                continue;
            }
            if word == "--" {
                self.only_args = true;
                continue;
            }
            if let Some(long) = word.strip_prefix("--") {
                let (name, glued) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let (arg, tag) =
                    by_long(name).ok_or_else(|| PoptError { word: word.clone(), what: "unknown option" })?;
                let v = match (arg, glued) {
                    (Arg::None, Some(_)) => return Err(PoptError { word, what: "option does not take an argument" }),
                    (Arg::None, None) => None,
                    (_, Some(v)) => Some(v),
                    (_, None) => self.value(arg, &word)?,
                };
                return Ok(Some((tag, v, word)));
            }
            self.bundle = Some((word.get(1..).unwrap_or_default().to_string(), word));
        }
    }
}

/// ipvsadm's `ipvs_command_entry` as options fill it in.
struct Entry {
    af: Option<Af>,
    proto: Option<Proto>,
    addr: IpAddr,
    port: u16,
    fwmark: u32,
    sched: String,
    persistent: Option<u32>,
    /// `svc.netmask`: an IPv4 mask word, or a prefix length once the service is IPv6.
    netmask: Netmask,
    ops: bool,
    /// `svc.pe_name`: `--pe`'s word (ipvsadm cuts it to 16 bytes, which makes no other name
    /// `sip` or empty).
    pe: Option<String>,
    sched_flags: Option<String>,
    dest: IpAddr,
    dest_port: u16,
    fwd: FwdMethod,
    /// `--tun-type` and `--tun-port` (ipip and no port unless given); the checksum flags are
    /// read from the options seen once they are checked.
    tun_type: TunType,
    tun_port: u16,
    weight: u32,
    upper: u32,
    lower: u32,
    daemon: DaemonConfig,
    role: Role,
    timeouts: [u32; 3],
    /// DPVS's `-z`.
    laddr: IpAddr,
    /// DPVS's `--proxy-protocol`.
    client_addr: ClientAddr,
    /// DPVS's `-j enable`.
    synproxy: bool,
    /// lvs's `--midflow-hash`.
    midflow_hash: bool,
}

impl Entry {
    fn new() -> Self {
        Entry {
            af: None,
            proto: None,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            fwmark: 0,
            sched: String::new(),
            persistent: None,
            netmask: Netmask::V4(Ipv4Addr::BROADCAST),
            ops: false,
            pe: None,
            sched_flags: None,
            dest: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dest_port: 0,
            fwd: FwdMethod::Route,
            tun_type: TunType::Ipip,
            tun_port: 0,
            weight: 1,
            upper: 0,
            lower: 0,
            // The entry starts zeroed: without --syncid the kernel gets 0, which a backup reads
            // as "every syncid".
            daemon: DaemonConfig { syncid: 0, ..DaemonConfig::new("") },
            role: Role::Master,
            timeouts: [0; 3],
            laddr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_addr: ClientAddr::Toa,
            synproxy: false,
            midflow_hash: false,
        }
    }

    fn key(&self) -> ServiceKey {
        if self.fwmark != 0 {
            ServiceKey::Fwmark { mark: self.fwmark, af: self.af.unwrap_or(Af::V4) }
        } else {
            ServiceKey::Inet { proto: self.proto.unwrap_or(Proto::Tcp), addr: self.addr, port: self.port }
        }
    }
}

/// `string_to_number`: `strtol` in base 10 (leading blanks and a sign allowed, nothing after
/// the digits) when the value lies in `min..=max`.
fn number_in(s: &str, min: i64, max: i64) -> Option<i64> {
    let n: i64 = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']).parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (`0` first) or hex (`0x`), the
/// last part filling the bytes left.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            Some(h) => (h, 16),
            None if p.len() > 1 && p.starts_with('0') => (p.get(1..)?, 8),
            None => (*p, 10),
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let v = if digits.is_empty() { 0 } else { u32::from_str_radix(digits, radix).ok()? };
        vals.push(v);
    }
    let (last, head) = vals.split_last()?;
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let top = head.iter().enumerate().fold(0u32, |acc, (i, v)| acc | v << (24 - 8 * i as u32));
    Some(Ipv4Addr::from(top | last))
}

/// `atoi`: leading blanks, a sign, the digits that follow; 0 when there are none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or_default()),
        Some(b'+') => (false, t.get(1..).unwrap_or_default()),
        _ => (false, t),
    };
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n = t.get(..end.min(18)).and_then(|d| d.parse::<i64>().ok()).unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}

/// What `parse_service` found: an address, and a port too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Nothing,
    Addr,
    AddrPort,
}

/// `parse_service`: `ADDR[:PORT]` or `[V6ADDR]:PORT`, numeric only (ipvsadm would also ask
/// the resolver for host and service names). A bracketed address needs its port; an IPv6
/// address without brackets has none; the port of an IPv4 address follows its last colon.
fn parse_service(s: &str, af: &mut Option<Af>, addr: &mut IpAddr, port: &mut u16) -> Found {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Found::Nothing;
    }
    let mut host = s;
    let mut port_text = None;
    if let Some(inner) = s.strip_prefix('[') {
        let Some((h, tail)) = inner.split_once(']') else { return Found::Nothing };
        let Some(p) = tail.strip_prefix(':') else { return Found::Nothing };
        host = h;
        port_text = Some(p);
    }
    if let Ok(a) = host.parse::<Ipv6Addr>() {
        *addr = IpAddr::V6(a);
        *af = Some(Af::V6);
    } else {
        // The IPv4 branch looks for the port again, after the address's last colon.
        port_text = None;
        if let Some((h, p)) = host.rsplit_once(':') {
            host = h;
            port_text = Some(p);
        }
        let Some(a) = inet_aton(host) else { return Found::Nothing };
        *addr = IpAddr::V4(a);
        *af = Some(Af::V4);
    }
    match port_text {
        None => Found::Addr,
        Some(p) => match number_in(p, 0, 65535) {
            Some(n) => {
                *port = n as u16;
                Found::AddrPort
            }
            None => Found::Nothing,
        },
    }
}

/// `parse_fwmark`: a decimal mark, 1 to 2^32-1. A negative one is the mark ipvsadm's `%d`
/// prints for a mark of 2^31 or more (`-f -1` for 4294967295), so a saved rule reads back.
fn parse_fwmark(v: &str) -> Result<u32, Failure> {
    let bad = || Failure::usage(format!("invalid fwmark value `{v}' specified"));
    let n = number_in(v, i64::from(i32::MIN), i64::from(u32::MAX)).ok_or_else(bad)?;
    match n {
        0 => Err(bad()),
        n if n < 0 => Ok(n as i32 as u32),
        n => Ok(n as u32),
    }
}

/// `parse_timeout`: no value is libipvs's default (360 s).
fn parse_timeout(v: Option<&str>, min: i64, max: i64) -> Result<u32, Failure> {
    let Some(v) = v else { return Ok(DEFAULT_PERSIST_TIMEOUT) };
    number_in(v, min, max)
        .map(|n| n as u32)
        .ok_or_else(|| Failure::usage(format!("invalid timeout value `{v}' specified")))
}

/// `parse_sched_flags`: the flag words of `-b`, `sh-*`/`mh-*` only with their scheduler.
fn parse_sched_flags(sched: &str, v: &str) -> Result<u8, Failure> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut f = 0;
    let mut words = v.split(',').filter(|w| !w.is_empty()).peekable();
    if words.peek().is_none() {
        return Err(Failure::usage(format!("invalid scheduler flag `{v}'")));
    }
    for w in words {
        let (bit, only) = match w {
            "flag-1" => (SchedFlags::FLAG1, None),
            "flag-2" => (SchedFlags::FLAG2, None),
            "flag-3" => (SchedFlags::FLAG3, None),
            "sh-fallback" => (SchedFlags::FLAG1, Some("sh")),
            "sh-port" => (SchedFlags::FLAG2, Some("sh")),
            "mh-fallback" => (SchedFlags::FLAG1, Some("mh")),
            "mh-port" => (SchedFlags::FLAG2, Some("mh")),
            _ => return Err(Failure::usage(format!("invalid scheduler flag `{w}'"))),
        };
        if only.is_some_and(|s| s != sched) {
            return Err(Failure::usage(format!("incompatible scheduler flag `{w}'")));
        }
        f |= bit;
    }
    Ok(f)
}

/// `--mcast-group`: an IPv6 group when the text has a colon, IPv4 otherwise; multicast either way.
fn mcast_group(v: &str) -> Result<IpAddr, Failure> {
    if v.contains(':') {
        match v.parse::<Ipv6Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(Failure::usage(format!("invalid IPv6 mcast-group `{v}'"))),
        }
    } else {
        match v.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(Failure::usage(format!("invalid IPv4 mcast-group `{v}'"))),
        }
    }
}

/// DPVS's `--proxy-protocol` values (`proxy_protocol_type`): `disable` keeps the TOA.
fn proxy_protocol(v: &str) -> Result<ClientAddr, Failure> {
    match v {
        "disable" => Ok(ClientAddr::Toa),
        "v1" => Ok(ClientAddr::Proxy(ProxyVersion::V1)),
        "v2" => Ok(ClientAddr::Proxy(ProxyVersion::V2)),
        "v1-insecure" | "v2-insecure" => Err(Failure::returned(format!("not supported: proxy protocol `{v}'"))),
        _ => Err(Failure::usage(format!("invalid proxy protocol `{v}' (disable, v1, v2)"))),
    }
}

/// A name cut to `max` bytes, as ipvsadm's `strncpy` into a fixed field cuts it.
fn cut(v: &str, max: usize) -> String {
    let mut end = v.len().min(max);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v.get(..end).unwrap_or_default().to_string()
}

/// `generic_opt_check`: every option the command needs, none it refuses, at most one of its
/// exclusive ones — the first offender in option order named.
fn generic_opt_check(cmd: Cmd, seen: u64) -> Result<(), Failure> {
    let mut exclusive = None;
    for (j, rule) in cmd.row().iter().enumerate() {
        let given = seen & (1 << j) != 0;
        match (rule, given) {
            (b'+', false) => {
                return Err(Failure::usage(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPTNAMES[j],
                    cmd.name()
                )))
            }
            (b'x', true) => {
                return Err(Failure::usage(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPTNAMES[j],
                    cmd.name()
                )))
            }
            (b'1', true) => match exclusive {
                None => exclusive = Some(j),
                Some(last) => {
                    return Err(Failure::usage(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPTNAMES[j],
                        OPTNAMES[last],
                        cmd.name()
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// Reads one ipvsadm command line (without the program name), as
/// `["-A", "-t", "10.0.0.1:80", "-s", "wlc", "-p"]`. `in_restore` is set for the lines of
/// `-R`, where a nested `-R` is refused.
///
/// # Errors
/// The [`Failure`] ipvsadm would print and exit with. Errors the kernel would return (a
/// missing service, a duplicate server) come later, from the director.
pub fn parse_request<S: AsRef<str>>(args: &[S], in_restore: bool) -> Result<Request, Failure> {
    let mut popt = Popt::new(args);
    let mut e = Entry::new();
    let mut seen: u64 = 0;
    let mut fmt = Format::default();
    let popt_failure = |p: PoptError| Failure::returned(format!("{}: {}", p.word, p.what));

    // The first option must be the command.
    let cmd = match popt.next_opt() {
        Ok(Some((Tag::Cmd(c), v, _))) => {
            if let Some(v) = v {
                e.role = match (v.as_str(), c) {
                    ("master", _) => Role::Master,
                    ("backup", _) => Role::Backup,
                    (_, Cmd::StartDaemon) => return Err(Failure::usage("illegal start-daemon parameter specified")),
                    _ => return Err(Failure::usage("illegal start_daemon specified")),
                };
            }
            popt.b_is_fullnat = matches!(c, Cmd::AddDest | Cmd::EditDest);
            c
        }
        Ok(Some((Tag::Version, _, _))) => return Ok(Request::Version),
        Ok(Some((Tag::Help, _, _))) => return Ok(Request::Help),
        _ => return Err(Failure::try_help()),
    };

    let set = |seen: &mut u64, o: usize| -> Result<(), Failure> {
        if *seen & (1 << o) != 0 {
            return Err(Failure::usage(format!("multiple '{}' options specified", OPTNAMES[o])));
        }
        *seen |= 1 << o;
        Ok(())
    };
    loop {
        let (tag, v, word) = match popt.next_opt() {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(p) => return Err(popt_failure(p)),
        };
        let val = v.clone().unwrap_or_default();
        match tag {
            Tag::Service(proto) => {
                set(&mut seen, O_SERVICE)?;
                match proto {
                    Some(p) => {
                        e.proto = Some(p);
                        let found = parse_service(&val, &mut e.af, &mut e.addr, &mut e.port);
                        if found == Found::Nothing {
                            return Err(Failure::usage("illegal virtual server address[:port] specified"));
                        }
                        if e.af == Some(Af::V6) {
                            e.netmask = Netmask::V6(128);
                        }
                    }
                    None => {
                        e.af = Some(Af::V4);
                        e.proto = Some(Proto::Tcp);
                        e.fwmark = parse_fwmark(&val)?;
                    }
                }
            }
            Tag::Fwd(m) => {
                set(&mut seen, 7)?;
                e.fwd = m;
            }
            Tag::Ipv6 => {
                if e.fwmark == 0 {
                    return Err(Failure::usage("-6 used before -f\n"));
                }
                e.af = Some(Af::V6);
                e.netmask = Netmask::V6(128);
            }
            Tag::Sort => {}
            Tag::Cmd(_) | Tag::Help | Tag::Version => {
                return Err(Failure::usage(format!("invalid option `{word}'")));
            }
            Tag::Opt(o) => {
                set(&mut seen, o)?;
                match o {
                    3 => e.sched = cut(&val, 15),
                    O_PERSISTENT => {
                        e.persistent = Some(parse_timeout(v.as_deref(), 1, i64::from(MAX_PERSIST_TIMEOUT))?)
                    }
                    5 => {
                        e.netmask =
                            if e.af == Some(Af::V6) {
                                match atoi(&val) {
                                    p @ 1..=128 => Netmask::V6(p as u8),
                                    _ => return Err(Failure::usage("illegal ipv6 netmask specified")),
                                }
                            } else {
                                Netmask::V4(inet_aton(&val).ok_or_else(|| {
                                    Failure::usage("illegal virtual server persistent mask specified")
                                })?)
                            }
                    }
                    6 => {
                        // The server starts as a copy of the service so far: its port is the
                        // service's unless the text gives one.
                        let (mut af, mut addr, mut port) = (e.af, e.addr, e.port);
                        let found = parse_service(&val, &mut af, &mut addr, &mut port);
                        if found == Found::Nothing {
                            return Err(Failure::usage("illegal real server address[:port] specified"));
                        }
                        e.dest = addr;
                        e.dest_port = if found == Found::Addr { e.port } else { port };
                    }
                    8 => {
                        e.weight =
                            number_in(&val, 0, 65535).ok_or_else(|| Failure::usage("illegal weight specified"))? as u32
                    }
                    9 => {
                        e.upper = number_in(&val, 0, i64::from(i32::MAX))
                            .ok_or_else(|| Failure::usage("illegal u_threshold specified"))?
                            as u32
                    }
                    10 => {
                        e.lower = number_in(&val, 0, i64::from(i32::MAX))
                            .ok_or_else(|| Failure::usage("illegal l_threshold specified"))?
                            as u32
                    }
                    11 => e.daemon.ifname = cut(&val, 15),
                    19 => {
                        e.daemon.syncid =
                            number_in(&val, 0, 255).ok_or_else(|| Failure::usage("illegal syncid specified"))? as u8
                    }
                    O_STATS => fmt.stats = true,
                    O_RATE => fmt.rate = true,
                    O_THRESHOLDS => fmt.thresholds = true,
                    O_PERSISTENTCONN => fmt.persistent_conn = true,
                    18 => fmt.nosort = true,
                    20 => fmt.exact = true,
                    28 => fmt.tun_info = true,
                    21 => e.ops = true,
                    22 => e.pe = Some(val),
                    23 => e.sched_flags = Some(val),
                    24 => e.daemon.group = Some(mcast_group(&val)?),
                    25 => {
                        e.daemon.port = number_in(&val, 1, 65535)
                            .ok_or_else(|| Failure::usage("illegal mcast-port specified"))?
                            as u16
                    }
                    26 => {
                        e.daemon.ttl =
                            number_in(&val, 1, 255).ok_or_else(|| Failure::usage("illegal mcast-ttl specified"))? as u8
                    }
                    27 => {
                        e.daemon.maxlen = number_in(&val, 1, 65535 - 20 - 8)
                            .ok_or_else(|| Failure::usage("illegal sync-maxlen specified"))?
                            as u16
                    }
                    O_TUN_TYPE => {
                        e.tun_type = match val.as_str() {
                            "ipip" => TunType::Ipip,
                            "gue" => TunType::Gue,
                            "gre" => TunType::Gre,
                            _ => return Err(Failure::usage("illegal tunnel type specified")),
                        }
                    }
                    O_TUN_PORT => {
                        e.tun_port = number_in(&val, 1, 65535)
                            .ok_or_else(|| Failure::usage("illegal tunnel port specified"))?
                            as u16
                    }
                    O_LADDR => {
                        let (mut af, mut port) = (None, 0);
                        if parse_service(&val, &mut af, &mut e.laddr, &mut port) == Found::Nothing {
                            return Err(Failure::usage("illegal local address"));
                        }
                    }
                    O_PROXY_PROTOCOL => e.client_addr = proxy_protocol(&val)?,
                    // DPVS compares only the word's first letters (`memcmp` of its length).
                    O_SYNPROXY if val.starts_with("enable") => e.synproxy = true,
                    O_SYNPROXY if val.starts_with("disable") => e.synproxy = false,
                    O_SYNPROXY => return Err(Failure::usage("synproxy switch must be enable or disable\n")),
                    O_MIDFLOW_HASH => e.midflow_hash = true,
                    // -n, -c, --timeout, --daemon and the checksum flags only mark themselves.
                    _ => {}
                }
            }
        }
    }

    if cmd == Cmd::Timeout {
        let l = &popt.leftovers;
        let (Some(a), Some(b), Some(c)) = (l.first(), l.get(1), l.get(2)) else {
            return Err(Failure::usage("--set option requires 3 timeout values"));
        };
        let max = i64::from(MAX_PERSIST_TIMEOUT);
        e.timeouts =
            [parse_timeout(Some(a), 0, max)?, parse_timeout(Some(b), 0, max)?, parse_timeout(Some(c), 0, max)?];
        popt.leftovers.drain(..3);
    }
    if let Some(extra) = popt.leftovers.first() {
        return Err(Failure::usage(format!("unexpected argument {extra}")));
    }
    let flags = match &e.sched_flags {
        Some(v) if !v.is_empty() => parse_sched_flags(&e.sched, v)?,
        _ => 0,
    };
    generic_opt_check(cmd, seen)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if e.fwmark == 0 && e.port == 0 && e.persistent.is_none() {
            return Err(Failure::usage("Zero port specified for non-persistent service"));
        }
        if e.ops && e.fwmark == 0 && e.proto != Some(Proto::Udp) {
            return Err(Failure::usage("One-Packet Scheduling is only for UDP virtual services"));
        }
        if e.sched.is_empty() {
            e.sched = "wlc".to_string();
        }
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        // The kernel forwards direct-routed and tunnelled packets unchanged: their port is the
        // service's, whatever -r said (fwmark services aside).
        if e.fwmark == 0 && matches!(e.fwd, FwdMethod::Route | FwdMethod::Tunnel) {
            e.dest_port = e.port;
        }
        // DPVS's ipvsadm also lets an IPv6 service have IPv4 FullNAT servers (fnat64).
        let fnat64 = e.fwd == FwdMethod::FullNat && e.af == Some(Af::V6);
        if Some(Af::of(&e.dest)) != e.af && e.fwd != FwdMethod::Tunnel && !fnat64 {
            return Err(Failure::usage("Different address family is allowed only for tunneling servers"));
        }
        let tunnel_opts = (O_TUN_TYPE..=O_TUN_LAST).any(|o| seen & (1 << o) != 0);
        if tunnel_opts && e.fwd != FwdMethod::Tunnel {
            return Err(Failure::usage("Tunnel options conflict with forward method"));
        }
        tunnel_opt_check(e.tun_type, seen)?;
    }

    let key = e.key();
    let service = || {
        let mut c = ServiceConfig::new(key, &e.sched);
        c.persistent = e.persistent;
        c.netmask = e.netmask;
        c.one_packet = e.ops;
        c.pe = e.pe.as_deref().and_then(PersistEngine::by_name);
        c.sched_flags = SchedFlags(flags);
        c.client_addr = e.client_addr;
        c.synproxy = e.synproxy;
        c.midflow_hash = e.midflow_hash;
        c
    };
    let csum = if seen & (1 << O_TUN_CSUM) != 0 {
        TunCsum::Csum
    } else if seen & (1 << O_TUN_REMCSUM) != 0 {
        TunCsum::RemCsum
    } else {
        TunCsum::NoCsum
    };
    let tun = TunConfig { kind: e.tun_type, port: e.tun_port, csum };
    let dest =
        || RealServer::new(e.dest, e.dest_port, e.fwd, e.weight).with_thresholds(e.upper, e.lower).with_tunnel(tun);
    Ok(match cmd {
        Cmd::List => {
            let any = |m: &[usize]| m.iter().any(|o| seen & (1 << o) != 0);
            if (any(&[O_CONNECTION, O_TIMEOUT, O_DAEMON]) && any(&[O_STATS, O_RATE, O_THRESHOLDS]))
                || (any(&[O_TIMEOUT, O_DAEMON]) && any(&[O_PERSISTENTCONN]))
            {
                return Err(Failure::usage("options conflicts in the list command"));
            }
            Request::List(if any(&[O_CONNECTION]) {
                Listing::Connections(fmt)
            } else if any(&[O_SERVICE]) {
                Listing::Service(key, fmt)
            } else if any(&[O_TIMEOUT]) {
                Listing::Timeout
            } else if any(&[O_DAEMON]) {
                Listing::Daemon
            } else {
                Listing::Services(fmt)
            })
        }
        Cmd::Restore if in_restore => return Err(Failure::try_help()),
        Cmd::Restore => Request::Restore,
        Cmd::Save => Request::Save,
        Cmd::Flush => Request::Apply(Command::Clear),
        Cmd::Add => Request::Apply(Command::AddService(service())),
        Cmd::Edit => Request::Apply(Command::EditService(service())),
        Cmd::Del => Request::Apply(Command::DelService(key)),
        Cmd::Zero => Request::Apply(Command::Zero((seen & (1 << O_SERVICE) != 0).then_some(key))),
        Cmd::AddDest => Request::Apply(Command::AddDest(key, dest())),
        Cmd::EditDest => Request::Apply(Command::EditDest(key, dest())),
        Cmd::DelDest => Request::Apply(Command::DelDest(key, dest().endpoint)),
        Cmd::Timeout => {
            let [a, b, c] = e.timeouts;
            Request::Apply(Command::SetTimeouts(a, b, c))
        }
        Cmd::StartDaemon => {
            let mut cfg = e.daemon.clone();
            if cfg.ifname.is_empty() {
                cfg.ifname = "eth0".to_string();
            }
            Request::Apply(Command::StartDaemon(e.role, cfg))
        }
        Cmd::StopDaemon => Request::Apply(Command::StopDaemon(e.role)),
        Cmd::AddLaddr => Request::Apply(Command::AddLaddr(key, e.laddr)),
        Cmd::DelLaddr => Request::Apply(Command::DelLaddr(key, e.laddr)),
        Cmd::GetLaddr => Request::Laddrs((seen & (1 << O_SERVICE) != 0).then_some(key)),
    })
    .and_then(|r| unsupported(&e, r))
}

/// What ipvsadm passes on and a kernel takes but this library has not: persistence engines
/// other than `sip` (`--pe`, which the kernel refuses with `ENOENT` when no module
/// `ip_vs_pe_NAME` loads; an empty name is no engine).
fn unsupported(e: &Entry, r: Request) -> Result<Request, Failure> {
    let unknown_pe = e.pe.as_deref().is_some_and(|n| !n.is_empty() && PersistEngine::by_name(n).is_none());
    match &r {
        Request::Apply(Command::AddService(_) | Command::EditService(_)) if unknown_pe => {
            Err(Failure::returned("Scheduler or persistence engine not found"))
        }
        _ => Ok(r),
    }
}

/// ipvsadm's `tunnel_opt_check`: which of `--tun-port`, `--tun-nocsum`, `--tun-csum` and
/// `--tun-remcsum` a tunnel type needs, refuses, or takes only one of, by its table
/// `tunnel_types_v_options` (ipip: none; gue: the port, one checksum flag; gre: one of
/// nocsum and csum), checked in that option order.
fn tunnel_opt_check(kind: TunType, seen: u64) -> Result<(), Failure> {
    // '+' compulsory, 'x' illegal, '1' at most one of them.
    let row: [u8; 4] = match kind {
        TunType::Ipip => *b"xxxx",
        TunType::Gue => *b"+111",
        TunType::Gre => *b"x11x",
    };
    let name = kind.name();
    let mut first = None;
    for (o, rule) in (O_TUN_PORT..=O_TUN_LAST).zip(row) {
        let opt = OPTNAMES.get(o).copied().unwrap_or_default();
        match (seen & (1 << o) != 0, rule) {
            (false, b'+') => {
                return Err(Failure::usage(format!(
                    "You need to supply the '{opt}' option for the '{name}' tunnel type"
                )))
            }
            (true, b'x') => {
                return Err(Failure::usage(format!("Illegal '{opt}' option with the '{name}' tunnel type")))
            }
            (true, b'1') => match first {
                None => first = Some(opt),
                Some(last) => {
                    return Err(Failure::usage(format!(
                        "The option '{opt}' conflicts with the '{last}' option in the '{name}' tunnel type"
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// Reads one ipvsadm command that changes the configuration, as
/// `ipvsadm -A -t 10.0.0.1:80 -s wlc -p 600` or `ipvsadm --start-daemon master
/// --mcast-interface eth1 --syncid 7` (without the program name).
///
/// # Errors
/// ipvsadm's message for a bad line, or "not a configuration command" for a listing, `-S`,
/// `-R`, `-v` or `-h`.
pub fn parse_command<S: AsRef<str>>(args: &[S]) -> Result<Command, String> {
    match parse_request(args, true) {
        Ok(Request::Apply(c)) => Ok(c),
        Ok(_) => Err("not a configuration command".to_string()),
        Err(f) => Err(f.message),
    }
}

#[cfg(test)]
mod tests;
