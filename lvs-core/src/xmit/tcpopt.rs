//! TCP options (RFC 9293 §3.1, RFC 7323, RFC 2018): their kinds and one walk over a header's
//! options, for the rewrites that read or edit them — sequence adjustment (SACK edges), the
//! SYN proxy (MSS, window scale, SACK, timestamps) and FullNAT's MSS cut.

use super::XmitError;
use crate::wire::field;

/// End of the option list.
pub(crate) const EOL: u8 = 0;
/// Padding.
pub(crate) const NOP: u8 = 1;
/// Maximum segment size.
pub(crate) const MSS: u8 = 2;
/// Window scale.
pub(crate) const WS: u8 = 3;
/// SACK permitted.
pub(crate) const SACK_PERM: u8 = 4;
/// SACK blocks.
pub(crate) const SACK: u8 = 5;
/// Timestamps.
pub(crate) const TS: u8 = 8;

/// Walks the options of the TCP header at `l4`, calling `f(kind, offset, length)` for each
/// well-formed option; stops at the end of the list or at the first malformed one.
pub(crate) fn walk(data: &[u8], l4: usize, mut f: impl FnMut(u8, usize, usize)) -> Result<(), XmitError> {
    let doff = usize::from(field::byte(data, l4 + field::TCP_DOFF).ok_or(XmitError::Bounds)? >> 4) * 4;
    let (mut i, end) = (l4 + field::TCP_BASE_LEN, l4 + doff.max(field::TCP_BASE_LEN));
    while i < end {
        let kind = field::byte(data, i).ok_or(XmitError::Bounds)?;
        match kind {
            EOL => break,
            NOP => i += 1,
            _ => {
                let len = usize::from(field::byte(data, i + 1).ok_or(XmitError::Bounds)?);
                if len < 2 || i + len > end {
                    break;
                }
                f(kind, i, len);
                i += len;
            }
        }
    }
    Ok(())
}

/// The offset of the first option of `kind` with length `len` in the TCP header at `l4`.
pub(crate) fn find(data: &[u8], l4: usize, kind: u8, len: usize) -> Result<Option<usize>, XmitError> {
    let mut at = None;
    walk(data, l4, |k, i, n| {
        if at.is_none() && k == kind && n == len {
            at = Some(i);
        }
    })?;
    Ok(at)
}
