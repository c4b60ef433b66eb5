//! Direct routing (`ip_vs_dr_xmit`): the IP packet is unchanged but for the TTL; the frame goes
//! to the real server's MAC.

use super::{decrement_ttl, set_macs, XmitError};
use crate::neigh::MacAddr;
use crate::wire::{Frame, PacketMeta};

/// Forwards `frame` to `dst` from `src`.
///
/// # Errors
/// [`XmitError::TtlExpired`] when the TTL would reach zero.
pub(crate) fn xmit(frame: &mut Frame, meta: &PacketMeta, dst: MacAddr, src: MacAddr) -> Result<(), XmitError> {
    let data = frame.data_mut();
    decrement_ttl(data, meta)?;
    set_macs(data, dst, src)
}
