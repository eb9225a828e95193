//! Byte-exact tar and gzip for the image: every output is a pure function of
//! its input, so an image's digests depend on the module bytes alone (no
//! clock, no uid/gid, no file system order, no compressor version).
//!
//! - tar: POSIX ustar headers, entries in the order given (callers sort),
//!   mtime 0, uid/gid 0, no user or group names, mode 0644 (files) or 0755
//!   (directories), two zero blocks at the end;
//! - gzip (RFC 1952): no name, mtime 0, OS "unknown", and deflate *stored*
//!   blocks (RFC 1951 BTYPE 00): valid for every gzip reader, and unlike a
//!   compressor's output it cannot change with a library upgrade. A wasm
//!   module built with `-Oz` gains little from compression anyway.

use std::fmt::Write as _;

/// One tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive (`blobs/sha256/…`; directories end in `/`).
    pub path: String,
    /// File content (empty for a directory).
    pub data: Vec<u8>,
}

impl Entry {
    /// Whether this entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.path.ends_with('/')
    }
}

const BLOCK: usize = 512;

/// Writes `value` as zero-padded octal into `field`, NUL-terminated.
fn octal(field: &mut [u8], value: u64) -> Result<(), String> {
    let width = field.len().saturating_sub(1);
    let text = format!("{value:0width$o}");
    if text.len() > width {
        return Err(format!("{value} does not fit a {width}-digit tar field"));
    }
    if let Some(dst) = field.get_mut(..width) {
        dst.copy_from_slice(text.as_bytes());
    }
    Ok(())
}

fn put(header: &mut [u8; BLOCK], at: usize, bytes: &[u8]) {
    if let Some(dst) = header.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

fn field(header: &mut [u8; BLOCK], at: usize, len: usize) -> &mut [u8] {
    header
        .get_mut(at..at.saturating_add(len))
        .unwrap_or_default()
}

/// A ustar header for `entry`.
fn header(entry: &Entry) -> Result<[u8; BLOCK], String> {
    let mut h = [0u8; BLOCK];
    if entry.path.len() > 100 || entry.path.is_empty() {
        return Err(format!("tar path {:?} is not 1-100 bytes", entry.path));
    }
    put(&mut h, 0, entry.path.as_bytes());
    let (mode, kind) = if entry.is_dir() {
        (0o755, b'5')
    } else {
        (0o644, b'0')
    };
    octal(field(&mut h, 100, 8), mode)?;
    octal(field(&mut h, 108, 8), 0)?; // uid
    octal(field(&mut h, 116, 8), 0)?; // gid
    octal(field(&mut h, 124, 12), entry.data.len() as u64)?;
    octal(field(&mut h, 136, 12), 0)?; // mtime
    put(&mut h, 156, &[kind]);
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    octal(field(&mut h, 329, 8), 0)?; // devmajor
    octal(field(&mut h, 337, 8), 0)?; // devminor
    // The checksum is computed with its own field read as spaces.
    put(&mut h, 148, b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let mut text = String::new();
    let _ = write!(text, "{sum:06o}\0 ");
    put(&mut h, 148, text.as_bytes());
    Ok(h)
}

/// A tar archive of `entries`, in the order given.
pub fn tar(entries: &[Entry]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&header(e)?);
        out.extend_from_slice(&e.data);
        let pad = (BLOCK - e.data.len() % BLOCK) % BLOCK;
        out.resize(out.len().saturating_add(pad), 0);
    }
    out.resize(out.len().saturating_add(2 * BLOCK), 0);
    Ok(out)
}

fn parse_octal(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn c_string(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8(bytes.get(..end)?.to_vec()).ok()
}

/// Reads a ustar archive (regular files and directories; header checksums
/// verified). Used to check layers and tarballs, not for arbitrary archives.
pub fn untar(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut at = 0usize;
    loop {
        let h = bytes
            .get(at..at.saturating_add(BLOCK))
            .ok_or("tar archive ends without its two zero blocks")?;
        if h.iter().all(|b| *b == 0) {
            return Ok(entries);
        }
        let mut copy = [0u8; BLOCK];
        copy.copy_from_slice(h);
        put(&mut copy, 148, b"        ");
        let sum: u64 = copy.iter().map(|b| u64::from(*b)).sum();
        let want = parse_octal(h.get(148..156).unwrap_or_default()).ok_or("bad tar checksum")?;
        if sum != want {
            return Err(format!("tar header at byte {at}: checksum mismatch"));
        }
        let name = c_string(h.get(0..100).unwrap_or_default()).ok_or("tar name is not UTF-8")?;
        let prefix = c_string(h.get(345..500).unwrap_or_default()).unwrap_or_default();
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size = parse_octal(h.get(124..136).unwrap_or_default()).ok_or("bad tar size")?;
        let size = usize::try_from(size).map_err(|_| "tar entry too large")?;
        let kind = h.get(156).copied().unwrap_or(0);
        let start = at.saturating_add(BLOCK);
        let data = bytes
            .get(start..start.saturating_add(size))
            .ok_or_else(|| format!("tar entry {path:?} is truncated"))?;
        match kind {
            b'0' | 0 | b'5' => entries.push(Entry {
                path,
                data: data.to_vec(),
            }),
            other => {
                return Err(format!(
                    "tar entry {path:?} has type {:?}; only files and directories are expected",
                    char::from(other)
                ));
            }
        }
        let blocks = size.div_ceil(BLOCK);
        at = start.saturating_add(blocks.saturating_mul(BLOCK));
    }
}

/// CRC-32 (IEEE 802.3, as gzip uses it).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (n, slot) in (0u32..).zip(table.iter_mut()) {
        let mut c = n;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    !bytes.iter().fold(!0u32, |c, b| {
        let i = usize::from((c as u8) ^ b);
        table.get(i).copied().unwrap_or(0) ^ (c >> 8)
    })
}

const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
const STORED_MAX: usize = 0xffff;

/// `data` as a gzip member of deflate stored blocks.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = GZIP_HEADER.to_vec();
    let mut chunks = data.chunks(STORED_MAX).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        // BFINAL in bit 0, BTYPE 00; the rest of the byte pads to a boundary.
        out.push(u8::from(last));
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Reads a gzip member written by [`gzip`] (stored blocks only; CRC and
/// length checked). A layer compressed with real deflate is refused.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let head = bytes.get(..10).ok_or("gzip data is truncated")?;
    if head.get(..3) != Some(&GZIP_HEADER[..3]) {
        return Err("not gzip data".into());
    }
    if head.get(3) != Some(&0) {
        return Err("gzip header flags are not stickyctl's (no name, no extra fields)".into());
    }
    let mut out = Vec::new();
    let mut at = 10usize;
    loop {
        let b = *bytes.get(at).ok_or("gzip data is truncated")?;
        if (b >> 1) & 3 != 0 {
            return Err(
                "the gzip layer is deflate-compressed; stickyctl reads the stored-block layers it writes"
                    .into(),
            );
        }
        let len = bytes
            .get(at.saturating_add(1)..at.saturating_add(3))
            .ok_or("gzip data is truncated")?;
        let nlen = bytes
            .get(at.saturating_add(3)..at.saturating_add(5))
            .ok_or("gzip data is truncated")?;
        let len = u16::from_le_bytes([len[0], len[1]]);
        if u16::from_le_bytes([nlen[0], nlen[1]]) != !len {
            return Err("stored block length check failed".into());
        }
        let start = at.saturating_add(5);
        let end = start.saturating_add(usize::from(len));
        out.extend_from_slice(bytes.get(start..end).ok_or("gzip data is truncated")?);
        at = end;
        if b & 1 == 1 {
            break;
        }
    }
    let trailer = bytes
        .get(at..at.saturating_add(8))
        .ok_or("gzip trailer is missing")?;
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if crc != crc32(&out) || size != out.len() as u32 {
        return Err("gzip CRC or length does not match the content".into());
    }
    if bytes.len() != at.saturating_add(8) {
        return Err("bytes after the gzip member".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn gzip_round_trips_across_block_boundaries() {
        for n in [0usize, 1, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let z = gzip(&data);
            assert_eq!(gunzip(&z).unwrap(), data, "{n}");
            assert_eq!(z, gzip(&data), "deterministic");
        }
        let mut z = gzip(b"hello");
        let last = z.len() - 9;
        z[last] ^= 1;
        assert!(gunzip(&z).is_err(), "a flipped byte is caught by the CRC");
    }

    #[test]
    fn tar_round_trips_with_fixed_metadata() {
        let entries = vec![
            Entry {
                path: "blobs/".into(),
                data: vec![],
            },
            Entry {
                path: "blobs/a".into(),
                data: b"x".repeat(513),
            },
            Entry {
                path: "oci-layout".into(),
                data: b"{}".to_vec(),
            },
        ];
        let t = tar(&entries).unwrap();
        assert_eq!(t.len() % 512, 0);
        assert_eq!(untar(&t).unwrap(), entries);
        // mtime, uid and gid are zero: the header of a file names nothing of this machine.
        assert_eq!(&t[136..147], b"00000000000");
        assert_eq!(&t[108..115], b"0000000");
        assert!(
            tar(&[Entry {
                path: "x".repeat(101),
                data: vec![]
            }])
            .is_err()
        );
    }
}
