//! Persistence templates (`ip_vs_sched_persist`, `ip_vs_check_template`): the key a template is
//! found by, the rule for which port a template and its connections use, how a template is
//! made, and when it stops matching.
//!
//! A template is `<proto, client & netmask, 0, vaddr, vport>` → real server. For a service
//! reached on its own port the template keeps that port; for port-0 ("all ports") services the
//! port is 0; for fwmark services the protocol is `IP` (0), the virtual address is the mark
//! written as an IPv4 address, and the port is 0, so one template covers every marked port.
//! A service on the FTP control port (21) keeps no ports either: its templates are
//! `<proto, client, 0, vaddr, 0>`, the same as those of a persistent port-0 service on the same
//! address, so the FTP data connections a client opens to other ports go to the server of its
//! control connection.
//!
//! With the SIP persistence engine a template is also keyed by a Call-ID ([`sip`]).

pub mod sip;

use core::net::{IpAddr, Ipv4Addr};

use crate::addr::{raw, Af, ServiceKey};
use crate::conn::table::InKey;
use crate::conn::{cf, Addrs, Conn, ConnId, ConnTable};
use crate::dest::{Dest, DestId, Dests, F_AVAILABLE};
use crate::service::Netmask;
use crate::wire::PacketMeta;

/// What a template is looked up and stored by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TemplateKey {
    pub(crate) key: InKey,
    /// Whether the template keeps the virtual and real ports: the packet came to the service's
    /// own port, and that port is not FTP's.
    pub(crate) keeps_ports: bool,
}

/// The FTP control port (`FTPPORT`): a persistent service on it makes port-0 templates.
const FTP_PORT: u16 = 21;

/// The template key for a packet of service `svc` with persistence netmask `netmask`
/// (`ip_vs_sched_persist`).
pub(crate) fn template_key(svc: &ServiceKey, netmask: Netmask, pkt: &PacketMeta) -> TemplateKey {
    let snet = netmask.apply(&pkt.src);
    let v6 = pkt.af == Af::V6;
    match svc {
        ServiceKey::Fwmark { mark, .. } => TemplateKey {
            key: InKey {
                v6,
                tmpl: true,
                proto: 0,
                caddr: raw(&snet),
                cport: 0,
                vaddr: raw(&IpAddr::V4(Ipv4Addr::from(*mark))),
                vport: 0,
            },
            keeps_ports: false,
        },
        ServiceKey::Inet { port, .. } => {
            let keeps_ports = pkt.dport == *port && *port != FTP_PORT;
            TemplateKey {
                key: InKey {
                    v6,
                    tmpl: true,
                    proto: pkt.proto,
                    caddr: raw(&snet),
                    cport: 0,
                    vaddr: raw(&pkt.dst),
                    vport: if keeps_ports { pkt.dport } else { 0 },
                },
                keeps_ports,
            }
        }
    }
}

/// A new template for `tk` bound to server `dest` (`d`), with the connection flags `flags` of
/// that server and the service's persistence timeout in seconds, with its addresses. A template
/// of the SIP engine (`sip`) is filed by the director's SIP table instead of the client →
/// virtual index.
pub(crate) fn new_template(
    tk: &TemplateKey,
    dest: DestId,
    d: &Dest,
    flags: u16,
    timeout_s: u32,
    sip: bool,
) -> (Conn, Addrs) {
    let filed = if sip { cf::PE_SIP } else { cf::IN_HASHED };
    let a = Addrs { caddr: tk.key.caddr, vaddr: tk.key.vaddr, daddr: raw(&d.cfg.endpoint.addr) };
    let c = Conn {
        cport: 0,
        vport: tk.key.vport,
        dport: if tk.keeps_ports { d.cfg.endpoint.port } else { 0 },
        proto: tk.key.proto,
        state: crate::proto::tpl::NONE,
        flags: flags | cf::TEMPLATE | filed,
        dest: dest.0,
        timeout_ms: timeout_s.saturating_mul(1000),
        ..Conn::BLANK
    };
    (c, a)
}

/// The port `ip_vs_check_template` gives an invalidated template's virtual and real ports.
const INVALID_PORT: u16 = 0xffff;

/// `ip_vs_check_template`: a template whose server is gone (or quiesced, with
/// `expire_quiescent_template`) stops matching — it is re-hashed with both ports 65535 and client
/// port 0, so `-Lc` still lists it that way, and lingers, its timer untouched, until it expires.
/// A SIP template is changed in place: its index reads the ports from the entry.
pub(crate) fn check_template(conns: &mut ConnTable, dests: &Dests, expire_quiescent: bool, t: ConnId) -> bool {
    let d = conns.get(t).and_then(Conn::dest_id).and_then(|d| dests.get(d));
    let valid = d.is_some_and(|d| d.flags & F_AVAILABLE != 0 && !(expire_quiescent && d.cfg.weight == 0));
    let invalidate = |c: &mut Conn| {
        c.vport = INVALID_PORT;
        c.dport = INVALID_PORT;
        c.cport = 0;
    };
    match conns.get_mut(t) {
        Some(c) if !valid && c.vport != INVALID_PORT && c.flags & cf::PE_SIP != 0 => invalidate(c),
        Some(c) if !valid && c.vport != INVALID_PORT => conns.rekey_in(t, invalidate),
        _ => {}
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Tcp;
    use crate::wire::parse;

    fn meta(src: &str, dport: u16) -> PacketMeta {
        let f = Tcp::new((src.parse().unwrap(), 1234), ("203.0.113.100".parse().unwrap(), dport), 2).build();
        parse(&f).unwrap()
    }

    #[test]
    fn inet_template_masks_client_and_keeps_port() {
        let svc = ServiceKey::tcp("203.0.113.100".parse().unwrap(), 80);
        let t = template_key(&svc, Netmask::prefix(Af::V4, 24), &meta("198.51.100.77", 80));
        assert!(t.keeps_ports);
        assert_eq!(&t.key.caddr[..4], &[198, 51, 100, 0]);
        assert_eq!((t.key.cport, t.key.vport, t.key.proto), (0, 80, 6));
        // ip_vs_sched_persist ANDs the client with the mask word, contiguous or not.
        let t = template_key(&svc, Netmask::V4("255.0.255.0".parse().unwrap()), &meta("198.51.100.77", 80));
        assert_eq!(&t.key.caddr[..4], &[198, 0, 100, 0]);
    }

    #[test]
    fn port_zero_and_fwmark_templates_have_port_zero() {
        let svc = ServiceKey::tcp("203.0.113.100".parse().unwrap(), 0);
        let t = template_key(&svc, Netmask::full(Af::V4), &meta("198.51.100.77", 443));
        assert!(!t.keeps_ports);
        assert_eq!(t.key.vport, 0);
        let fw = ServiceKey::Fwmark { mark: 5, af: Af::V4 };
        let t = template_key(&fw, Netmask::full(Af::V4), &meta("198.51.100.77", 443));
        assert_eq!((t.key.proto, t.key.vport), (0, 0));
        assert_eq!(&t.key.vaddr[..4], &[0, 0, 0, 5]);
        assert_eq!(&t.key.caddr[..4], &[198, 51, 100, 77]);
    }
}
