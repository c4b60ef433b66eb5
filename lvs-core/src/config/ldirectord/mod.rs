//! ldirectord.cf (ldirectord 4.x, `man 8 ldirectord`): virtual services, their real servers,
//! fallback and checks, read into a typed [`Ldirectord`] model and set up on the director and
//! the health monitor as ldirectord sets them up at startup.
//!
//! ```
//! use lvs_core::config::ldirectord;
//!
//! let parsed = ldirectord::parse("
//! checktimeout=3
//! virtual=203.0.113.10:3128
//! \treal=192.0.2.11:3128 gate
//! \treal=192.0.2.12:3128 gate
//! \tchecktype=connect
//! \tscheduler=wlc
//! \tpersistent=600
//! ", "ldirectord.cf")?;
//! let v = &parsed.config.virtuals[0];
//! assert_eq!((v.scheduler.as_str(), v.persistent, v.reals.len()), ("wlc", Some(600), 2));
//! # Ok::<(), lvs_core::config::source::ConfigError>(())
//! ```
//!
//! ldirectord's own rules hold: a line it does not know is an error; real servers forwarded
//! by gate or ipip take the virtual port; servers start down and are checked at once (with
//! `quiescent = yes`, the default, a down server stays in with weight 0); the fallback goes in
//! while no real server is up. A directive the library does not act on (mail, logging, the
//! database and directory checks' credentials, …) is a [`Warning`], and so is a check done
//! differently (a service without a negotiate exchange here is checked by connect).

mod check;
mod model;
mod read;

use alloc::vec::Vec;

pub use model::{CheckType, Ldirectord, Real, Virtual};

use crate::config::deploy::{Deployed, Deployment, HealthService};
use crate::config::source::{ConfigError, Warning};
use crate::director::{Command, Director};
use crate::health::{Monitor, ServicePolicy};
use crate::time::Instant;

/// A configuration read, with what in it the library does not act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The model.
    pub config: Ldirectord,
    /// Directives read and not acted on (or acted on differently), in file order.
    pub warnings: Vec<Warning>,
}

/// Reads the text of an ldirectord.cf named `name` (for messages).
///
/// DoS warning: the work grows with the text; a virtual service takes at most
/// [`MAX_SERVERS_PER_SERVICE`](crate::config::deploy::MAX_SERVERS_PER_SERVICE) real servers
/// (its ranges expanded), a file at most [`MAX_ENTRIES`](crate::config::deploy::MAX_ENTRIES)
/// table entries.
///
/// # Errors
/// The first line ldirectord would refuse, or that names a host (the library resolves no
/// names), with its line.
pub fn parse(text: &str, name: &str) -> Result<Parsed, ConfigError> {
    let (config, warnings) = read::read(text, name)?;
    Ok(Parsed { config, warnings })
}

impl Ldirectord {
    /// The director's side: per virtual service its `-A`, and its real servers — for the
    /// monitor when they are checked (starting down, `inhibit_on_failure` from `quiescent`,
    /// the fallback as sorry server), as commands when always in service (`checktype = on`),
    /// not at all with `checktype = off`.
    pub fn deployment(&self) -> Deployment {
        let mut out = Deployment { files: self.files.clone(), ..Deployment::default() };
        for v in &self.virtuals {
            out.commands.push((v.origin, Command::AddService(v.service_config())));
            if v.checktype == CheckType::Off {
                continue;
            }
            let checked: Vec<_> = v
                .reals
                .iter()
                .filter_map(|r| r.check.as_ref().map(|p| (r.origin, (r.server, p.clone()).into())))
                .collect();
            let unchecked: Vec<&Real> = v.reals.iter().filter(|r| r.check.is_none()).collect();
            if checked.is_empty() {
                if let (true, Some(f)) = (unchecked.iter().all(|r| r.server.weight == 0), v.fallback) {
                    out.commands.push((v.origin, Command::AddDest(v.key, f)));
                    continue;
                }
            } else {
                let policy = ServicePolicy {
                    inhibit_on_failure: v.quiescent,
                    sorry_server: v.fallback,
                    alpha: true,
                    ..ServicePolicy::default()
                };
                out.health.push(HealthService { origin: v.origin, key: v.key, policy, servers: checked });
            }
            for r in unchecked {
                out.commands.push((r.origin, Command::AddDest(v.key, r.server)));
            }
        }
        out
    }

    /// Sets the configuration up on `d` and `m` at `now`, all or nothing
    /// ([`Deployment::apply`]).
    ///
    /// # Errors
    /// What the director or monitor would refuse, at its line; then nothing was changed.
    pub fn apply(&self, d: &mut Director, m: &mut Monitor, now: Instant) -> Result<Deployed, ConfigError> {
        self.deployment().apply(d, m, now)
    }
}

#[cfg(test)]
mod tests;
