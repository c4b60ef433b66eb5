//! The health listing, beside `ipvsadm -Ln`: each monitored service with its quorum, and each
//! real server with its state, check kind, counters toward rise or fall, weight in force, time
//! in state and last result — keepalived shows this only in its logs and SNMP.
//!
//! ```text
//! Prot LocalAddress:Port            Quorum
//!   -> RemoteAddress:Port           State  Check  Weight      Streak  Forced  InState   LastResult
//! TCP  203.0.113.100:80             up (live 3 >= 1)
//!   -> 192.0.2.11:80                UP     HTTP   1           1/2     -       2m03s     status 200 (1s ago)
//!   -> 192.0.2.12:80                DOWN   HTTP   -           0/1     -       14s       connection refused (0s ago)
//!   -> 192.0.2.13:80                UP     TCP    3/10 ramp   0/2     -       5s        passed (0s ago)
//!   -> 192.0.2.99:80                SORRY  -      -           -       -       -         standby
//! ```
//!
//! `Weight` is what the director's table holds (`-` when the server is out of it), and
//! `in force/full` while a slow start ramps or a sorry server stands in. `Streak` counts toward
//! the next change: passes of `rise` while down, failures of `fall` while up. A server with
//! several checks shows their number (`2 chk`) and its latest result, then a line per check
//! with what that check says — the server is up only while every one is:
//!
//! ```text
//!   -> 192.0.2.14:80                DOWN   2 chk  -           -       -       14s       status 503 (0s ago)
//!        HTTP GET /health           up     HTTP               0/2                       status 200 (1s ago)
//!        HTTP GET /ready            down   HTTP               0/1                       status 503 (0s ago)
//! ```

use alloc::string::{String, ToString};
use core::fmt::Write;
use core::time::Duration;

use super::monitor::{CheckStatus, Monitor, ServerStatus, ServiceStatus, State};
use super::rules::Health;
use crate::time::Instant;

/// The listing at `now`, services and servers in the order they were added.
pub fn status(m: &Monitor, now: Instant) -> String {
    let mut out = String::new();
    out.push_str("Prot LocalAddress:Port            Quorum\n");
    out.push_str("  -> RemoteAddress:Port           State  Check  Weight      Streak  Forced  InState   LastResult\n");
    for svc in m.services() {
        service_line(&mut out, &svc);
        for s in svc.servers() {
            server_line(&mut out, &s, now);
        }
        if let Some(sorry) = svc.policy().sorry_server {
            let use_ = if svc.sorry_active() { "in service" } else { "standby" };
            let weight = weight_text(svc.sorry_weight_in_force(), sorry.weight, false);
            let _ = writeln!(
                out,
                "  -> {:<28} SORRY  -      {weight:<11} -       -       -         {use_}",
                sorry.endpoint.to_string()
            );
        }
    }
    out
}

fn service_line(out: &mut String, svc: &ServiceStatus<'_>) {
    let key = svc.key().to_string();
    let (proto, rest) = key.split_once(' ').unwrap_or((key.as_str(), ""));
    let p = svc.policy();
    let quorum = if svc.quorum_up() {
        alloc::format!("up (live {} >= {})", svc.live_weight(), p.quorum.saturating_sub(p.hysteresis))
    } else {
        alloc::format!("down (live {} < {})", svc.live_weight(), u64::from(p.quorum) + u64::from(p.hysteresis))
    };
    let _ = writeln!(out, "{proto:<4} {rest:<28} {quorum}");
}

fn server_line(out: &mut String, s: &ServerStatus<'_>, now: Instant) {
    let forced = s.override_state().map_or("-", |o| match o {
        super::Override::Up => "UP",
        super::Override::Down => "DOWN",
        super::Override::Drain => "DRAIN",
    });
    let full = s.state() == State::Up;
    let several = s.checks().len() > 1;
    let first = s.checks().next();
    let (kind, counter) = match first {
        Some(c) if !several => (String::from(c.check().name()), counter_text(&c)),
        _ => (alloc::format!("{} chk", s.checks().len()), String::from("-")),
    };
    let _ = writeln!(
        out,
        "  -> {:<28} {:<6} {kind:<6} {:<11} {counter:<7} {forced:<7} {:<9} {}",
        s.real_server().endpoint.to_string(),
        s.state().name(),
        weight_text(s.weight_in_force(), s.weight(), full && s.ramping()),
        duration_text(now.saturating_since(s.since())),
        last_text(s.last_result(), now),
    );
    if several {
        for c in s.checks() {
            let health = match c.health() {
                Health::Up => "up",
                Health::Down => "down",
            };
            let _ = writeln!(
                out,
                "       {:<26} {health:<6} {:<6} {:<11} {:<7} {:<7} {:<9} {}",
                c.plan().label(),
                c.check().name(),
                "",
                counter_text(&c),
                "",
                "",
                last_text(c.last_result(), now),
            );
        }
    }
}

/// A check's counter toward its next change: passes of `rise` while down, failures of `fall`
/// while up.
fn counter_text(c: &CheckStatus<'_>) -> String {
    let (streak, rise, fall) = (c.streak(), c.plan().rise, c.plan().fall);
    match c.health() {
        Health::Down => alloc::format!("{}/{rise}", streak.passes.min(rise)),
        Health::Up => alloc::format!("{}/{fall}", streak.failures.min(fall)),
    }
}

/// The last result and how long ago, `-` before the first.
fn last_text(last: Option<(Instant, &super::Detail)>, now: Instant) -> String {
    match last {
        Some((t, d)) => alloc::format!("{d} ({} ago)", duration_text(now.saturating_since(t))),
        None => String::from("-"),
    }
}

/// The weight column: `-` out of the table, the weight when it is the full one, `in/full`
/// otherwise, with `ramp` during a slow start.
fn weight_text(installed: Option<u32>, full: u32, ramping: bool) -> String {
    match installed {
        None => String::from("-"),
        Some(w) if ramping => alloc::format!("{w}/{full} ramp"),
        Some(w) if w == full => alloc::format!("{w}"),
        Some(w) => alloc::format!("{w}/{full}"),
    }
}

/// A compact duration: `45s`, `2m03s`, `3h05m`, `2d04h`.
fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => alloc::format!("{s}s"),
        60..3600 => alloc::format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => alloc::format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => alloc::format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        let d = Duration::from_secs;
        assert_eq!(duration_text(d(0)), "0s");
        assert_eq!(duration_text(d(59)), "59s");
        assert_eq!(duration_text(d(123)), "2m03s");
        assert_eq!(duration_text(d(3600 * 3 + 300)), "3h05m");
        assert_eq!(duration_text(d(86400 * 2 + 3600 * 4)), "2d04h");
    }

    #[test]
    fn weight_column() {
        assert_eq!(weight_text(None, 5, false), "-");
        assert_eq!(weight_text(Some(5), 5, false), "5");
        assert_eq!(weight_text(Some(0), 5, false), "0/5");
        assert_eq!(weight_text(Some(2), 5, true), "2/5 ramp");
    }
}
