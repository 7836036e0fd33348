//! The sink resend cache: what a sink could not deliver waits here, oldest
//! first, in memory and then in pages on disk, until it is resent.
//!
//! The queue is three parts, in order:
//!
//! ```text
//!   head (memory)  ++  pages (disk, oldest first)  ++  tail (memory)
//! ```
//!
//! - `head` holds the oldest items, the ones the next resend reads. It fills
//!   from pushes while nothing is behind it (up to `memory_threshold` items),
//!   and otherwise from the oldest disk page (`bufferPageSize` items) or from
//!   the tail.
//! - `pages` are files `page-<seq>-<count>.pg` in the cache directory; the
//!   sequence number orders them, so a restart finds them in order.
//! - `tail` collects new items once something is ahead of them; each time it
//!   reaches `page_size` items it is written as a page (spilled).
//!
//! A page on disk holds at most `max_disk` items in total; when a spill finds
//! no room, the oldest items (the whole head) are dropped and counted, and the
//! next page moves into memory. With `max_disk` 0 the cache is memory-only.
//!
//! Durability: spills are plain writes (no fsync). [`ResendCache::persist`]
//! writes the memory parts too (the head as its own page, the tail as pages)
//! and fsyncs everything, then records how many items of the head page were
//! already delivered in a small `cursor` file; after a crash the cache reopens
//! at that point (items delivered after the last persist are sent again: at
//! least once, never lost). [`ResendCache::close`] does the same for a graceful
//! stop, or removes the directory with `clean_at_stop`.
//!
//! Differences from eKuiper's cache (`internal/topo/node/cache`): eKuiper
//! keeps one read page and one write page in memory and stores pages in its
//! key-value store; pages it cannot read are an error. Here the memory part
//! before the first spill is `memoryCacheThreshold` items, a page that cannot be
//! read (torn by a crash or power loss) is skipped with its items counted as
//! dropped, and dropped items are always counted ([`ResendCache::dropped`]).

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};

use oort_core::SinkItem;

use super::page;

/// The cache settings of one sink node (eKuiper's property names in comments).
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// `memoryCacheThreshold`: items kept in memory before spilling.
    pub memory_threshold: usize,
    /// `maxDiskCache`: items on disk at most (0: memory only).
    pub max_disk: usize,
    /// `bufferPageSize`: items per disk page.
    pub page_size: usize,
    /// `cleanCacheAtStop`: remove the cache when the node stops (and ignore
    /// what a previous run left).
    pub clean_at_stop: bool,
    /// `<data-dir>/sinkcache/<rule>/<node>`.
    pub dir: PathBuf,
}

impl CacheConfig {
    /// eKuiper's defaults: 1024 in memory, 1,024,000 on disk, pages of 256.
    pub fn new(dir: impl Into<PathBuf>) -> CacheConfig {
        CacheConfig {
            memory_threshold: 1024,
            max_disk: 1_024_000,
            page_size: 256,
            clean_at_stop: false,
            dir: dir.into(),
        }
    }

    /// Refuses values the cache cannot work with, naming the rule property.
    pub fn validate(&self) -> Result<(), CacheError> {
        let bad = |property: &'static str, reason: String| {
            Err(CacheError::InvalidConfig { property, reason })
        };
        if self.page_size == 0 {
            return bad("bufferPageSize", "must be at least 1".into());
        }
        if self.memory_threshold == 0 {
            return bad("memoryCacheThreshold", "must be at least 1".into());
        }
        if self.max_disk != 0 && self.max_disk < self.page_size {
            return bad(
                "maxDiskCache",
                format!(
                    "{} is smaller than one page (bufferPageSize {}); use 0 for a memory-only cache",
                    self.max_disk, self.page_size
                ),
            );
        }
        Ok(())
    }
}

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid sink cache property {property}: {reason}")]
    InvalidConfig {
        property: &'static str,
        reason: String,
    },
    #[error("sink cache I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sink cache page {} is unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("a sink cache item part of {len} bytes is larger than 4 GiB")]
    TooLarge { len: usize },
    #[error("cannot remove {requested} items from the sink cache: it holds {len}")]
    PopBeyondEnd { requested: usize, len: u64 },
}

/// A page file behind the disk part.
#[derive(Debug)]
struct Page {
    seq: u64,
    count: usize,
    path: PathBuf,
}

/// The file holding the head's items (a loaded page, or the head written by
/// `persist`): `consumed` of its `count` items were popped since.
#[derive(Debug)]
struct HeadFile {
    path: PathBuf,
    consumed: u64,
}

/// A FIFO of sink items that spills to disk; see the module documentation.
/// Not thread-safe: one sink node owns it.
pub struct ResendCache {
    pub(super) cfg: CacheConfig,
    head: VecDeque<SinkItem>,
    /// Sequence number reserved for the head's page (lower than every page's).
    head_seq: u64,
    head_file: Option<HeadFile>,
    pages: VecDeque<Page>,
    disk_items: u64,
    tail: VecDeque<SinkItem>,
    next_seq: u64,
    /// Cursor found at open, applied when its page is loaded.
    open_cursor: Option<(u64, u64)>,
    /// The cursor last written, to skip rewriting an unchanged one.
    cursor_written: Option<(u64, u64)>,
    /// Files written since the last persist (fsynced by it).
    unsynced: Vec<PathBuf>,
    dir_dirty: bool,
    dropped: u64,
    lost_unreadable: u64,
    scratch: Vec<u8>,
    /// The oldest page as `front` last read it, reused when it is loaded.
    peeked: Option<(u64, Vec<SinkItem>)>,
}

impl ResendCache {
    /// Opens the cache directory (created if missing) and takes over the
    /// pages a previous run left, in order. With `clean_at_stop` those are
    /// removed instead. A page that cannot be read is skipped: its items are
    /// counted in [`ResendCache::dropped`] and [`ResendCache::lost_unreadable`].
    pub fn open(cfg: CacheConfig) -> Result<ResendCache, CacheError> {
        cfg.validate()?;
        if cfg.clean_at_stop {
            remove_dir(&cfg.dir)?;
        }
        fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
        let mut found = Vec::new();
        let entries = fs::read_dir(&cfg.dir).map_err(io(&cfg.dir))?;
        for entry in entries {
            let entry = entry.map_err(io(&cfg.dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A write interrupted before its rename: never part of the cache.
                fs::remove_file(&path).map_err(io(&path))?;
            } else if let Some((seq, count)) = page::parse_page_name(&name) {
                found.push(Page { seq, count, path });
            }
        }
        found.sort_by_key(|p| p.seq);

        let open_cursor = page::read_cursor(&cfg.dir);
        let max_seq = found.last().map(|p| p.seq);
        let next_seq = max_seq
            .into_iter()
            .chain(open_cursor.map(|c| c.0))
            .max()
            .map_or(0, |s| s + 1);
        let mut cache = ResendCache {
            cfg,
            head: VecDeque::new(),
            head_seq: 0,
            head_file: None,
            pages: VecDeque::new(),
            disk_items: 0,
            tail: VecDeque::new(),
            next_seq,
            open_cursor,
            cursor_written: open_cursor,
            unsynced: Vec::new(),
            dir_dirty: false,
            dropped: 0,
            lost_unreadable: 0,
            scratch: Vec::new(),
            peeked: None,
        };
        for p in found {
            match page::check_header(&p.path, p.count) {
                Ok(()) => {
                    cache.disk_items += p.count as u64;
                    cache.pages.push_back(p);
                }
                Err(reason) => cache.lose_page(&p, &reason)?,
            }
        }
        if cache.lost_unreadable > 0 || !cache.pages.is_empty() {
            tracing::info!(
                dir = %cache.cfg.dir.display(),
                pages = cache.pages.len(),
                items = cache.disk_items,
                lost = cache.lost_unreadable,
                "sink cache reloaded"
            );
        }
        cache.refill()?;
        Ok(cache)
    }

    /// Appends items. When memory and disk are full, the oldest items are
    /// dropped (counted in [`ResendCache::dropped`], logged). On an error the
    /// items are still held, in memory; writing them out is retried by the
    /// next `push` or `persist`.
    pub fn push(&mut self, items: &[SinkItem]) -> Result<(), CacheError> {
        for item in items {
            if self.head_file.is_none()
                && self.pages.is_empty()
                && self.tail.is_empty()
                && self.head.len() < self.cfg.memory_threshold
            {
                if self.head.is_empty() {
                    self.head_seq = self.take_seq();
                }
                self.head.push_back(item.clone());
            } else {
                self.tail.push_back(item.clone());
            }
        }
        while self.tail.len() >= self.cfg.page_size {
            self.spill(self.cfg.page_size, true)?;
        }
        Ok(())
    }

    /// Up to `n` of the oldest items, left in the cache.
    pub fn front(&mut self, n: usize) -> Result<Vec<SinkItem>, CacheError> {
        let mut out: Vec<SinkItem> = self.head.iter().take(n).cloned().collect();
        for (i, p) in self.pages.iter().enumerate() {
            if out.len() >= n {
                return Ok(out);
            }
            if let Some((seq, items)) = &self.peeked {
                if *seq == p.seq {
                    out.extend(items.iter().take(n - out.len()).cloned());
                    continue;
                }
            }
            match page::read_page(&p.path, p.count) {
                Ok(items) => {
                    out.extend(items.iter().take(n - out.len()).cloned());
                    if i == 0 {
                        self.peeked = Some((p.seq, items));
                    }
                }
                // Dealt with (skipped and counted) when the page is loaded;
                // items behind it wait until then, to keep the order.
                Err(CacheError::Corrupt { .. }) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
        let rest = n.saturating_sub(out.len());
        out.extend(self.tail.iter().take(rest).cloned());
        Ok(out)
    }

    /// Removes the `n` oldest items (after they were delivered). Asking for
    /// more than [`ResendCache::len`] changes nothing and is an error.
    pub fn pop(&mut self, n: usize) -> Result<(), CacheError> {
        if n as u64 > self.len() {
            return Err(CacheError::PopBeyondEnd {
                requested: n,
                len: self.len(),
            });
        }
        let mut left = n;
        while left > 0 && !self.head.is_empty() {
            let k = left.min(self.head.len());
            self.head.drain(..k);
            if let Some(f) = self.head_file.as_mut() {
                f.consumed += k as u64;
            }
            left -= k;
            if self.head.is_empty() {
                // Corrupt pages found here shrink the cache: `left` may then
                // outlast it, which ends the loop.
                self.refill()?;
            }
        }
        Ok(())
    }

    /// Items held (memory and disk).
    pub fn len(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.disk_items
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items in memory now.
    pub fn memory_len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Items in spilled pages on disk now (not counting the copy of the head).
    pub fn disk_len(&self) -> u64 {
        self.disk_items
    }

    /// Items dropped since open: the oldest ones when the cache was full, and
    /// those of unreadable pages. The owner (the sink node) adds the growth of
    /// this count to its `records_dropped` metric and logs it, rate-limited;
    /// unreadable pages are also logged here, one line each.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Items of unreadable pages skipped (torn by a crash, damaged on disk):
    /// part of [`ResendCache::dropped`].
    pub fn lost_unreadable(&self) -> u64 {
        self.lost_unreadable
    }

    /// Makes everything pushed so far durable (written and fsynced), so a
    /// checkpoint may count it as handled. Pages written here may take the
    /// disk part past `max_disk` until the next spill makes room.
    pub fn persist(&mut self) -> Result<(), CacheError> {
        if !self.head.is_empty() && self.head_file.is_none() {
            let path = page::write_page(
                &self.cfg.dir,
                self.head_seq,
                self.head.iter(),
                true,
                &mut self.scratch,
            )?;
            self.head_file = Some(HeadFile { path, consumed: 0 });
            self.dir_dirty = true;
        }
        while !self.tail.is_empty() {
            let n = self.tail.len().min(self.cfg.page_size);
            self.spill(n, false)?;
        }
        for path in std::mem::take(&mut self.unsynced) {
            match page::sync_file(&path) {
                // Deleted since it was written: nothing to keep.
                Err(CacheError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.unsynced.push(path);
                    return Err(e);
                }
                Ok(()) => {}
            }
        }
        if let Some(f) = &self.head_file {
            let cursor = (self.head_seq, f.consumed);
            if f.consumed > 0 && self.cursor_written != Some(cursor) {
                page::write_cursor(&self.cfg.dir, cursor.0, cursor.1)?;
                self.cursor_written = Some(cursor);
                self.dir_dirty = true;
            }
        }
        if self.dir_dirty {
            page::sync_dir(&self.cfg.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Graceful stop: the memory part is written to disk (the next open
    /// resumes where this one stopped), or with `clean_at_stop` the cache
    /// directory is removed.
    pub fn close(mut self) -> Result<(), CacheError> {
        if self.cfg.clean_at_stop {
            return remove_dir(&self.cfg.dir);
        }
        self.persist()
    }

    fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Writes the `n` oldest tail items as a page. With `make_room`, the
    /// oldest items are dropped first until the page fits in `max_disk`.
    fn spill(&mut self, mut n: usize, make_room: bool) -> Result<(), CacheError> {
        while make_room && self.disk_items + n as u64 > self.cfg.max_disk as u64 {
            if self.head.is_empty() {
                break;
            }
            let lost = self.head.len() as u64;
            self.head.clear();
            self.dropped += lost;
            self.refill()?;
            // The refill may have taken the tail's first items into memory.
            if self.tail.len() < n {
                return Ok(());
            }
        }
        n = n.min(self.tail.len());
        if n == 0 {
            return Ok(());
        }
        let seq = self.next_seq;
        let path = page::write_page(
            &self.cfg.dir,
            seq,
            self.tail.range(..n),
            false,
            &mut self.scratch,
        )?;
        self.next_seq += 1;
        self.tail.drain(..n);
        self.disk_items += n as u64;
        self.pages.push_back(Page {
            seq,
            count: n,
            path: path.clone(),
        });
        self.unsynced.push(path);
        self.dir_dirty = true;
        Ok(())
    }

    /// Called when the head is empty: removes its file and moves the next
    /// items in (the oldest page, or the tail's first items).
    fn refill(&mut self) -> Result<(), CacheError> {
        while self.head.is_empty() {
            if let Some(f) = self.head_file.take() {
                remove_file(&f.path)?;
                self.dir_dirty = true;
            }
            if let Some(p) = self.pages.pop_front() {
                self.disk_items -= p.count as u64;
                let read = match self.peeked.take() {
                    Some((seq, items)) if seq == p.seq => Ok(items),
                    _ => page::read_page(&p.path, p.count),
                };
                match read {
                    Ok(items) => {
                        let skip = match self.open_cursor.take() {
                            Some((seq, n)) if seq == p.seq => n.min(p.count as u64),
                            _ => 0,
                        };
                        self.head = items.into_iter().skip(skip as usize).collect();
                        self.head_seq = p.seq;
                        self.head_file = Some(HeadFile {
                            path: p.path,
                            consumed: skip,
                        });
                    }
                    Err(CacheError::Corrupt { reason, .. }) => self.lose_page(&p, &reason)?,
                    Err(e) => {
                        self.disk_items += p.count as u64;
                        self.pages.push_front(p);
                        return Err(e);
                    }
                }
            } else if !self.tail.is_empty() {
                let n = self
                    .tail
                    .len()
                    .min(self.cfg.memory_threshold.max(self.cfg.page_size));
                self.head.extend(self.tail.drain(..n));
                self.head_seq = self.take_seq();
            } else {
                break;
            }
        }
        Ok(())
    }

    /// Skips an unreadable page: its items count as dropped.
    fn lose_page(&mut self, p: &Page, reason: &str) -> Result<(), CacheError> {
        tracing::warn!(
            page = %p.path.display(),
            items = p.count,
            reason,
            "sink cache: skipping an unreadable page, its items are lost"
        );
        self.dropped += p.count as u64;
        self.lost_unreadable += p.count as u64;
        remove_file(&p.path)?;
        self.dir_dirty = true;
        Ok(())
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn remove_file(path: &Path) -> Result<(), CacheError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}

fn remove_dir(path: &Path) -> Result<(), CacheError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
        _ => Ok(()),
    }
}
