//! keepalived's checker blocks (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `SMTP_CHECK`, `DNS_CHECK`,
//! `MISC_CHECK`, `UDP_CHECK`, `PING_CHECK`) into a [`CheckPlan`]: the kind's own settings, and
//! the timing and connection settings taken from the checker, else the real server, else the
//! virtual server, else the kind's keepalived default ([`CheckPlan::new`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::IpAddr;
use core::ops::RangeInclusive;
use core::time::Duration;

use super::tree::{split_command, Cx, Node};
use crate::config::source::{ConfigError, ErrorKind};
use crate::health::dns::qtype;
use crate::health::http::{BodyRegex, RegexOptions};
use crate::health::{Check, CheckPlan, DnsCheck, HttpCheck, MiscCheck, PingCheck, SmtpCheck, TcpCheck, UdpCheck};

/// The checker kinds the library runs.
pub(crate) const KINDS: [&str; 8] =
    ["TCP_CHECK", "HTTP_GET", "SSL_GET", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "UDP_CHECK", "PING_CHECK"];

/// Checker settings a virtual server or real server gives its checkers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Defaults {
    pub(crate) delay_loop: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) retry: Option<u32>,
    pub(crate) delay_before_retry: Option<Duration>,
    pub(crate) warmup: Option<Duration>,
    pub(crate) virtualhost: Option<String>,
    pub(crate) alpha: Option<bool>,
}

impl Defaults {
    /// These where given, `base` where not.
    pub(crate) fn over(&self, base: &Defaults) -> Defaults {
        Defaults {
            delay_loop: self.delay_loop.or(base.delay_loop),
            connect_timeout: self.connect_timeout.or(base.connect_timeout),
            retry: self.retry.or(base.retry),
            delay_before_retry: self.delay_before_retry.or(base.delay_before_retry),
            warmup: self.warmup.or(base.warmup),
            virtualhost: self.virtualhost.clone().or_else(|| base.virtualhost.clone()),
            alpha: self.alpha.or(base.alpha),
        }
    }

    /// Takes statement `n` if it is one of these settings; `Ok(false)` when it is not.
    pub(crate) fn take(&mut self, cx: &Cx, n: &Node) -> Result<bool, ConfigError> {
        match n.key.as_str() {
            "delay_loop" => self.delay_loop = Some(positive(cx, n)?),
            "connect_timeout" => self.connect_timeout = Some(positive(cx, n)?),
            "retry" | "nb_get_retry" => self.retry = Some(cx.num(n, 0)?),
            "delay_before_retry" => self.delay_before_retry = Some(positive(cx, n)?),
            "warmup" => self.warmup = Some(cx.timer(n, 0)?),
            "virtualhost" => self.virtualhost = Some(cx.need(n, 0)?.to_string()),
            "alpha" => self.alpha = Some(cx.flag(n)?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A non-zero TIMER.
fn positive(cx: &Cx, n: &Node) -> Result<Duration, ConfigError> {
    let d = cx.timer(n, 0)?;
    if d.is_zero() {
        return Err(cx.err(n, "must be more than 0"));
    }
    Ok(d)
}

/// Where a probe connects to and from (`connect_ip`, `connect_port`, `bindto`, `bind_port`).
#[derive(Clone, Copy, Default)]
struct Target {
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
}

impl Target {
    fn take(&mut self, cx: &mut Cx, n: &Node) -> Result<bool, ConfigError> {
        match n.key.as_str() {
            "connect_ip" => self.connect_ip = Some(cx.ip(n, 0)?),
            "connect_port" => self.connect_port = Some(cx.num(n, 0)?),
            "bindto" | "bind_to" => self.bindto = Some(cx.ip(n, 0)?),
            "bind_port" => self.bind_port = Some(cx.num(n, 0)?),
            "bind_if" | "fwmark" | "log_all_failures" => cx.ignored(n),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// One checker block into its plans: one, or one per `url` of an `HTTP_GET`/`SSL_GET` and per
/// `host` of an `SMTP_CHECK` (keepalived checks them in turn and the checker passes when all
/// do; here each is a check of the server, run side by side, and the server is up while all
/// pass). `outer` holds the real server's settings over the virtual server's; `alpha` among
/// them too (keepalived's checker `alpha` defaults to the real server's, then the virtual
/// server's).
pub(crate) fn checker(cx: &mut Cx, n: &Node, outer: &Defaults) -> Result<Vec<CheckPlan>, ConfigError> {
    let mut own = Defaults::default();
    let mut target = Target::default();
    let mut kind = Kind::new(n.key.as_str());
    let mut misc_timeout = None;
    for s in cx.block(n)? {
        if own.take(cx, s)? || target.take(cx, s)? {
            continue;
        }
        match (&mut kind, s.key.as_str()) {
            (Kind::Http { urls, .. }, "url") => urls.push(url(cx, s)?),
            (Kind::Http { .. }, "http_protocol" | "fast_recovery" | "enable_sni") => cx.ignored(s),
            (Kind::Smtp { helo, .. }, "helo_name") => *helo = Some(cx.need(s, 0)?.to_string()),
            (Kind::Smtp { hosts, .. }, "host") => hosts.push(host(cx, s)?),
            (Kind::Dns(d), "type") => d.qtype = dns_type(cx, s)?,
            (Kind::Dns(d), "name") => d.name = cx.need(s, 0)?.to_string(),
            (Kind::Misc { path, .. }, "misc_path") => *path = Some(cx.command(s)?),
            (Kind::Misc { .. }, "misc_timeout") => misc_timeout = Some(positive(cx, s)?),
            (Kind::Misc { dynamic, .. }, "misc_dynamic") => *dynamic = true,
            (Kind::Misc { .. }, "user") => cx.warn(s, "scripts run as the application's user; ignored"),
            (Kind::Udp(u), "payload") => u.payload = hex(cx, s, false)?,
            (Kind::Udp(u), "require_reply") => {
                let expect = hex(cx, s, true)?;
                u.require_reply = true;
                u.expect = (!expect.is_empty()).then_some(expect);
            }
            (Kind::Udp(u), "min_reply_length") => u.min_reply = cx.num(s, 0)?,
            (Kind::Udp(u), "max_reply_length") => u.max_reply = cx.num(s, 0)?,
            _ => cx.warn(s, format!("not a {} setting this library implements; ignored", n.key)),
        }
    }
    let settings = own.over(outer);
    let checks = kind.finish(cx, n, &target, settings.virtualhost.as_deref())?;
    Ok(checks
        .into_iter()
        .map(|(check, t)| {
            let mut plan = CheckPlan::new(check);
            if let Some(d) = settings.delay_loop {
                plan.interval = d;
            }
            if let Some(t) = misc_timeout.or(settings.connect_timeout) {
                plan.timeout = t;
            }
            if let Some(r) = settings.retry {
                plan.fall = r.saturating_add(1);
            }
            if let Some(d) = settings.delay_before_retry {
                plan.fastinter = Some(d);
            }
            if let Some(w) = settings.warmup {
                plan.warmup = Some(w);
            }
            plan.alpha = settings.alpha;
            plan.with_connect(t.connect_ip, t.connect_port).with_bind(t.bindto, t.bind_port)
        })
        .collect())
}

/// A checker as it is read, before its settings are complete.
enum Kind {
    Tcp,
    Ping,
    Http { tls: bool, urls: Vec<(Node, HttpCheck)> },
    Smtp { helo: Option<String>, hosts: Vec<Target> },
    Dns(DnsCheck),
    Misc { path: Option<String>, dynamic: bool },
    Udp(UdpCheck),
}

impl Kind {
    fn new(key: &str) -> Kind {
        match key {
            "HTTP_GET" => Kind::Http { tls: false, urls: Vec::new() },
            "SSL_GET" => Kind::Http { tls: true, urls: Vec::new() },
            "SMTP_CHECK" => Kind::Smtp { helo: None, hosts: Vec::new() },
            "DNS_CHECK" => Kind::Dns(DnsCheck::default()),
            "MISC_CHECK" => Kind::Misc { path: None, dynamic: false },
            "UDP_CHECK" => Kind::Udp(UdpCheck::new(&[])),
            "PING_CHECK" => Kind::Ping,
            _ => Kind::Tcp,
        }
    }

    /// The checks, once the block is read, each with where it connects: one per `url` of an
    /// HTTP checker (at least one), one per `host` of an SMTP_CHECK (the checker's own
    /// target when it has none), one otherwise.
    fn finish(
        self,
        cx: &mut Cx,
        n: &Node,
        target: &Target,
        vhost: Option<&str>,
    ) -> Result<Vec<(Check, Target)>, ConfigError> {
        let one = match self {
            Kind::Tcp => Check::Tcp(TcpCheck),
            Kind::Ping => Check::Ping(PingCheck),
            Kind::Http { tls, urls } => {
                if urls.is_empty() {
                    return Err(cx.fault(n, ErrorKind::Syntax, "needs a url block"));
                }
                return urls
                    .into_iter()
                    .map(|(u, mut h)| {
                        h.tls = tls;
                        if h.virtualhost.is_none() {
                            h.virtualhost = vhost.map(String::from);
                        }
                        h.validate().map_err(|e| cx.err(&u, e))?;
                        Ok((Check::Http(h), *target))
                    })
                    .collect();
            }
            Kind::Smtp { helo, hosts } => {
                let s = helo.map_or_else(SmtpCheck::default, |h| SmtpCheck::new(&h));
                s.validate().map_err(|e| cx.err(n, e))?;
                if hosts.is_empty() {
                    return Ok(alloc::vec![(Check::Smtp(s), *target)]);
                }
                return Ok(hosts
                    .into_iter()
                    .map(|t| {
                        let t = Target {
                            connect_ip: t.connect_ip.or(target.connect_ip),
                            connect_port: t.connect_port.or(target.connect_port),
                            bindto: t.bindto.or(target.bindto),
                            bind_port: t.bind_port.or(target.bind_port),
                        };
                        (Check::Smtp(s.clone()), t)
                    })
                    .collect());
            }
            Kind::Dns(d) => {
                d.validate().map_err(|e| cx.err(n, e))?;
                Check::Dns(d)
            }
            Kind::Misc { path, dynamic } => {
                let Some(path) = path else { return Err(cx.fault(n, ErrorKind::Syntax, "needs misc_path")) };
                let words = split_command(&path);
                let Some((program, args)) = words.split_first() else {
                    return Err(cx.err(n, "misc_path is empty"));
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let m = MiscCheck::new(program, &args);
                Check::Misc(if dynamic { m.with_dynamic_weight() } else { m })
            }
            Kind::Udp(u) => {
                if u.min_reply > u.max_reply {
                    return Err(cx.err(n, "min_reply_length is above max_reply_length"));
                }
                Check::Udp(u)
            }
        };
        Ok(alloc::vec![(one, *target)])
    }
}

/// A `url { path … digest … status_code … virtualhost … regex … }` block. The regex settings
/// are keepalived 2.x's: `regex`, `regex_no_match`, `regex_options` (those with a meaning for
/// a linear-time engine; the rest warned about), `regex_min_offset`, `regex_max_offset`
/// (both dropped with a warning when min is not below max, as keepalived does); `regex_stack`
/// (PCRE2's JIT stack) has none here.
fn url(cx: &mut Cx, n: &Node) -> Result<(Node, HttpCheck), ConfigError> {
    let mut h = HttpCheck::get("");
    let mut path = None;
    let mut pattern: Option<(&Node, String)> = None;
    let mut options = RegexOptions::default();
    let (mut no_match, mut min, mut max) = (false, None, None);
    let body = cx.block(n)?;
    for s in body {
        match s.key.as_str() {
            "regex" => pattern = Some((s, cx.need(s, 0)?.to_string())),
            "regex_no_match" => no_match = true,
            "regex_min_offset" => min = Some(cx.num::<usize>(s, 0)?),
            "regex_max_offset" => max = Some(cx.num::<usize>(s, 0)?),
            "regex_options" => {
                for o in &s.args {
                    if !options.set(o) {
                        cx.warn(s, format!("regex option '{o}' is not supported; ignored"));
                    }
                }
            }
            "regex_stack" => cx.ignored(s),
            "path" => path = Some(cx.need(s, 0)?.to_string()),
            "digest" => {
                let d = cx.need(s, 0)?;
                h.digest = Some(HttpCheck::parse_digest(d).ok_or_else(|| cx.err(s, format!("bad digest '{d}'")))?);
            }
            "status_code" => {
                cx.need(s, 0)?;
                h.status = s.args.iter().map(|a| status(cx, s, a)).collect::<Result<_, _>>()?;
            }
            "virtualhost" => h.virtualhost = Some(cx.need(s, 0)?.to_string()),
            _ => cx.warn(s, "not a url setting this library implements; ignored"),
        }
    }
    h.path = path.ok_or_else(|| cx.fault(n, ErrorKind::Syntax, "needs a path"))?;
    if let Some((s, p)) = pattern {
        let mut re = BodyRegex::new(&p, options).map_err(|e| cx.err(s, e.to_string()))?;
        re.no_match = no_match;
        if min.zip(max).is_some_and(|(lo, hi)| lo > hi) {
            cx.warn(n, "regex_min_offset is above regex_max_offset; both ignored");
        } else {
            re.min_offset = min.unwrap_or(0);
            re.max_offset = max;
        }
        h.regex = Some(re);
    } else if no_match || min.is_some() || max.is_some() || options != RegexOptions::default() {
        cx.warn(n, "regex settings without a regex; ignored");
    }
    Ok((Node { block: None, ..n.clone() }, h))
}

/// `200` or `200-299`.
fn status(cx: &Cx, n: &Node, a: &str) -> Result<RangeInclusive<u16>, ConfigError> {
    let bad = || cx.err(n, format!("bad status code '{a}'"));
    let (lo, hi) = a.split_once('-').unwrap_or((a, a));
    let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
    if lo > hi || !(100..=999).contains(&lo) || hi > 999 {
        return Err(bad());
    }
    Ok(lo..=hi)
}

/// An SMTP_CHECK `host { connect_ip … connect_port … bindto … bind_port … }` block.
fn host(cx: &mut Cx, n: &Node) -> Result<Target, ConfigError> {
    let mut t = Target::default();
    for s in cx.block(n)? {
        if !t.take(cx, s)? {
            cx.warn(s, "not a host setting this library implements; ignored");
        }
    }
    Ok(t)
}

/// `type A|NS|CNAME|SOA|MX|TXT|AAAA`.
fn dns_type(cx: &Cx, n: &Node) -> Result<u16, ConfigError> {
    let t = cx.need(n, 0)?;
    Ok(match t.to_ascii_uppercase().as_str() {
        "A" => qtype::A,
        "NS" => qtype::NS,
        "CNAME" => qtype::CNAME,
        "SOA" => qtype::SOA,
        "MX" => qtype::MX,
        "TXT" => qtype::TXT,
        "AAAA" => qtype::AAAA,
        _ => return Err(cx.err(n, format!("unknown query type '{t}'"))),
    })
}

/// A HEX_STR as keepalived reads it: each word gives its digits in pairs from the left, an odd
/// last digit standing alone (`Ab12f 3` is `AB 12 0F 03`). In `require_reply`, `x` digits
/// (match anything) are not supported: the warning says so and any reply passes.
fn hex(cx: &mut Cx, n: &Node, optional: bool) -> Result<Vec<u8>, ConfigError> {
    if !optional {
        cx.need(n, 0)?;
    }
    let mut out = Vec::new();
    for w in &n.args {
        if w.contains(['x', 'X']) && optional {
            cx.warn(n, "'x' digits are not supported; any reply of the right length passes");
            return Ok(Vec::new());
        }
        let digits: Vec<u8> = w
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()
            .ok_or_else(|| cx.err(n, format!("bad hex '{w}'")))?;
        for pair in digits.chunks(2) {
            out.push(match pair {
                [hi, lo] => (hi << 4) | lo,
                [lo] => *lo,
                _ => 0,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::{Files, Origin};
    use alloc::vec;

    fn node(words: &[&str]) -> Node {
        Node {
            origin: Origin::default(),
            key: words[0].into(),
            args: words[1..].iter().map(|s| String::from(*s)).collect(),
            block: None,
        }
    }

    #[test]
    fn hex_strings_read_as_keepalived_documents() {
        let mut cx = Cx { files: Files(vec!["k.conf".into()]), warnings: Vec::new() };
        let n = node(&["payload", "Ab12f", "3", "456", "546443123"]);
        assert_eq!(
            hex(&mut cx, &n, false).unwrap(),
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        assert!(hex(&mut cx, &node(&["payload", "zz"]), false).is_err());
        assert!(hex(&mut cx, &node(&["require_reply", "1x"]), true).unwrap().is_empty());
        assert_eq!(cx.warnings.len(), 1);
    }
}
