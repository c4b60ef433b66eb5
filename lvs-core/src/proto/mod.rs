//! Per-protocol state machines and timeouts (`ip_vs_proto.c`): TCP as the kernel's transition
//! tables, UDP as a single state. SCTP has its place here when it comes.

pub mod tcp;
pub mod udp;

pub use tcp::{TcpDir, TcpState};

/// Timeouts per protocol state, in seconds, settable like `ipvsadm --set tcp tcpfin udp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// One timeout per [`TcpState`], indexed by the state's number.
    pub tcp: [u32; TcpState::COUNT],
    /// The UDP timeout.
    pub udp: u32,
}

impl Default for Timeouts {
    /// The kernel's `tcp_timeouts` and `udp_timeouts`.
    fn default() -> Self {
        Timeouts { tcp: tcp::DEFAULT_TIMEOUTS, udp: udp::DEFAULT_TIMEOUT }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; 0 leaves a value unchanged.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    /// The three values `ipvsadm --timeout` lists: `(tcp, tcpfin, udp)`.
    pub fn listed(&self) -> (u32, u32, u32) {
        (self.tcp[TcpState::Established as usize], self.tcp[TcpState::FinWait as usize], self.udp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_leaves_zeros_unchanged() {
        let mut t = Timeouts::default();
        assert_eq!(t.listed(), (900, 120, 300));
        t.set(0, 2, 0);
        assert_eq!(t.listed(), (900, 2, 300));
        t.set(60, 0, 30);
        assert_eq!(t.listed(), (60, 2, 30));
    }
}
