//! keepalived.conf (keepalived 2.2's format, `man 5 keepalived.conf`): its LVS and VRRP
//! parts read into a typed [`Keepalived`] model and set up on the library's pieces — the
//! director's services, the health monitor's checks, the VRRP group, the sync daemons.
//!
//! ```
//! use lvs_core::config::keepalived::{self, Options};
//! use lvs_core::config::source::MemSource;
//!
//! let mut files = MemSource::new().with("/etc/keepalived/keepalived.conf", "
//! virtual_server 192.0.2.100 80 {
//!     lb_algo wlc
//!     lb_kind DR
//!     real_server 198.51.100.11 80 {
//!         weight 2
//!         TCP_CHECK { connect_timeout 3 }
//!     }
//! }
//! ");
//! let parsed = keepalived::parse(&mut files, "/etc/keepalived/keepalived.conf", &Options::default())?;
//! let vs = &parsed.config.virtual_servers[0];
//! assert_eq!((vs.scheduler.as_str(), vs.real_servers[0].server.weight), ("wlc", 2));
//! assert!(parsed.warnings.is_empty());
//! # Ok::<(), lvs_core::config::source::ConfigError>(())
//! ```
//!
//! Reading ([`parse`]): files and `include`s through a caller's
//! [`Source`], comments, conditional lines, parameters; the
//! grammar of words and blocks; each section into the model. A keyword the library does not
//! act on is a [`Warning`] naming its file, line and keyword; anything malformed, or a name
//! that refers to nothing, is a [`ConfigError`] naming its file and line.
//!
//! Setting up ([`Keepalived::apply`]): the VRRP [`Group`](crate::vrrp::Group) is built, then
//! the [`Deployment`](crate::config::deploy::Deployment) goes to the director and the
//! monitor all or nothing.

mod apply;
mod check;
mod global;
mod lvs;
mod model;
mod read;
mod tree;
mod vrrp;

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub use apply::{Applied, Interface, SyncFollow, TrackKind, Tracker, Vrrp};
pub use lvs::MAX_GROUP_MEMBERS;
pub use model::{
    GarpSettings, GlobalDefs, Keepalived, Notify, RealServerConf, SyncDaemon, Tracked, VirtualServer, VrrpInstance,
    VrrpScript, VrrpSyncGroup,
};
pub use read::{Limits, Options};

use crate::config::deploy::{key_order, MAX_ENTRIES, MAX_SERVERS_PER_SERVICE};
use crate::config::source::{ConfigError, ErrorKind, MemSource, Origin, Source, Warning};
use tree::{Cx, Node};

/// A configuration read, with what in it the library does not act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The model.
    pub config: Keepalived,
    /// Keywords read and not acted on, in file order.
    pub warnings: Vec<Warning>,
}

/// Reads the configuration at `path` from `src`, with everything it includes.
///
/// DoS warning: the work grows with the text, its includes and its parameter substitutions,
/// within [`Options::limits`]; the services and servers it stands for are bounded by
/// [`MAX_GROUP_MEMBERS`], [`MAX_SERVERS_PER_SERVICE`] and [`MAX_ENTRIES`].
///
/// # Errors
/// The first syntax error, bad value, unknown name, unreadable file or passed limit, with its
/// file and line.
pub fn parse(src: &mut dyn Source, path: &str, opts: &Options) -> Result<Parsed, ConfigError> {
    let (lines, files, warnings) = read::read(src, path, opts)?;
    let nodes = tree::parse(&lines, &files, opts.limits.max_nesting)?;
    let mut cx = Cx { files, warnings };
    let config = sections(&mut cx, &nodes)?;
    Ok(Parsed { config, warnings: cx.warnings })
}

/// Reads a configuration held in a string, named `keepalived.conf`; an `include` in it finds
/// nothing.
///
/// # Errors
/// As [`parse`].
pub fn parse_str(text: &str, opts: &Options) -> Result<Parsed, ConfigError> {
    parse(&mut MemSource::new().with("keepalived.conf", text), "keepalived.conf", opts)
}

/// The top-level blocks into the model, names resolved.
fn sections(cx: &mut Cx, nodes: &[Node]) -> Result<Keepalived, ConfigError> {
    let mut groups = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.key == "virtual_server_group") {
        let (name, members) = lvs::vs_group(cx, n)?;
        if groups.insert(name, members).is_some() {
            return Err(cx.fault(n, ErrorKind::Duplicate, "a group of this name exists already"));
        }
    }
    let mut k = Keepalived::default();
    let mut instance_sync = None;
    for n in nodes {
        match n.key.as_str() {
            "global_defs" => global::global_defs(cx, n, &mut k.global)?,
            "virtual_server_group" => {}
            "virtual_server" => k.virtual_servers.push(lvs::virtual_server(cx, n, &groups)?),
            "vrrp_script" => k.vrrp_scripts.push(vrrp::vrrp_script(cx, n)?),
            "vrrp_instance" => {
                let (inst, sync) = vrrp::vrrp_instance(cx, n)?;
                instance_sync = instance_sync.or(sync);
                k.vrrp_instances.push(inst);
            }
            "vrrp_sync_group" => k.vrrp_sync_groups.push(vrrp::vrrp_sync_group(cx, n)?),
            _ => cx.ignored(n),
        }
    }
    if k.global.sync_daemon.is_none() {
        k.global.sync_daemon = instance_sync;
    }
    resolve(cx, &k)?;
    k.files = cx.files.clone();
    Ok(k)
}

/// Every name refers to something, nothing is defined twice, and the table the virtual
/// servers stand for stays within [`MAX_SERVERS_PER_SERVICE`] and [`MAX_ENTRIES`].
fn resolve(cx: &Cx, k: &Keepalived) -> Result<(), ConfigError> {
    let err = |o: Origin, kind: ErrorKind, m: String| cx.files.error(o, kind, m);
    let names = |items: Vec<(&str, Origin)>, what: &str| {
        let mut seen = BTreeSet::new();
        for (n, o) in items {
            if !seen.insert(String::from(n)) {
                return Err(err(o, ErrorKind::Duplicate, format!("{what} '{n}' is defined twice")));
            }
        }
        Ok(seen)
    };
    let instances = names(k.vrrp_instances.iter().map(|i| (i.name.as_str(), i.origin)).collect(), "vrrp_instance")?;
    let scripts = names(k.vrrp_scripts.iter().map(|s| (s.name.as_str(), s.origin)).collect(), "vrrp_script")?;
    names(k.vrrp_sync_groups.iter().map(|g| (g.name.as_str(), g.origin)).collect(), "vrrp_sync_group")?;
    let mut synced = BTreeSet::new();
    for g in &k.vrrp_sync_groups {
        for m in &g.members {
            if !instances.contains(m) {
                return Err(err(
                    g.origin,
                    ErrorKind::Reference,
                    format!("vrrp_sync_group '{}': no vrrp_instance '{m}'", g.name),
                ));
            }
            if !synced.insert(m) {
                return Err(err(g.origin, ErrorKind::Duplicate, format!("vrrp_instance '{m}' is in two sync groups")));
            }
        }
    }
    let tracked = k.vrrp_instances.iter().flat_map(|i| &i.track_scripts);
    for t in tracked.chain(k.vrrp_sync_groups.iter().flat_map(|g| &g.track_scripts)) {
        if !scripts.contains(&t.name) {
            return Err(err(t.origin, ErrorKind::Reference, format!("track_script: no vrrp_script '{}'", t.name)));
        }
    }
    if let Some(s) = &k.global.sync_daemon {
        if let Some(n) = s.instance.as_ref().filter(|n| !instances.contains(*n)) {
            return Err(err(s.origin, ErrorKind::Reference, format!("lvs_sync_daemon: no vrrp_instance '{n}'")));
        }
    }
    let mut keys = BTreeSet::new();
    let mut entries = 0usize;
    for vs in &k.virtual_servers {
        if vs.real_servers.len() > MAX_SERVERS_PER_SERVICE {
            return Err(err(
                vs.origin,
                ErrorKind::Limit,
                format!("virtual_server: more than {MAX_SERVERS_PER_SERVICE} real servers"),
            ));
        }
        entries = entries.saturating_add(vs.keys.len().saturating_mul(vs.real_servers.len() + 2));
        if entries > MAX_ENTRIES {
            return Err(err(
                vs.origin,
                ErrorKind::Limit,
                format!("virtual_server: the configuration stands for more than {MAX_ENTRIES} table entries"),
            ));
        }
        for key in &vs.keys {
            if !keys.insert(key_order(key)) {
                return Err(err(
                    vs.origin,
                    ErrorKind::Duplicate,
                    format!("virtual_server: service {key} is configured twice"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
