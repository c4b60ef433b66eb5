//! How ldirectord checks a virtual service's real servers, as [`CheckPlan`]s: `checktype`
//! and `service` choose the kind (`connect` is an ICMP echo for UDP, as in ldirectord;
//! `negotiate` speaks HTTP, HTTPS, SMTP or DNS, and falls back to a connect for the services
//! the library has no exchange for); `checkinterval`, the timeouts, `failurecount`,
//! `checkcount` and `checkport` the timing. Servers are checked at once and need one pass to
//! come up, ldirectord's start.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use super::model::{CheckType, Real, Virtual};
use crate::addr::{Proto, ServiceKey};
use crate::health::dns::qtype;
use crate::health::{Check, CheckPlan, DnsCheck, HttpCheck, MiscCheck, PingCheck, SmtpCheck, TcpCheck};

/// The kind of check a section's servers get.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Always,
    Tcp,
    Ping,
    Http { tls: bool },
    Smtp,
    Dns,
    External,
}

/// Fills in every real server's plan; gives back notes on what is checked differently from
/// ldirectord, as (keyword, message).
pub(crate) fn check_plans(v: &mut Virtual) -> Vec<(&'static str, String)> {
    let mut notes = Vec::new();
    let udp = matches!(v.key, ServiceKey::Inet { proto: Proto::Udp, .. });
    let connect = if udp { Kind::Ping } else { Kind::Tcp };
    let kind = match v.checktype {
        CheckType::On | CheckType::Off => Kind::Always,
        CheckType::Connect => connect,
        CheckType::Ping => Kind::Ping,
        CheckType::External => Kind::External,
        CheckType::ExternalPerl => {
            notes.push(("checktype", "external-perl runs the command as a program, as external does".to_string()));
            Kind::External
        }
        CheckType::Negotiate | CheckType::Combined(_) => {
            if let CheckType::Combined(n) = v.checktype {
                notes.push(("checktype", format!("{n}: every check negotiates (no connect checks in between)")));
            }
            match v.service.as_str() {
                "http" => Kind::Http { tls: false },
                "https" => Kind::Http { tls: true },
                "smtp" | "submission" => Kind::Smtp,
                "dns" => Kind::Dns,
                "none" => Kind::Always,
                other => {
                    notes.push(("service", format!("negotiate for {other} is not implemented; checked by connect")));
                    connect
                }
            }
        }
    };
    if matches!(kind, Kind::Http { .. }) && v.receive.contains(['.', '*', '+', '?', '[', '(', '|', '^', '$', '\\']) {
        notes.push(("receive", "matched as plain text, not as a regular expression".to_string()));
    }
    if kind == Kind::Dns && !v.receive.is_empty() {
        notes.push(("receive", "not compared: a DNS check passes on any answer without error".to_string()));
    }
    let negotiating = matches!(v.checktype, CheckType::Negotiate | CheckType::Combined(_));
    let timeout = if negotiating { v.negotiatetimeout } else { v.checktimeout };
    let fall = if kind == Kind::Ping { v.failurecount.saturating_mul(v.checkcount) } else { v.failurecount };
    let checks: Vec<Option<Check>> = v.reals.iter().map(|r| check(v, r, kind)).collect();
    for (r, c) in v.reals.iter_mut().zip(checks) {
        r.check = c.map(|c| {
            CheckPlan::new(c)
                .with_interval(v.checkinterval)
                .with_timeout(timeout)
                .with_rise_fall(1, fall)
                .with_fast_down_inter(None, None)
                .with_warmup(Duration::ZERO)
                .with_connect(None, v.checkport)
        });
    }
    notes
}

/// One server's check.
fn check(v: &Virtual, r: &Real, kind: Kind) -> Option<Check> {
    let (request, receive) = r.request.clone().unwrap_or_else(|| (v.request.clone(), v.receive.clone()));
    Some(match kind {
        Kind::Always => return None,
        Kind::Tcp => Check::Tcp(TcpCheck),
        Kind::Ping => Check::Ping(PingCheck),
        Kind::Smtp => Check::Smtp(SmtpCheck::default()),
        Kind::Dns => Check::Dns(DnsCheck::new(request.trim_start_matches('/'), qtype::A)),
        Kind::Http { tls } => {
            let mut h = HttpCheck::get(&request);
            h.tls = tls;
            h.expect = (!receive.is_empty()).then(|| receive.into_bytes());
            h.virtualhost = v.virtualhost.clone();
            Check::Http(h)
        }
        Kind::External => {
            let mut words: Vec<String> = v.checkcommand.split_whitespace().map(String::from).collect();
            let program = if words.is_empty() { String::new() } else { words.remove(0) };
            let (vip, vport) = match v.key {
                ServiceKey::Inet { addr, port, .. } => (addr.to_string(), port),
                ServiceKey::Fwmark { mark, .. } => (mark.to_string(), 0),
            };
            words.extend([
                vip,
                vport.to_string(),
                r.server.endpoint.addr.to_string(),
                r.server.endpoint.port.to_string(),
            ]);
            let args: Vec<&str> = words.iter().map(String::as_str).collect();
            Check::Misc(MiscCheck::new(&program, &args))
        }
    })
}
