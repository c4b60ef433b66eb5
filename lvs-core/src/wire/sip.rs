//! Finding the Call-ID of a SIP message, as `nf_conntrack_sip.c` (`ct_sip_get_header` with
//! `SIP_HDR_CALL_ID`, `callid_len`) and `get_callid` of `ip_vs_pe_sip.c` read it — quirks
//! included, so that the same datagrams stick together as on a kernel director.
//!
//! The reading, in the kernel's words:
//! - a header starts right after a line terminator (CR, LF or CRLF) found at or after the start
//!   offset, and not with a blank or tab (those are continuation lines); the text before the
//!   first terminator (the request line) is never a header;
//! - the name is `Call-Id` (any case, whatever follows it) or the compact `i` followed by a
//!   non-letter; then optional blanks and continuation lines, a colon, optional blanks again;
//! - the value is a run of "word" characters, optionally `@` and another run;
//! - a header that matched but is not followed by a colon ends the search (no Call-ID); an
//!   empty value makes the search go on after it, from its offset *added to* the current start
//!   (`dataoff += matchoff` in `get_callid`, which counts the start twice);
//! - the value is refused when longer than 255 bytes, when it ends the datagram, or when the
//!   next byte is not CR or LF.
//!
//! The kernel starts the search `iph.len + sizeof(struct udphdr)` bytes *into the payload*
//! (it passes the payload and, as the offset, the payload's own offset in the packet), so the
//! first 28 bytes of an IPv4 payload (48 for IPv6) are never looked at; [`call_id`] takes that
//! start as `from`. Letters are the kernel's `ctype`: ASCII and Latin-1 (0xC0..=0xFF but 0xD7
//! and 0xF7).
//!
//! DoS warning: an empty value restarts the search at least twice as far in, so the work is
//! the payload's length times its logarithm at most.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use super::{ipproto, PacketMeta};

/// UDP header length.
const UDP_HEADER: usize = 8;

/// The Call-ID of the UDP datagram `m` describes in `frame` (`ip_vs_sip_fill_param`): the
/// payload runs from after the UDP header to the end of the IP datagram, and the search starts
/// as far into it as the IP header (extension headers included) and the UDP header are long.
/// `None` for another protocol, an empty payload or no Call-ID.
pub fn datagram_call_id<'a>(frame: &'a [u8], m: &PacketMeta) -> Option<&'a [u8]> {
    if m.proto != ipproto::UDP {
        return None;
    }
    let (l3, l4) = (usize::from(m.l3), usize::from(m.l4));
    let payload = frame.get(l4 + UDP_HEADER..l3 + usize::from(m.ip_len))?;
    if payload.is_empty() {
        return None;
    }
    call_id(payload, l4.saturating_sub(l3) + UDP_HEADER)
}

/// Longest Call-ID kept (`IP_VS_PEDATA_MAXLEN`): a longer one counts as none.
pub const CALL_ID_MAX: usize = 255;

/// The Call-ID of the SIP message `payload` (a UDP payload), searched from offset `from`
/// (`get_callid`). `None` when there is none the kernel would take.
pub fn call_id(payload: &[u8], from: usize) -> Option<&[u8]> {
    let mut start = from;
    let (off, len) = loop {
        match header(payload, start) {
            Found::Value(off, len) => break (off, len),
            Found::Empty(off) => start = start.saturating_add(off),
            Found::None => return None,
        }
    };
    if len > CALL_ID_MAX {
        return None;
    }
    match payload.get(off + len) {
        Some(b'\r' | b'\n') => payload.get(off..off + len),
        _ => None,
    }
}

/// What one header search found.
enum Found {
    /// A value at this offset and length.
    Value(usize, usize),
    /// A header with an empty value, whose value would start at this offset.
    Empty(usize),
    /// No header (or one without its colon).
    None,
}

/// `ct_sip_get_header(.., SIP_HDR_CALL_ID, ..)` from offset `from`.
fn header(p: &[u8], from: usize) -> Found {
    let at = |i: usize| p.get(i).copied();
    let mut i = from;
    while i < p.len() {
        // Find the beginning of a line.
        if !matches!(at(i), Some(b'\r' | b'\n')) {
            i += 1;
            continue;
        }
        i += 1;
        if i >= p.len() {
            break;
        }
        if at(i - 1) == Some(b'\r') && at(i) == Some(b'\n') {
            i += 1;
            if i >= p.len() {
                break;
            }
        }
        // A continuation line, or a header of another name: the loop's step skips its first
        // byte.
        if matches!(at(i), Some(b' ' | b'\t')) {
            i += 1;
            continue;
        }
        let rest = p.get(i..).unwrap_or_default();
        if rest.len() >= 7 && rest.get(..7).is_some_and(|n| n.eq_ignore_ascii_case(b"Call-Id")) {
            i += 7;
        } else if rest.len() >= 2
            && rest.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'i'))
            && !rest.get(1).is_some_and(|c| is_alpha(*c))
        {
            i += 1;
        } else {
            i += 1;
            continue;
        }
        let Some(j) = skip_whitespace(p, i) else { return Found::None };
        if at(j) != Some(b':') || j + 1 >= p.len() {
            return Found::None;
        }
        let Some(v) = skip_whitespace(p, j + 1) else { return Found::None };
        return match callid_len(p, v) {
            0 => Found::Empty(v),
            n => Found::Value(v, n),
        };
    }
    Found::None
}

/// `sip_skip_whitespace`: blanks and continuation lines. As in the kernel, the byte right after
/// a continuation's indentation is stepped over too; the answer may lie past the end.
fn skip_whitespace(p: &[u8], mut i: usize) -> Option<usize> {
    while i < p.len() {
        match p.get(i) {
            Some(b' ') => {}
            Some(b'\r' | b'\n') => i = follow_continuation(p, i)?,
            _ => break,
        }
        i += 1;
    }
    Some(i)
}

/// `sip_follow_continuation`: past the line terminator at `i`, the first byte after the blanks
/// that start a continuation line; `None` when the next line is no continuation.
fn follow_continuation(p: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    if i >= p.len() {
        return None;
    }
    if p.get(i - 1) == Some(&b'\r') && p.get(i) == Some(&b'\n') {
        i += 1;
        if i >= p.len() {
            return None;
        }
    }
    if !matches!(p.get(i), Some(b' ' | b'\t')) {
        return None;
    }
    while matches!(p.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    Some(i)
}

/// `callid_len`: a word, optionally followed by `@` and a second word (which must not be
/// empty).
fn callid_len(p: &[u8], i: usize) -> usize {
    let word = |from: usize| p.get(from..).unwrap_or_default().iter().take_while(|c| is_word(**c)).count();
    let len = word(i);
    if len == 0 || p.get(i + len) != Some(&b'@') {
        return len;
    }
    match word(i + len + 1) {
        0 => 0,
        domain => len + 1 + domain,
    }
}

/// The kernel's `isalpha`: ASCII letters and Latin-1's (`lib/ctype.c`).
fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic() || (c >= 0xc0 && c != 0xd7 && c != 0xf7)
}

/// `iswordc` of `nf_conntrack_sip.c`.
fn is_word(c: u8) -> bool {
    is_alpha(c)
        || c.is_ascii_digit()
        || matches!(c, b'!' | b'"' | b'%' | b'('..=b'/' | b':' | b'<' | b'>' | b'?' | b'['..=b']' | b'_' | b'`' | b'{' | b'}' | b'~')
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 28 bytes the kernel skips (an IPv4 header and a UDP header's worth), then `msg`.
    fn v4(msg: &str) -> alloc::vec::Vec<u8> {
        let mut p = b"INVITE sip:bob@biloxi.com SIP/2.0".to_vec();
        p.truncate(28);
        p.extend_from_slice(msg.as_bytes());
        p
    }

    fn get(msg: &str) -> Option<&'static str> {
        let p = alloc::boxed::Box::leak(v4(msg).into_boxed_slice());
        call_id(p, 28).map(|c| core::str::from_utf8(c).unwrap())
    }

    #[test]
    fn rfc3261_invite() {
        let m = " SIP/2.0\r\nVia: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
                 To: Bob <sip:bob@biloxi.com>\r\nCall-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
                 CSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(get(m), Some("a84b4c76e66710@pc33.atlanta.com"));
    }

    #[test]
    fn compact_form_any_case_and_bare_lf() {
        assert_eq!(get("\ni: f81d4fae-7dec-11d0-a765-00a0c91e6bf6\n"), Some("f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
        assert_eq!(get("\r\nCALL-ID:abc\r\n"), Some("abc"));
        assert_eq!(get("\r\nI :abc\r"), Some("abc"));
        // `i` followed by a letter is another header (`Info`), followed by `=` it matches but
        // has no colon, which ends the search.
        assert_eq!(get("\r\nInfo: x\r\nCall-ID: y\r\n"), Some("y"));
        assert_eq!(get("\r\ni=x\r\nCall-ID: y\r\n"), None);
    }

    #[test]
    fn what_the_kernel_refuses() {
        // At the end of the datagram, or followed by something but a line end.
        assert_eq!(get("\r\nCall-ID: abc"), None);
        assert_eq!(get("\r\nCall-ID: abc def\r\n"), None);
        assert_eq!(get("\r\nCall-ID: abc;x\r\n"), None);
        // `@` with nothing after it.
        assert_eq!(get("\r\nCall-ID: abc@\r\n"), None);
        // 255 bytes are kept, 256 are too many.
        let ok = "x".repeat(255);
        assert_eq!(get(&alloc::format!("\r\nCall-ID: {ok}\r\n")).map(str::len), Some(255));
        assert_eq!(get(&alloc::format!("\r\nCall-ID: {ok}x\r\n")), None);
        // Not at the start of a line, or inside the skipped first 28 bytes.
        assert_eq!(get(" Call-ID: abc\r\n"), None);
        let mut p = b"X\r\nCall-ID: abc\r\n".to_vec();
        p.resize(40, b'\n');
        assert_eq!(call_id(&p, 28), None);
        assert_eq!(call_id(&p, 0), Some(&b"abc"[..]));
        assert_eq!(get(""), None);
    }

    #[test]
    fn continuation_lines() {
        // Blanks and a folded line before the colon and the value: the kernel steps over the
        // first byte after the fold's indentation too.
        assert_eq!(get("\r\nCall-ID\r\n  x: abc\r\n"), Some("abc"));
        assert_eq!(get("\r\nCall-ID:\r\n xabc\r\n"), Some("abc"));
        // A header line starting with a blank is a continuation, never a header.
        assert_eq!(get("\r\n Call-ID: abc\r\n"), None);
    }

    #[test]
    fn empty_value_searches_on_from_its_offset_added_to_the_start() {
        // The empty value (`;` is no word character) is at 39: searched from 28, the kernel
        // goes on from 28 + 39 = 67, past the second header; searched from 0, from 39.
        let p = v4("\r\nCall-ID: ;\r\nCall-ID: late\r\n");
        assert_eq!(p.iter().position(|c| *c == b';'), Some(39));
        assert_eq!(p.len(), 57);
        assert_eq!(call_id(&p, 28), None);
        assert_eq!(call_id(&p, 0), Some(&b"late"[..]));
        let filler = "x".repeat(40);
        assert_eq!(get(&alloc::format!("\r\nCall-ID: ;\r\n{filler}\r\nCall-ID: found\r\n")), Some("found"));
        // A value that is only a line end is no continuation: no Call-ID at all.
        assert_eq!(get("\r\nCall-ID: \r\nCall-ID: late\r\n"), None);
    }

    #[test]
    fn latin1_letters_are_word_characters() {
        assert_eq!(get("\r\nCall-ID: caf\u{e9}\r\n").map(str::len), None, "UTF-8 é is 0xc3 0xa9; 0xa9 is no letter");
        let mut p = v4("\r\nCall-ID: ab");
        p.extend_from_slice(&[0xe9, 0xc0, b'\r', b'\n']);
        assert_eq!(call_id(&p, 28), Some(&[b'a', b'b', 0xe9, 0xc0][..]));
    }

    #[test]
    fn every_truncation_is_handled() {
        let p = v4("\r\nCall-ID\r\n :\r\n\tabc@def\r\n");
        for n in 0..=p.len() {
            let _ = call_id(&p[..n], 28);
            let _ = call_id(&p[..n], 0);
            let _ = call_id(&p[..n], n + 5);
        }
        assert_eq!(call_id(&p, 28), None, "the byte after the fold is stepped over: the colon");
    }
}
