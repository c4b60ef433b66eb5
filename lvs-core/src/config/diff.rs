//! What a reload applies: the control [`Command`]s that move a running director's table to the
//! one a new configuration describes, without `-C` — as `ipvsadm -R` users and keepalived's
//! reload (`reload_check_data` in keepalived's `check/check_data.c`, which compares old and new
//! virtual servers and real servers and only adds, edits and removes what changed) do it.
//! Services that stay keep their connections, counters and (unless its scheduler changes)
//! their scheduler's state; a real server that stays keeps its connections.

use alloc::vec::Vec;
use core::net::IpAddr;

use crate::addr::{Endpoint, ServiceKey};
use crate::dest::RealServer;
use crate::director::{Command, Director};
use crate::error::Error;
use crate::service::ServiceConfig;

/// A table as a list of commands leaves it: services in the order they were added, each with
/// its real servers in the order they were added, and the FullNAT local addresses (DPVS's
/// `-P`) each service has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table {
    services: Vec<(ServiceConfig, Vec<RealServer>)>,
    laddrs: Vec<(ServiceKey, IpAddr)>,
    timeouts: Option<(u32, u32, u32)>,
}

impl Table {
    fn find(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|(c, _)| c.key == *key)
    }

    fn dests(&mut self, key: &ServiceKey) -> Result<&mut Vec<RealServer>, Error> {
        let i = self.find(key).ok_or(Error::NoSuchService)?;
        self.services.get_mut(i).map(|(_, d)| d).ok_or(Error::NoSuchService)
    }

    /// Plays one command on the table, refusing what the director would refuse for the
    /// table's sake (a service or server added twice, one edited or deleted that is not there).
    fn play(&mut self, c: &Command) -> Result<(), Error> {
        match c {
            Command::AddService(s) if self.find(&s.key).is_some() => return Err(Error::ServiceExists),
            Command::AddService(s) => self.services.push((s.clone(), Vec::new())),
            Command::EditService(s) => {
                let i = self.find(&s.key).ok_or(Error::NoSuchService)?;
                if let Some((cfg, _)) = self.services.get_mut(i) {
                    *cfg = s.clone();
                }
            }
            Command::DelService(k) => {
                let i = self.find(k).ok_or(Error::NoSuchService)?;
                self.services.remove(i);
                self.laddrs.retain(|(s, _)| s != k);
            }
            Command::AddDest(k, rs) => {
                let dests = self.dests(k)?;
                if dests.iter().any(|d| d.endpoint == rs.endpoint) {
                    return Err(Error::DestExists);
                }
                dests.push(*rs);
            }
            Command::EditDest(k, rs) => {
                let d = self.dests(k)?.iter_mut().find(|d| d.endpoint == rs.endpoint).ok_or(Error::NoSuchDest)?;
                *d = *rs;
            }
            Command::DelDest(k, e) => {
                let dests = self.dests(k)?;
                let i = dests.iter().position(|d| d.endpoint == *e).ok_or(Error::NoSuchDest)?;
                dests.remove(i);
            }
            Command::AddLaddr(k, a) => {
                self.find(k).ok_or(Error::NoSuchService)?;
                if self.laddrs.contains(&(*k, *a)) {
                    return Err(Error::LaddrExists);
                }
                self.laddrs.push((*k, *a));
            }
            Command::DelLaddr(k, a) => {
                self.find(k).ok_or(Error::NoSuchService)?;
                let i = self.laddrs.iter().position(|l| *l == (*k, *a)).ok_or(Error::NoSuchLaddr)?;
                self.laddrs.remove(i);
            }
            Command::Clear => {
                self.services.clear();
                self.laddrs.clear();
            }
            Command::SetTimeouts(a, b, c) => self.timeouts = Some((*a, *b, *c)),
            Command::Zero(_) | Command::StartDaemon(..) | Command::StopDaemon(_) => {}
        }
        Ok(())
    }
}

/// A running director's real servers, as a command would give them.
fn dest_of(d: &crate::dest::DestView<'_>) -> RealServer {
    let (upper, lower) = d.thresholds();
    RealServer::new(d.addr(), d.port(), d.fwd(), d.weight())
        .with_thresholds(upper, lower)
        .with_max_conn(d.max_conn())
        .with_tunnel(d.tun())
}

/// The commands that turn `d`'s table into the one `target` builds from an empty table.
///
/// Real servers for which `managed(service, server)` holds are someone else's — a health
/// monitor's, which puts checked servers in and takes them out as their checks say — and are
/// left out on both sides: never added, edited or deleted here.
///
/// The result deletes first (servers and FullNAT local addresses, then services gone from
/// `target`), then edits services whose settings changed (`-E`: scheduler, persistence,
/// netmask, flags, PROXY protocol), adds new services, and per service edits servers whose
/// weight, method, thresholds or tunnel settings changed and adds new ones in `target`'s
/// order, then its new local addresses. It never clears the table or deletes a service that
/// stays, so connections to what stays are kept. `target`'s timeouts (`--set`) come last when it sets
/// them; zeroing and the sync daemons' verbs are not part of a table and are left out. Run the
/// result with [`Director::execute_all`] to apply it all or nothing.
///
/// DoS warning: the work grows with the product of the numbers of services and of servers
/// per service.
///
/// # Errors
/// When `target` does not build a table from an empty one: a service or server added twice,
/// or edited or deleted without being there (the error the director would give).
pub fn diff(
    d: &Director,
    target: &[Command],
    managed: &dyn Fn(&ServiceKey, &Endpoint) -> bool,
) -> Result<Vec<Command>, Error> {
    let mut want = Table::default();
    for c in target {
        want.play(c)?;
    }
    let mut out = Vec::new();
    // Deletions first, so that a server moved from one service to another never meets itself.
    for svc in d.services() {
        let key = svc.config.key;
        match want.find(&key).and_then(|i| want.services.get(i)) {
            None => out.push(Command::DelService(key)),
            Some((_, dests)) => {
                for rs in svc.dests.dests() {
                    let e = rs.endpoint();
                    if !managed(&key, &e) && !dests.iter().any(|w| w.endpoint == e) {
                        out.push(Command::DelDest(key, e));
                    }
                }
                for l in d.laddrs(&key).unwrap_or_default() {
                    if !want.laddrs.contains(&(key, l.addr)) {
                        out.push(Command::DelLaddr(key, l.addr));
                    }
                }
            }
        }
    }
    for (cfg, dests) in &want.services {
        let key = cfg.key;
        let have = d.service(&key);
        match &have {
            None => out.push(Command::AddService(cfg.clone())),
            Some(s) if s.config != cfg => out.push(Command::EditService(cfg.clone())),
            Some(_) => {}
        }
        for rs in dests.iter().filter(|rs| !managed(&key, &rs.endpoint)) {
            match have.as_ref().and_then(|s| s.dests.dests().find(|h| h.endpoint() == rs.endpoint)) {
                None => out.push(Command::AddDest(key, *rs)),
                Some(h) if dest_of(&h) != *rs => out.push(Command::EditDest(key, *rs)),
                Some(_) => {}
            }
        }
        let have_laddrs = d.laddrs(&key).unwrap_or_default();
        for (_, a) in want.laddrs.iter().filter(|(k, _)| *k == key) {
            if !have_laddrs.iter().any(|l| l.addr == *a) {
                out.push(Command::AddLaddr(key, *a));
            }
        }
    }
    if let Some((tcp, tcpfin, udp)) = want.timeouts {
        out.push(Command::SetTimeouts(tcp, tcpfin, udp));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;
    use crate::config::ipvsadm::rules::{parse_rules, restore, save};
    use crate::testkit::FirstAvailable;
    use crate::DirectorConfig;

    /// Stands the test's scheduler in for every name the tables use: the diff compares
    /// names, never what a scheduler does.
    fn factory(name: &str) -> Result<alloc::boxed::Box<dyn crate::sched::Scheduler>, crate::sched::SchedError> {
        match name {
            "rr" | "wrr" | "wlc" | "lc" | "sh" => Ok(alloc::boxed::Box::new(FirstAvailable)),
            _ => Err(crate::sched::SchedError::Unknown),
        }
    }

    fn director(rules: &str) -> Director {
        let mut d = Director::new(DirectorConfig::default(), factory);
        restore(&mut d, rules).unwrap();
        d
    }

    fn none(_: &ServiceKey, _: &Endpoint) -> bool {
        false
    }

    /// The rule lines of a `-S` dump, sorted: a table's content without its list order.
    fn content(d: &Director) -> Vec<String> {
        let mut lines: Vec<String> = save(d).lines().map(String::from).collect();
        lines.sort();
        lines
    }

    const OLD: &str = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.0.2.11:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.0.2.12:80 -g -w 1
-A -t 10.0.0.1:443 -s wlc -p 300
-a -t 10.0.0.1:443 -r 192.0.2.11:443 -g -w 1
-A -u 10.0.0.1:53 -s rr
-a -u 10.0.0.1:53 -r 192.0.2.11:53 -m -w 1
";

    #[test]
    fn a_reload_adds_edits_and_removes_only_what_changed() {
        let d = director(OLD);
        // :80 keeps .11, re-weights .12, gains .13; :443 gets wrr and a shorter timeout and
        // a threshold on its server; the UDP service goes; :8080 comes.
        let new = "\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.0.2.11:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.0.2.12:80 -g -w 3
-a -t 10.0.0.1:80 -r 192.0.2.13:80 -g -w 1
-A -t 10.0.0.1:443 -s wrr -p 60
-a -t 10.0.0.1:443 -r 192.0.2.11:443 -g -w 1 -x 100 -y 50
-A -t 10.0.0.1:8080 -s lc
-a -t 10.0.0.1:8080 -r 192.0.2.11:8080 -m -w 2
";
        let got = diff(&d, &parse_rules(new).unwrap(), &none).unwrap();
        // What ipvsadm commands an operator would type for the same change, by hand.
        let by_hand = parse_rules(
            "\
-D -u 10.0.0.1:53
-e -t 10.0.0.1:80 -r 192.0.2.12:80 -g -w 3
-a -t 10.0.0.1:80 -r 192.0.2.13:80 -g -w 1
-E -t 10.0.0.1:443 -s wrr -p 60
-e -t 10.0.0.1:443 -r 192.0.2.11:443 -g -w 1 -x 100 -y 50
-A -t 10.0.0.1:8080 -s lc
-a -t 10.0.0.1:8080 -r 192.0.2.11:8080 -m -w 2
",
        )
        .unwrap();
        assert_eq!(got, by_hand);
    }

    #[test]
    fn the_same_file_changes_nothing_and_clear_is_never_sent() {
        let d = director(OLD);
        assert_eq!(diff(&d, &parse_rules(OLD).unwrap(), &none).unwrap(), []);
        // A file starting with -C (keepalived's lvs_flush) is a table, not an order to clear.
        let flushed = alloc::format!("-C\n{OLD}");
        assert_eq!(diff(&d, &parse_rules(&flushed).unwrap(), &none).unwrap(), []);
    }

    #[test]
    fn managed_servers_are_left_alone() {
        let d = director(OLD);
        let key = ServiceKey::Inet { proto: crate::addr::Proto::Tcp, addr: [10, 0, 0, 1].into(), port: 80 };
        let checked = |k: &ServiceKey, e: &Endpoint| *k == key && e.port == 80;
        // The new file lists :80 without servers: the monitor owns them, nothing goes.
        let new = "\
-A -t 10.0.0.1:80 -s rr
-A -t 10.0.0.1:443 -s wlc -p 300
-a -t 10.0.0.1:443 -r 192.0.2.11:443 -g -w 1
-A -u 10.0.0.1:53 -s rr
-a -u 10.0.0.1:53 -r 192.0.2.11:53 -m -w 1
";
        assert_eq!(diff(&d, &parse_rules(new).unwrap(), &checked).unwrap(), []);
    }

    #[test]
    fn local_addresses_follow_the_file() {
        let old = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.0.2.11:80 -b -w 1\n\
                   -P -t 10.0.0.1:80 -z 192.0.2.200\n-P -t 10.0.0.1:80 -z 192.0.2.201\n";
        let d = director(old);
        let new = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.0.2.11:80 -b -w 1\n\
                   -P -t 10.0.0.1:80 -z 192.0.2.201\n-P -t 10.0.0.1:80 -z 192.0.2.202\n";
        let got = diff(&d, &parse_rules(new).unwrap(), &none).unwrap();
        let by_hand = parse_rules("-Q -t 10.0.0.1:80 -z 192.0.2.200\n-P -t 10.0.0.1:80 -z 192.0.2.202\n").unwrap();
        assert_eq!(got, by_hand);
        let twice =
            parse_rules("-A -t 10.0.0.9:80 -s rr\n-P -t 10.0.0.9:80 -z 192.0.2.9\n-P -t 10.0.0.9:80 -z 192.0.2.9\n");
        assert_eq!(diff(&d, &twice.unwrap(), &none), Err(Error::LaddrExists));
    }

    #[test]
    fn a_target_that_builds_no_table_is_refused() {
        let d = director(OLD);
        let twice = parse_rules("-A -t 10.0.0.9:80 -s rr\n-A -t 10.0.0.9:80 -s rr\n").unwrap();
        assert_eq!(diff(&d, &twice, &none), Err(Error::ServiceExists));
        let orphan = parse_rules("-a -t 10.0.0.9:80 -r 192.0.2.11:80\n").unwrap();
        assert_eq!(diff(&d, &orphan, &none), Err(Error::NoSuchService));
        let missing = parse_rules("-A -t 10.0.0.9:80 -s rr\n-e -t 10.0.0.9:80 -r 192.0.2.11:80\n").unwrap();
        assert_eq!(diff(&d, &missing, &none), Err(Error::NoSuchDest));
    }

    /// Whether a server is there, its weight and whether it is NAT (else DR).
    type DestChoice = (bool, u8, bool);
    /// Whether a service is there, its scheduler, whether it is persistent, its servers.
    type Choice = [(bool, u8, bool, [DestChoice; 4]); 4];

    /// A rule file from choices: which of four services exist, with which scheduler and
    /// persistence, and which of four servers each has, with which weight and method.
    fn rules(choice: &Choice) -> String {
        let mut out = String::new();
        for (s, (on, sched, persist, dests)) in choice.iter().enumerate() {
            if !on {
                continue;
            }
            let sched = ["rr", "wrr", "wlc", "sh"][usize::from(*sched % 4)];
            let p = if *persist { " -p 120" } else { "" };
            out += &alloc::format!("-A -t 10.0.0.1:{} -s {sched}{p}\n", 80 + s);
            for (r, (on, w, masq)) in dests.iter().enumerate() {
                if *on {
                    let m = if *masq { "-m" } else { "-g" };
                    out += &alloc::format!("-a -t 10.0.0.1:{} -r 192.0.2.{}:{} {m} -w {w}\n", 80 + s, 11 + r, 80 + s);
                }
            }
        }
        out
    }

    fn choice() -> impl Strategy<Value = Choice> {
        let dest = (any::<bool>(), 0u8..4, any::<bool>());
        let svc = (any::<bool>(), 0u8..4, any::<bool>(), [dest.clone(), dest.clone(), dest.clone(), dest]);
        [svc.clone(), svc.clone(), svc.clone(), svc]
    }

    proptest! {
        /// Whatever the old and new tables, the diff applied to the old one gives the new
        /// one's content, never deletes a service both have, and diffing again gives nothing.
        #[test]
        fn the_diff_moves_any_table_to_any_other(old in choice(), new in choice()) {
            let (old, new) = (rules(&old), rules(&new));
            let mut d = director(&old);
            let target = parse_rules(&new).unwrap();
            let cmds = diff(&d, &target, &none).unwrap();
            for c in &cmds {
                if let Command::DelService(k) = c {
                    let kept = new.contains(&alloc::format!("10.0.0.1:{} ", k.port()));
                    prop_assert!(!kept, "deleted {} which stays", k);
                }
                prop_assert!(!matches!(c, Command::Clear));
            }
            d.execute_all(&cmds).unwrap();
            prop_assert_eq!(content(&d), content(&director(&new)));
            prop_assert_eq!(diff(&d, &target, &none).unwrap(), vec![]);
        }
    }
}
