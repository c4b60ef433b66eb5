//! Capture files: pcap and pcapng in (the `pcap-file` crate), pcap out — files tcpdump and
//! tshark open.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};

/// One captured frame and its timestamp (nanoseconds since the epoch of the capture).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// Capture time in nanoseconds.
    pub ts_ns: u64,
    /// The frame's bytes.
    pub data: Vec<u8>,
}

/// Errors reading or writing captures.
#[derive(Debug)]
pub enum CaptureError {
    /// The file could not be opened or written.
    Io(std::io::Error),
    /// The file is not a capture this reader understands.
    Format(String),
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureError::Io(e) => write!(f, "{e}"),
            CaptureError::Format(m) => write!(f, "bad capture: {m}"),
        }
    }
}

impl std::error::Error for CaptureError {}

impl From<std::io::Error> for CaptureError {
    fn from(e: std::io::Error) -> Self {
        CaptureError::Io(e)
    }
}

fn fmt_err(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Format(e.to_string())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads every frame of a pcap or pcapng file (told apart by their magic numbers).
///
/// # Errors
/// [`CaptureError`] when the file cannot be read or parsed.
pub fn read_capture(path: &Path) -> Result<Vec<Captured>, CaptureError> {
    let mut buf = Vec::new();
    BufReader::new(File::open(path)?).read_to_end(&mut buf)?;
    read_capture_bytes(&buf)
}

/// Reads every frame of an in-memory pcap or pcapng file.
///
/// # Errors
/// [`CaptureError::Format`] when the bytes are not a capture.
pub fn read_capture_bytes(buf: &[u8]) -> Result<Vec<Captured>, CaptureError> {
    let mut out = Vec::new();
    if buf.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = PcapNgReader::new(buf).map_err(fmt_err)?;
        while let Some(b) = r.next_block() {
            match b.map_err(fmt_err)? {
                Block::EnhancedPacket(p) => out.push(Captured { ts_ns: nanos(p.timestamp), data: p.data.into_owned() }),
                Block::SimplePacket(p) => out.push(Captured { ts_ns: 0, data: p.data.into_owned() }),
                _ => {}
            }
        }
    } else {
        // Raw records, as tcpdump reads them: captures whose lengths exceed the snap length
        // are common in the wild and still hold good frames.
        let mut r = PcapReader::new(buf).map_err(fmt_err)?;
        let scale = match r.header().ts_resolution {
            TsResolution::MicroSecond => 1_000,
            TsResolution::NanoSecond => 1,
        };
        while let Some(p) = r.next_raw_packet() {
            let p = p.map_err(fmt_err)?;
            let ts_ns = u64::from(p.ts_sec) * 1_000_000_000 + u64::from(p.ts_frac) * scale;
            out.push(Captured { ts_ns, data: p.data.into_owned() });
        }
    }
    Ok(out)
}

/// Writes frames to a pcap file (Ethernet, microsecond timestamps).
pub struct CaptureWriter<W: Write> {
    w: PcapWriter<W>,
}

impl CaptureWriter<BufWriter<File>> {
    /// Creates (or truncates) a pcap file.
    ///
    /// # Errors
    /// [`CaptureError`] when the file cannot be created.
    pub fn create(path: &Path) -> Result<Self, CaptureError> {
        CaptureWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> CaptureWriter<W> {
    /// A writer over any byte sink.
    ///
    /// # Errors
    /// [`CaptureError`] when the header cannot be written.
    pub fn new(w: W) -> Result<Self, CaptureError> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::MicroSecond,
            snaplen: 262_144,
            ..PcapHeader::default()
        };
        Ok(CaptureWriter { w: PcapWriter::with_header(w, header).map_err(fmt_err)? })
    }

    /// Appends one frame.
    ///
    /// # Errors
    /// [`CaptureError`] when the write fails.
    pub fn write(&mut self, ts_ns: u64, data: &[u8]) -> Result<(), CaptureError> {
        let len = u32::try_from(data.len()).map_err(fmt_err)?;
        self.w.write_packet(&PcapPacket::new(Duration::from_nanos(ts_ns), len, data)).map_err(fmt_err)?;
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn into_inner(self) -> W {
        self.w.into_writer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_memory() {
        let mut w = CaptureWriter::new(Vec::new()).unwrap();
        w.write(1_500_000_000_123_000, &[1, 2, 3]).unwrap();
        w.write(1_500_000_001_000_000, &[4; 60]).unwrap();
        let bytes = w.into_inner();
        let frames = read_capture_bytes(&bytes).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], Captured { ts_ns: 1_500_000_000_123_000, data: vec![1, 2, 3] });
        assert_eq!(frames[1].data.len(), 60);
        assert!(read_capture_bytes(b"not a capture").is_err());
    }
}
