//! `ipvsadm -G` / `--get-laddr` of DPVS's ipvsadm (`list_laddrs`, `list_all_laddrs`): the
//! local addresses of FullNAT services, laid out in DPVS's columns.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt::Write;

use crate::addr::{Endpoint, ServiceKey};
use crate::director::Director;
use crate::error::Error;

/// The `-G` listing of one service, or of every service that has local addresses: DPVS's
/// title, then per service its `VIP:VPORT` and number of addresses, then one line per
/// address with its connections (`CONFLICTS` is always 0: ports are never shared here).
///
/// # Errors
/// [`Error::NoSuchService`] for a named service that does not exist.
pub fn list_laddrs(d: &Director, key: Option<&ServiceKey>) -> Result<String, Error> {
    let mut out = String::new();
    let _ = writeln!(out, "{:<20} {:<8} {:<20} {:<10} {:<10}", "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS");
    let mut keys: alloc::vec::Vec<ServiceKey> = match key {
        Some(k) => alloc::vec![*k],
        None => d.services().map(|s| s.config.key).collect(),
    };
    keys.sort_by_key(vname);
    for k in keys {
        let laddrs = d.laddrs(&k)?;
        if key.is_none() && laddrs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{:<20} {:<8} ", vname(&k), laddrs.len());
        for l in laddrs {
            let _ = writeln!(out, "{:<20} {:<8} {:<20} {:<10} {:<10}", "", "", l.addr.to_string(), 0, l.conns);
        }
    }
    Ok(out)
}

/// A service as DPVS's `addrport_to_anyname` names it: `VIP:PORT`, `[VIP6]:PORT`.
fn vname(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Inet { addr, port, .. } => Endpoint::new(*addr, *port).to_string(),
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::restore;
    use crate::testkit::factory;
    use crate::DirectorConfig;

    #[test]
    fn lists_local_addresses_in_dpvs_columns() {
        let mut d = Director::new(DirectorConfig::default(), factory);
        restore(&mut d, "-A -t 10.0.0.1:80 -s first\n-a -t 10.0.0.1:80 -r 192.168.0.2:8080 -b\n-P -t 10.0.0.1:80 -z 192.168.0.200\n-P -t 10.0.0.1:80 -z 192.168.0.201\n")
            .unwrap();
        let key = Some(ServiceKey::tcp("10.0.0.1".parse().unwrap(), 80));
        // DPVS: "%-20s %-8s %-20s %-10s %-10s" for the title and each address (its first two
        // columns empty), "%-20s %-8u " for the service.
        let pad = " ".repeat(30);
        let want = format!(
            "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
             10.0.0.1:80          2        \n\
             {pad}192.168.0.200        0          0         \n\
             {pad}192.168.0.201        0          0         \n"
        );
        assert_eq!(list_laddrs(&d, key.as_ref()).unwrap(), want);
        assert_eq!(list_laddrs(&d, None).unwrap(), want);
        let other = ServiceKey::tcp("10.0.0.9".parse().unwrap(), 80);
        assert_eq!(list_laddrs(&d, Some(&other)), Err(Error::NoSuchService));
        // The same through a whole invocation, and DPVS's words for what fails.
        let run = |d: &mut Director, args: &[&str]| super::super::cli::run(d, crate::Instant::ZERO, args, "");
        assert_eq!(run(&mut d, &["-G", "-t", "10.0.0.1:80"]).stdout, want);
        let gone = run(&mut d, &["-G", "-t", "10.0.0.9:80"]);
        assert_eq!((gone.stderr.as_str(), gone.status), ("Service not defined\n", 255));
        let twice = run(&mut d, &["-P", "-t", "10.0.0.1:80", "-z", "192.168.0.200"]);
        assert_eq!((twice.stderr.as_str(), twice.status), ("Local address already exists\n", 255));
        let none = run(&mut d, &["-Q", "-t", "10.0.0.1:80", "-z", "192.168.0.9"]);
        assert_eq!(none.stderr, "No such Local address\n");
    }

    #[test]
    fn fullnat_in_listing_and_rules() {
        let mut d = Director::new(DirectorConfig::default(), factory);
        let rules = "-A -t 10.0.0.1:80 -s first -j enable --proxy-protocol v2\n\
                     -a -t 10.0.0.1:80 -r 192.168.0.2:8080 -b -w 1\n\
                     -P -t 10.0.0.1:80 -z 192.168.0.200\n";
        restore(&mut d, rules).unwrap();
        let l = crate::config::list(&d, crate::Instant::ZERO, crate::config::ListOptions::Plain);
        assert!(l.contains("TCP  10.0.0.1:80 first synproxy ppv2\n"), "{l}");
        assert!(l.contains("  -> 192.168.0.2:8080             FullNat 1      0          0"), "{l}");
        let saved = crate::config::save(&d);
        assert_eq!(saved, rules);
        let mut e = Director::new(DirectorConfig::default(), factory);
        restore(&mut e, &saved).unwrap();
        assert_eq!(crate::config::save(&e), rules);
    }

    #[test]
    fn fnat64_in_listing_rules_and_laddr_list() {
        // DPVS configures fnat64 as an IPv6 service with IPv4 FullNAT servers and IPv4 local
        // addresses; ipvsadm prints the service bracketed and the servers as IPv4.
        let mut d = Director::new(DirectorConfig::default(), factory);
        let rules = "-A -t [2001:db8::1]:80 -s first --proxy-protocol v1\n\
                     -a -t [2001:db8::1]:80 -r 192.168.0.2:8080 -b -w 1\n\
                     -P -t [2001:db8::1]:80 -z 192.168.0.200\n";
        restore(&mut d, rules).unwrap();
        let l = crate::config::list(&d, crate::Instant::ZERO, crate::config::ListOptions::Plain);
        assert!(l.contains("TCP  [2001:db8::1]:80 first ppv1\n"), "{l}");
        assert!(l.contains("  -> 192.168.0.2:8080             FullNat 1      0          0"), "{l}");
        assert_eq!(crate::config::save(&d), rules);
        let key = ServiceKey::tcp("2001:db8::1".parse().unwrap(), 80);
        assert!(list_laddrs(&d, Some(&key)).unwrap().contains("192.168.0.200"));
        // NAT across families stays refused, as ipvsadm's option check refuses it (exit 2).
        let run = |d: &mut Director, args: &[&str]| super::super::cli::run(d, crate::Instant::ZERO, args, "");
        let nat = run(&mut d, &["-a", "-t", "[2001:db8::1]:80", "-r", "192.168.0.3:80", "-m"]);
        let want = "Different address family is allowed only for tunneling servers\n";
        assert_eq!((nat.stderr.as_str(), nat.status), (want, 2));
    }
}
