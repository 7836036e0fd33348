use std::sync::Arc;

use bytes::Bytes;
use oort_core::{Map, SinkItem, Value};

use super::page;
use super::{CacheConfig, CacheError, ResendCache};

/// Item `i`: even ones carry a row, odd ones are payload-only (data Null).
fn item(i: u64) -> SinkItem {
    let data = if i.is_multiple_of(2) {
        let mut m = Map::new();
        m.insert(Arc::from("i"), Value::Int(i as i64));
        Value::Object(Arc::new(m))
    } else {
        Value::Null
    };
    SinkItem {
        data,
        payload: Bytes::from(format!("msg-{i}")),
    }
}

fn items(range: std::ops::Range<u64>) -> Vec<SinkItem> {
    range.map(item).collect()
}

/// The ids of items, checked against their data.
fn ids(v: &[SinkItem]) -> Vec<u64> {
    v.iter()
        .map(|it| {
            let s = std::str::from_utf8(&it.payload).unwrap_or_default();
            let i: u64 = s.trim_start_matches("msg-").parse().unwrap_or(u64::MAX);
            assert_eq!(it.data, item(i).data, "data of item {i} survived");
            i
        })
        .collect()
}

fn cfg(dir: &std::path::Path, memory: usize, disk: usize, page: usize) -> CacheConfig {
    CacheConfig {
        memory_threshold: memory,
        max_disk: disk,
        page_size: page,
        clean_at_stop: false,
        dir: dir.join("sinkcache").join("rule1").join("mqtt_0"),
    }
}

/// Pops everything, `batch` at a time, returning the ids in order.
fn drain(c: &mut ResendCache, batch: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while !c.is_empty() {
        let got = c.front(batch).expect("front");
        assert!(
            !got.is_empty(),
            "front returned nothing with {} held",
            c.len()
        );
        c.pop(got.len()).expect("pop");
        out.extend(ids(&got));
    }
    out
}

fn page_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pg"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn order_is_kept_across_memory_and_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = ResendCache::open(cfg(tmp.path(), 5, 1000, 3)).expect("open");
    // One by one, then in batches larger than a page.
    for i in 0..10 {
        c.push(&[item(i)]).expect("push");
    }
    c.push(&items(10..40)).expect("push");
    assert!(c.disk_len() > 0, "items past the memory threshold spilled");
    assert!(c.memory_len() <= 5 + 3, "memory holds {}", c.memory_len());
    assert_eq!(c.len(), 40);
    // front looks across head, pages and tail without removing.
    assert_eq!(
        ids(&c.front(40).expect("front")),
        (0..40).collect::<Vec<_>>()
    );
    assert_eq!(c.len(), 40);
    // Interleave pops and pushes: the order stays one FIFO.
    c.pop(7).expect("pop");
    c.push(&items(40..45)).expect("push");
    let mut got = drain(&mut c, 4);
    got.splice(0..0, 0..7);
    assert_eq!(got, (0..45).collect::<Vec<_>>());
    assert_eq!(c.dropped(), 0);
    // A drained cache goes back to memory only and leaves no page behind.
    c.push(&items(45..47)).expect("push");
    assert_eq!(c.memory_len(), 2);
    assert!(page_files(&c.cfg.dir).is_empty());
}

#[test]
fn close_then_open_resumes_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = cfg(tmp.path(), 4, 1000, 3);
    let mut c = ResendCache::open(conf.clone()).expect("open");
    c.push(&items(0..20)).expect("push");
    c.pop(5).expect("pop");
    assert!(c.memory_len() > 0 && c.disk_len() > 0);
    c.close().expect("close");

    let mut c = ResendCache::open(conf.clone()).expect("reopen");
    assert_eq!(c.len(), 15);
    assert_eq!(c.lost_unreadable(), 0);
    // New items queue behind the reloaded ones.
    c.push(&items(20..23)).expect("push");
    c.pop(2).expect("pop");
    c.close().expect("close");

    let mut c = ResendCache::open(conf).expect("reopen");
    assert_eq!(drain(&mut c, 5), (7..23).collect::<Vec<_>>());
}

#[test]
fn clean_at_stop_removes_the_cache() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut conf = cfg(tmp.path(), 2, 100, 2);
    // A previous run without cleanCacheAtStop left pages.
    let mut c = ResendCache::open(conf.clone()).expect("open");
    c.push(&items(0..10)).expect("push");
    c.close().expect("close");
    assert!(!page_files(&conf.dir).is_empty());

    conf.clean_at_stop = true;
    let mut c = ResendCache::open(conf.clone()).expect("open clean");
    assert_eq!(
        c.len(),
        0,
        "cleanCacheAtStop ignores what a previous run left"
    );
    c.push(&items(0..10)).expect("push");
    c.close().expect("close");
    assert!(!conf.dir.exists(), "the cache directory is removed at stop");
}

#[test]
fn a_full_cache_drops_the_oldest_and_counts_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = ResendCache::open(cfg(tmp.path(), 4, 6, 2)).expect("open");
    c.push(&items(0..100)).expect("push");
    assert!(c.disk_len() <= 6, "disk holds {}", c.disk_len());
    assert!(c.memory_len() <= 4 + 2, "memory holds {}", c.memory_len());
    assert_eq!(c.dropped() + c.len(), 100, "every item is held or counted");
    assert!(c.dropped() > 0);
    let kept = drain(&mut c, 3);
    let first = 100 - kept.len() as u64;
    assert_eq!(
        kept,
        (first..100).collect::<Vec<_>>(),
        "the newest are kept, in order"
    );
}

#[test]
fn memory_only_cache_writes_nothing_and_counts_drops() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = ResendCache::open(cfg(tmp.path(), 8, 0, 4)).expect("open");
    for i in 0..50 {
        c.push(&[item(i)]).expect("push");
        assert!(c.memory_len() <= 8 + 4);
    }
    assert_eq!(c.disk_len(), 0);
    assert!(page_files(&c.cfg.dir).is_empty());
    assert_eq!(c.dropped() + c.len(), 50);
    let kept = drain(&mut c, 5);
    assert_eq!(*kept.last().expect("some kept"), 49);
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn a_torn_page_is_skipped_counted_and_the_rest_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = cfg(tmp.path(), 3, 1000, 3);
    let mut c = ResendCache::open(conf.clone()).expect("open");
    c.push(&items(0..12)).expect("push");
    c.close().expect("close");
    // head page 0..3, pages 3..6, 6..9, 9..12: tear the last one as a crash
    // during its write would, and leave an interrupted temporary file.
    let pages = page_files(&conf.dir);
    assert_eq!(pages.len(), 4, "{pages:?}");
    let last = &pages[3];
    let len = std::fs::metadata(last).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .expect("open page");
    f.set_len(len - 5).expect("truncate");
    drop(f);
    std::fs::write(conf.dir.join("page-00000000000000000099-3.tmp"), b"half").expect("tmp");

    let mut c = ResendCache::open(conf.clone()).expect("a torn page does not prevent open");
    assert_eq!(c.lost_unreadable(), 3);
    assert_eq!(c.dropped(), 3);
    assert_eq!(c.len(), 9);
    assert!(!conf.dir.join("page-00000000000000000099-3.tmp").exists());
    assert_eq!(drain(&mut c, 4), (0..9).collect::<Vec<_>>());
}

#[test]
fn a_damaged_page_body_is_caught_by_its_checksum() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = cfg(tmp.path(), 3, 1000, 3);
    let mut c = ResendCache::open(conf.clone()).expect("open");
    c.push(&items(0..9)).expect("push");
    c.close().expect("close");
    let pages = page_files(&conf.dir);
    let mut b = std::fs::read(&pages[1]).expect("read");
    let at = b.len() - 2;
    b[at] ^= 0xff; // same length, different content
    std::fs::write(&pages[1], b).expect("write");

    let mut c = ResendCache::open(conf).expect("open");
    assert_eq!(c.len(), 9, "the header is intact: found when loaded");
    let got = drain(&mut c, 2);
    assert_eq!(got, vec![0, 1, 2, 6, 7, 8]);
    assert_eq!(c.dropped(), 3);
    assert_eq!(c.lost_unreadable(), 3);
}

#[test]
fn persist_makes_everything_durable_without_close() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let conf = cfg(tmp.path(), 4, 1000, 3);
    let mut c = ResendCache::open(conf.clone()).expect("open");
    c.push(&items(0..3)).expect("push");
    c.persist().expect("persist");
    // Killed: no close, nothing else written.
    drop(c);
    let mut c = ResendCache::open(conf.clone()).expect("reopen");
    assert_eq!(ids(&c.front(10).expect("front")), vec![0, 1, 2]);

    // Memory head, spilled pages and a partial tail; some delivered.
    c.push(&items(3..14)).expect("push");
    c.pop(2).expect("pop");
    c.persist().expect("persist");
    drop(c);
    let mut c = ResendCache::open(conf.clone()).expect("reopen");
    assert_eq!(c.len(), 12);
    assert_eq!(
        ids(&c.front(20).expect("front")),
        (2..14).collect::<Vec<_>>()
    );

    // Pops after the last persist are not recorded: those items come back
    // (sent twice), later ones are never lost.
    c.pop(1).expect("pop");
    c.persist().expect("persist");
    c.pop(2).expect("pop");
    c.push(&items(14..15)).expect("push");
    drop(c);
    let mut c = ResendCache::open(conf).expect("reopen");
    assert_eq!(drain(&mut c, 4), (3..14).collect::<Vec<_>>());
}

#[test]
fn pop_past_the_end_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = ResendCache::open(cfg(tmp.path(), 4, 100, 2)).expect("open");
    c.push(&items(0..3)).expect("push");
    let err = c.pop(4).expect_err("only 3 held");
    assert!(matches!(
        err,
        CacheError::PopBeyondEnd {
            requested: 4,
            len: 3
        }
    ));
    assert_eq!(drain(&mut c, 10), vec![0, 1, 2]);
}

#[test]
fn bad_settings_are_refused_naming_the_property() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (conf, prop) in [
        (cfg(tmp.path(), 4, 100, 0), "bufferPageSize"),
        (cfg(tmp.path(), 0, 100, 2), "memoryCacheThreshold"),
        (cfg(tmp.path(), 4, 3, 8), "maxDiskCache"),
    ] {
        match ResendCache::open(conf) {
            Err(CacheError::InvalidConfig { property, .. }) => assert_eq!(property, prop),
            Err(e) => panic!("{prop}: unexpected error {e}"),
            Ok(_) => panic!("{prop}: accepted"),
        }
    }
    assert!(CacheConfig::new(tmp.path()).validate().is_ok());
}

#[test]
fn every_value_kind_round_trips() {
    let mut obj = Map::new();
    obj.insert(Arc::from("s"), Value::str("héllo"));
    obj.insert(Arc::from("n"), Value::Null);
    obj.insert(
        Arc::from("a"),
        Value::Array(Arc::new(vec![
            Value::Int(-7),
            Value::Float(1.5),
            Value::Bool(true),
            Value::Bool(false),
        ])),
    );
    let values = [
        Value::Null,
        Value::Int(i64::MIN),
        Value::Float(f64::MAX),
        Value::str(""),
        Value::Bytes(Arc::from(&[0u8, 255, 7][..])),
        Value::Datetime(1_700_000_000_123),
        Value::Object(Arc::new(obj)),
    ];
    for v in values {
        let mut buf = Vec::new();
        page::encode_value(&mut buf, &v).expect("encode");
        let back = page::decode_value(&buf).expect("decode");
        assert_eq!(back, v);
        // Same variant too (Int and Float compare equal across variants).
        assert_eq!(back.type_name(), v.type_name());
    }
    // A truncated or unknown encoding is an error, not a panic.
    assert!(page::decode_value(&[5, 9, 0, 0, 0, b'a']).is_err());
    assert!(page::decode_value(&[42]).is_err());
}

#[test]
fn page_names_order_and_parse() {
    let a = page::page_name(9, 256);
    let b = page::page_name(10, 1);
    assert!(a < b, "names sort in sequence order");
    assert_eq!(page::parse_page_name(&a), Some((9, 256)));
    assert_eq!(page::parse_page_name("cursor"), None);
    assert_eq!(page::parse_page_name("page-x-1.pg"), None);
}
