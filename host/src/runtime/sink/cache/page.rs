//! The on-disk page of the sink resend cache: a header, then length-prefixed
//! binary records, checked by a CRC32 of the body.
//!
//! ```text
//! header (24 bytes): magic "OSC1" | count u32 | body_len u64 | crc32(body) u32 | reserved u32
//! body: count x ( data_len u32 | data (value encoding) | payload_len u32 | payload )
//! ```
//!
//! All integers are little-endian. The value encoding is one tag byte per
//! value followed by its content; it round-trips every [`Value`] variant
//! (bytes and datetimes included, which JSON would not).
//!
//! A page is written to `<name>.tmp` and renamed into place, so a reader never
//! sees a half-written page under its final name while the machine stays up;
//! after a power loss the length check and the CRC catch a page whose content
//! did not reach the disk.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use oort_core::{SinkItem, Value};

use super::{io, CacheError};

const MAGIC: &[u8; 4] = b"OSC1";
pub(super) const HEADER_LEN: usize = 24;
/// Nesting deeper than this in a stored value is treated as corruption (a
/// bound on the decoder's recursion, far above what a rule produces).
const MAX_DEPTH: usize = 256;

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STR: u8 = 5;
const T_BYTES: u8 = 6;
const T_ARRAY: u8 = 7;
const T_OBJECT: u8 = 8;
const T_DATETIME: u8 = 9;

/// A page file name: `page-<seq, 20 digits>-<item count>.pg`. The sequence
/// number orders pages (oldest first); the count is in the name so that a page
/// whose content is lost can still be counted as lost.
pub(super) fn page_name(seq: u64, count: usize) -> String {
    format!("page-{seq:020}-{count}.pg")
}

/// Parses a name made by [`page_name`].
pub(super) fn parse_page_name(name: &str) -> Option<(u64, usize)> {
    let rest = name.strip_prefix("page-")?.strip_suffix(".pg")?;
    let (seq, count) = rest.split_once('-')?;
    Some((seq.parse().ok()?, count.parse().ok()?))
}

fn put_len(buf: &mut Vec<u8>, len: usize) -> Result<(), CacheError> {
    let n = u32::try_from(len).map_err(|_| CacheError::TooLarge { len })?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Appends the binary encoding of `v`.
pub(super) fn encode_value(buf: &mut Vec<u8>, v: &Value) -> Result<(), CacheError> {
    match v {
        Value::Null => buf.push(T_NULL),
        Value::Bool(false) => buf.push(T_FALSE),
        Value::Bool(true) => buf.push(T_TRUE),
        Value::Int(i) => {
            buf.push(T_INT);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            buf.push(T_FLOAT);
            buf.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            buf.push(T_STR);
            put_len(buf, s.len())?;
            buf.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            buf.push(T_BYTES);
            put_len(buf, b.len())?;
            buf.extend_from_slice(b);
        }
        Value::Array(a) => {
            buf.push(T_ARRAY);
            put_len(buf, a.len())?;
            for x in a.iter() {
                encode_value(buf, x)?;
            }
        }
        Value::Object(o) => {
            buf.push(T_OBJECT);
            put_len(buf, o.len())?;
            for (k, x) in o.iter() {
                put_len(buf, k.len())?;
                buf.extend_from_slice(k.as_bytes());
                encode_value(buf, x)?;
            }
        }
        Value::Datetime(t) => {
            buf.push(T_DATETIME);
            buf.extend_from_slice(&t.to_le_bytes());
        }
    }
    Ok(())
}

/// Appends one record (data, then payload) to a page body.
pub(super) fn encode_item(buf: &mut Vec<u8>, item: &SinkItem) -> Result<(), CacheError> {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    encode_value(buf, &item.data)?;
    let data_len = buf.len() - at - 4;
    let n = u32::try_from(data_len).map_err(|_| CacheError::TooLarge { len: data_len })?;
    buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
    put_len(buf, item.payload.len())?;
    buf.extend_from_slice(&item.payload);
    Ok(())
}

/// A bounds-checked reader over a page body. Every failure is a reason string
/// that ends up in [`CacheError::Corrupt`].
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.pos..end).ok_or("record past the end")?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize, &'static str> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b) as usize)
    }
    fn u64(&mut self) -> Result<[u8; 8], &'static str> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(b)
    }
    fn str(&mut self) -> Result<Arc<str>, &'static str> {
        let n = self.u32()?;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "invalid UTF-8")?;
        Ok(Arc::from(s))
    }
    fn value(&mut self, depth: usize) -> Result<Value, &'static str> {
        if depth > MAX_DEPTH {
            return Err("value nested too deeply");
        }
        Ok(match self.u8()? {
            T_NULL => Value::Null,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_INT => Value::Int(i64::from_le_bytes(self.u64()?)),
            T_FLOAT => Value::Float(f64::from_le_bytes(self.u64()?)),
            T_DATETIME => Value::Datetime(i64::from_le_bytes(self.u64()?)),
            T_STR => Value::Str(self.str()?),
            T_BYTES => {
                let n = self.u32()?;
                Value::Bytes(Arc::from(self.take(n)?))
            }
            T_ARRAY => {
                let n = self.u32()?;
                // Each element takes at least one byte: do not trust a huge count.
                let mut a = Vec::with_capacity(n.min(self.buf.len() - self.pos));
                for _ in 0..n {
                    a.push(self.value(depth + 1)?);
                }
                Value::Array(Arc::new(a))
            }
            T_OBJECT => {
                let n = self.u32()?;
                let mut m = oort_core::Map::new();
                for _ in 0..n {
                    let k = self.str()?;
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                }
                Value::Object(Arc::new(m))
            }
            _ => return Err("unknown value tag"),
        })
    }
    fn item(&mut self) -> Result<SinkItem, &'static str> {
        let data_len = self.u32()?;
        let end = self.pos + data_len;
        let data = self.value(0)?;
        if self.pos != end {
            return Err("data length does not match its value");
        }
        let n = self.u32()?;
        let start = self.pos;
        self.take(n)?;
        Ok(SinkItem {
            data,
            payload: self.buf.slice(start..start + n),
        })
    }
}

/// Decodes one value (used by tests and by [`read_page`]).
#[cfg(test)]
pub(super) fn decode_value(bytes: &[u8]) -> Result<Value, &'static str> {
    let buf = Bytes::copy_from_slice(bytes);
    let mut r = Reader { buf: &buf, pos: 0 };
    let v = r.value(0)?;
    if r.pos != buf.len() {
        return Err("trailing bytes");
    }
    Ok(v)
}

/// Writes `items` as page `seq` in `dir` (temporary file, then renamed into
/// place). With `sync`, the file's content is on stable storage when this
/// returns (the directory entry needs a separate [`sync_dir`]). `scratch` is a
/// reusable encoding buffer.
pub(super) fn write_page<'a>(
    dir: &Path,
    seq: u64,
    items: impl ExactSizeIterator<Item = &'a SinkItem>,
    sync: bool,
    scratch: &mut Vec<u8>,
) -> Result<PathBuf, CacheError> {
    let count = items.len();
    scratch.clear();
    scratch.extend_from_slice(&[0; HEADER_LEN]);
    for item in items {
        encode_item(scratch, item)?;
    }
    let body_len = (scratch.len() - HEADER_LEN) as u64;
    let crc = crc32fast::hash(&scratch[HEADER_LEN..]);
    let n = u32::try_from(count).map_err(|_| CacheError::TooLarge { len: count })?;
    scratch[0..4].copy_from_slice(MAGIC);
    scratch[4..8].copy_from_slice(&n.to_le_bytes());
    scratch[8..16].copy_from_slice(&body_len.to_le_bytes());
    scratch[16..20].copy_from_slice(&crc.to_le_bytes());

    let path = dir.join(page_name(seq, count));
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(scratch).map_err(io(&tmp))?;
    if sync {
        f.sync_data().map_err(io(&tmp))?;
    }
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// Checks a page's header against its name and its file length without
/// reading the body (done for every page at open). Returns the reason when the
/// page is unusable.
pub(super) fn check_header(path: &Path, count: usize) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut h = [0u8; HEADER_LEN];
    f.read_exact(&mut h)
        .map_err(|_| format!("file is {len} bytes, shorter than the page header"))?;
    let (n, body_len) = parse_header(&h)?;
    if n != count {
        return Err(format!("header says {n} items, file name says {count}"));
    }
    if len != HEADER_LEN as u64 + body_len {
        return Err(format!(
            "file is {len} bytes, header announces {}",
            HEADER_LEN as u64 + body_len
        ));
    }
    Ok(())
}

fn parse_header(h: &[u8]) -> Result<(usize, u64), String> {
    if h.get(0..4) != Some(MAGIC.as_slice()) {
        return Err("not a cache page (bad magic)".into());
    }
    let mut b4 = [0; 4];
    let mut b8 = [0; 8];
    b4.copy_from_slice(&h[4..8]);
    let n = u32::from_le_bytes(b4) as usize;
    b8.copy_from_slice(&h[8..16]);
    Ok((n, u64::from_le_bytes(b8)))
}

/// Reads and verifies a whole page. Payloads share the page's buffer.
pub(super) fn read_page(path: &Path, count: usize) -> Result<Vec<SinkItem>, CacheError> {
    let buf = Bytes::from(fs::read(path).map_err(io(path))?);
    let corrupt = |reason: String| CacheError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let h = buf
        .get(0..HEADER_LEN)
        .ok_or_else(|| corrupt("shorter than the page header".into()))?;
    let (n, body_len) = parse_header(h).map_err(corrupt)?;
    if n != count {
        return Err(corrupt(format!(
            "header says {n} items, file name says {count}"
        )));
    }
    if buf.len() as u64 != HEADER_LEN as u64 + body_len {
        return Err(corrupt("length does not match the header".into()));
    }
    let mut b4 = [0; 4];
    b4.copy_from_slice(&h[16..20]);
    if crc32fast::hash(&buf[HEADER_LEN..]) != u32::from_le_bytes(b4) {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut r = Reader {
        buf: &buf,
        pos: HEADER_LEN,
    };
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(r.item().map_err(|e| corrupt(e.into()))?);
    }
    if r.pos != buf.len() {
        return Err(corrupt("trailing bytes after the last item".into()));
    }
    Ok(items)
}

/// Makes renames and deletions in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Makes an already written file's content durable.
pub(super) fn sync_file(path: &Path) -> Result<(), CacheError> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(io(path))
}

/// The consumption cursor: how many items of the page `seq` were already
/// delivered (popped) when the cache was last persisted.
pub(super) const CURSOR_FILE: &str = "cursor";

pub(super) fn write_cursor(dir: &Path, seq: u64, consumed: u64) -> Result<(), CacheError> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(b"OSCC");
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&consumed.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(CURSOR_FILE);
    let tmp = dir.join("cursor.tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&b).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// Reads the cursor; `None` when there is none or it is unreadable (then no
/// item is skipped: at worst some are sent again, never lost).
pub(super) fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let b = fs::read(dir.join(CURSOR_FILE)).ok()?;
    if b.len() != 24 || &b[0..4] != b"OSCC" {
        return None;
    }
    let mut c = [0; 4];
    c.copy_from_slice(&b[20..24]);
    if crc32fast::hash(&b[..20]) != u32::from_le_bytes(c) {
        return None;
    }
    let mut s = [0; 8];
    s.copy_from_slice(&b[4..12]);
    let mut n = [0; 8];
    n.copy_from_slice(&b[12..20]);
    Some((u64::from_le_bytes(s), u64::from_le_bytes(n)))
}
