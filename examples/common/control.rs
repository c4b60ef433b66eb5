//! The director's control channel: what `lvsadm` sends over the director's Unix stream socket
//! and what comes back. One request and one response per connection:
//!
//! ```text
//! request  = u32 length, then: u32 argc, argc × (u32 length, UTF-8 argument), u32 length, stdin
//! response = u32 length, then: u8 exit status, u32 length, stdout, u32 length, stderr
//! ```
//!
//! Integers are big-endian; a length counts the bytes after it; a message is at most
//! [`MAX_MESSAGE`] bytes. The arguments are an `ipvsadm` command line without the program name
//! (`-A -t 10.0.0.1:80 -s wlc`), or one of the director's own: [`HEALTH`], [`VRRP`]. The
//! response is what `ipvsadm` would have printed and returned.

use std::io::{self, Read, Write};

/// Where the director listens unless told otherwise (`--control`, `LVSADM_SOCKET`).
pub(crate) const DEFAULT_SOCKET: &str = "/run/lvs/director.sock";

/// The largest message either side sends or accepts: a restore of some 100,000 rules fits.
pub(crate) const MAX_MESSAGE: usize = 16 << 20;

/// The argument asking for the health monitor's status listing.
pub(crate) const HEALTH: &str = "--health";

/// The argument asking for the VRRP instances' states.
pub(crate) const VRRP: &str = "--vrrp";

/// One invocation: an `ipvsadm` command line and what its standard input holds (for `-R`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    /// The arguments, without the program name.
    pub(crate) args: Vec<String>,
    /// Standard input.
    pub(crate) stdin: String,
}

/// What the invocation printed and returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Response {
    /// The exit status.
    pub(crate) status: u8,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("control message: {what}"))
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    let n = u32::try_from(bytes.len()).map_err(|_| bad("field too long"))?;
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes `body` with its length in front.
fn send(w: &mut dyn Write, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_MESSAGE {
        return Err(bad("over the size limit"));
    }
    let mut framed = Vec::with_capacity(4 + body.len());
    put(&mut framed, body)?;
    w.write_all(&framed)?;
    w.flush()
}

/// Reads one length-prefixed message body.
fn receive(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut len = [0; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(bad("over the size limit"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// A reader over one message body.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u32(&mut self) -> io::Result<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>().ok_or_else(|| bad("truncated"))?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn text(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(bad("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8(head.to_vec()).map_err(|_| bad("text that is not UTF-8"))
    }

    fn end(&self) -> io::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("bytes after the last field"))
        }
    }
}

impl Request {
    /// Sends the request.
    ///
    /// # Errors
    /// A write error, or a request over [`MAX_MESSAGE`].
    pub(crate) fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut body = Vec::new();
        let argc = u32::try_from(self.args.len()).map_err(|_| bad("too many arguments"))?;
        body.extend_from_slice(&argc.to_be_bytes());
        for a in &self.args {
            put(&mut body, a.as_bytes())?;
        }
        put(&mut body, self.stdin.as_bytes())?;
        send(w, &body)
    }

    /// Reads a request.
    ///
    /// # Errors
    /// A read error, or a message that is truncated, too long or malformed.
    pub(crate) fn read(r: &mut dyn Read) -> io::Result<Request> {
        let body = receive(r)?;
        let mut f = Fields(&body);
        let argc = f.u32()?;
        // Each argument takes at least its length: a count beyond that is a lie.
        if argc as usize > body.len() / 4 {
            return Err(bad("truncated"));
        }
        let args = (0..argc).map(|_| f.text()).collect::<io::Result<Vec<String>>>()?;
        let stdin = f.text()?;
        f.end()?;
        Ok(Request { args, stdin })
    }
}

impl Response {
    /// Sends the response.
    ///
    /// # Errors
    /// A write error, or a response over [`MAX_MESSAGE`].
    pub(crate) fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut body = vec![self.status];
        put(&mut body, self.stdout.as_bytes())?;
        put(&mut body, self.stderr.as_bytes())?;
        send(w, &body)
    }

    /// Reads a response.
    ///
    /// # Errors
    /// A read error, or a message that is truncated, too long or malformed.
    pub(crate) fn read(r: &mut dyn Read) -> io::Result<Response> {
        let body = receive(r)?;
        let (status, rest) = body.split_first().ok_or_else(|| bad("truncated"))?;
        let mut f = Fields(rest);
        let (stdout, stderr) = (f.text()?, f.text()?);
        f.end()?;
        Ok(Response { status: *status, stdout, stderr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request { args: vec!["-R".into(), "ü".into()], stdin: "-A -t 10.0.0.1:80 -s rr\n".into() }
    }

    #[test]
    fn encode_as_documented() {
        let mut wire = Vec::new();
        request().write(&mut wire).unwrap();
        let mut want = vec![0, 0, 0, 44, 0, 0, 0, 2, 0, 0, 0, 2, b'-', b'R', 0, 0, 0, 2, 0xc3, 0xbc, 0, 0, 0, 24];
        want.extend_from_slice(b"-A -t 10.0.0.1:80 -s rr\n");
        assert_eq!(wire, want);
        let mut wire = Vec::new();
        Response { status: 255, stdout: "a".into(), stderr: String::new() }.write(&mut wire).unwrap();
        assert_eq!(wire, [0, 0, 0, 10, 255, 0, 0, 0, 1, b'a', 0, 0, 0, 0]);
    }

    #[test]
    fn parse_what_was_written() {
        let mut wire = Vec::new();
        request().write(&mut wire).unwrap();
        assert_eq!(Request::read(&mut wire.as_slice()).unwrap(), request());
        let resp = Response { status: 2, stdout: "out\n".into(), stderr: "err\n".into() };
        let mut wire = Vec::new();
        resp.write(&mut wire).unwrap();
        assert_eq!(Response::read(&mut wire.as_slice()).unwrap(), resp);
    }

    #[test]
    fn truncated_at_every_length() {
        let mut wire = Vec::new();
        request().write(&mut wire).unwrap();
        for n in 0..wire.len() {
            assert!(Request::read(&mut &wire[..n]).is_err(), "{n} bytes");
        }
        // A body whose fields end early, behind a length that covers it.
        for n in 0..wire.len() - 4 {
            let mut short = u32::try_from(n).unwrap().to_be_bytes().to_vec();
            short.extend_from_slice(&wire[4..4 + n]);
            assert_eq!(Request::read(&mut short.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData, "{n}");
        }
    }

    #[test]
    fn oversized_malformed_and_trailing_are_refused() {
        let huge = u32::try_from(MAX_MESSAGE + 1).unwrap().to_be_bytes();
        assert_eq!(Request::read(&mut huge.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let lying = [0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Request::read(&mut lying.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let not_utf8 = [0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0xff];
        assert_eq!(Request::read(&mut not_utf8.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let trailing = [0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        assert_eq!(Request::read(&mut trailing.as_slice()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let big = Request { args: vec![], stdin: "x".repeat(MAX_MESSAGE) };
        assert!(big.write(&mut Vec::new()).is_err());
    }
}
