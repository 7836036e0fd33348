//! Gives back the pages of the binary that only starting up needed.
//!
//! Starting the server runs code that never runs again (argument parsing,
//! the plugin engine's set-up, every connector's schema, the restore of
//! rules), scattered over the 30 MB of machine code; the kernel maps each
//! faulted page with its neighbours (fault-around), so about 14 MB of the
//! binary stays in the resident set of an idle server. Once started, Oort
//! drops its mappings of the binary's read-only, never-relocated segments
//! (`madvise(MADV_DONTNEED)`: the pages stay in the page cache and code that
//! runs again is mapped again on its next use, a minor fault), so the
//! resident set holds the code the rules run, not the code that started
//! them. Writable and relocated segments (`.data`, RELRO) are never touched.
//! The same release runs between the parts of starting up (connectors,
//! plugins, restored rules: the peak is then the largest part, not their
//! sum) and again half a second after the last REST request that changed
//! something ([`Trimmer`]): the code that created streams and rules goes the
//! same way as the code that started the server.

/// Releases the startup pages; returns how many bytes were resident in the
/// released mappings, or `None` where this is not supported.
///
/// The workspace denies `unsafe`; this is its one reviewed exception (one
/// `madvise` call on mappings checked by [`eligible`]).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_startup_code() -> Option<u64> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let exe = exe.to_str()?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut released = 0u64;
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some((range, rest)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    current = eligible(rest, exe).then_some((lo, hi));
                    continue;
                }
            }
        }
        let Some((lo, hi)) = current else { continue };
        if let Some(kb) = line.strip_prefix("Rss:") {
            current = None;
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            // SAFETY: [lo, hi) is a whole private, read-only mapping of the
            // executable file that the loader never wrote to (no write
            // permission; RELRO segments are excluded by `eligible`):
            // dropping its pages loses nothing, the next access maps the
            // same bytes from the file again.
            let r = unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
            if r == 0 {
                released += kb * 1024;
            }
        }
    }
    Some(released)
}

/// A mapping of the executable that is private, not writable, and maps the
/// file's code (`r-xp`) or its leading read-only segment (`r--p` at offset 0,
/// which holds no relocated data).
#[cfg(target_os = "linux")]
fn eligible(rest: &str, exe: &str) -> bool {
    let mut f = rest.split_whitespace();
    let (Some(perms), Some(offset)) = (f.next(), f.next()) else {
        return false;
    };
    let path = f.nth(2).unwrap_or("");
    if path != exe {
        return false;
    }
    perms == "r-xp" || (perms == "r--p" && offset.trim_start_matches('0').is_empty())
}

#[cfg(not(target_os = "linux"))]
pub fn release_startup_code() -> Option<u64> {
    None
}

/// Gives the allocator's free memory back to the system: what parsing and
/// planning a rule allocated and freed stays in glibc's arenas otherwise
/// (about 4 MB after a burst of MQTT traffic at QoS 1, measured).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_heap() {
    // SAFETY: malloc_trim only returns free pages of the allocator's own
    // arenas to the kernel; it takes the arenas' locks like malloc does.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}

/// Gives back the allocator's free memory and the binary's code pages;
/// `when` ends the debug log line ("at start-up", "after requests").
pub fn release(when: &str) {
    release_free_heap();
    if let Some(b) = release_startup_code() {
        tracing::debug!(bytes = b, "code pages released {when}");
    }
}

/// How long after the last request that changed something the code it ran
/// is released. Short: what a rule's creation left resident is the peak of
/// the resident set when the rule's traffic starts at once (measured with
/// 3 s: 25.5 MB during the first second of MQTT traffic at QoS 1, 18 MB
/// after the release); a script's burst of requests is still one release.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(500);

/// Releases code pages again [`QUIET`] after the last REST request that
/// changed something: creating a stream and a rule runs the SQL parser, the
/// planner, the store and the connectors' set-up, which (with
/// fault-around) leaves about 10 MB of code resident that the running rule
/// never touches; a rule's own code is mapped back on its next use. The
/// allocator's free memory is given back at the same time
/// ([`release_free_heap`]).
pub struct Trimmer {
    touched: tokio::sync::Notify,
}

impl Trimmer {
    fn new() -> std::sync::Arc<Trimmer> {
        std::sync::Arc::new(Trimmer {
            touched: tokio::sync::Notify::new(),
        })
    }

    /// Starts the trimming task (until `stop`).
    pub fn start(stop: tokio_util::sync::CancellationToken) -> std::sync::Arc<Trimmer> {
        let t = Trimmer::new();
        let t2 = t.clone();
        tokio::spawn(async move { t2.run(QUIET, &stop, || release("after requests")).await });
        t
    }

    /// A request that changed something was served: trim [`QUIET`] later
    /// (later still if another one comes).
    pub fn touch(&self) {
        self.touched.notify_one();
    }

    /// Calls `trim` once per burst of [`Self::touch`]es, `quiet` after the
    /// last one.
    async fn run(
        &self,
        quiet: std::time::Duration,
        stop: &tokio_util::sync::CancellationToken,
        mut trim: impl FnMut(),
    ) {
        loop {
            tokio::select! {
                _ = self.touched.notified() => {}
                _ = stop.cancelled() => return,
            }
            loop {
                tokio::select! {
                    _ = self.touched.notified() => {}
                    _ = tokio::time::sleep(quiet) => break,
                    _ = stop.cancelled() => return,
                }
            }
            trim();
        }
    }
}

/// Middleware: a request that changes something (any method but `GET`,
/// `HEAD` and `OPTIONS`: creating, updating, starting, stopping, deleting,
/// importing) arms the [`Trimmer`] once served. Reads do not postpone it: a
/// dashboard polling rule status every second runs the same few functions
/// each time.
pub async fn after_requests(
    axum::extract::State(t): axum::extract::State<std::sync::Arc<Trimmer>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let resp = next.run(req).await;
    if changes {
        t.touch();
    }
    resp
}

#[cfg(test)]
mod trimmer_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_trim_per_burst_after_the_quiet_time() {
        let t = Trimmer::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let trims = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (t2, stop2, n) = (t.clone(), stop.clone(), trims.clone());
        let task = tokio::spawn(async move {
            t2.run(Duration::from_secs(3), &stop2, || {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
            .await
        });
        let count = || trims.load(std::sync::atomic::Ordering::SeqCst);
        // Nothing happened: no trim.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(count(), 0);
        // A burst of requests 1 s apart: one trim, 3 s after the last.
        for _ in 0..4 {
            t.touch();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(count(), 0, "not while requests keep coming");
        tokio::time::sleep(Duration::from_millis(1_900)).await;
        assert_eq!(count(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(count(), 1);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(count(), 1, "quiet: no more trims");
        t.touch();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(count(), 2);
        stop.cancel();
        task.await.unwrap();
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_code_and_the_leading_read_only_segment_are_eligible() {
        let exe = "/opt/oort/oort";
        assert!(eligible("r-xp 00910000 fe:00 5402693 /opt/oort/oort", exe));
        assert!(eligible("r--p 00000000 fe:00 5402693 /opt/oort/oort", exe));
        // RELRO (relocated, then made read-only) and data: never.
        assert!(!eligible("r--p 0282f000 fe:00 5402693 /opt/oort/oort", exe));
        assert!(!eligible("rw-p 0293a000 fe:00 5402693 /opt/oort/oort", exe));
        // Other files and anonymous memory: never.
        assert!(!eligible("r-xp 00000000 fe:00 1 /usr/lib/libc.so.6", exe));
        assert!(!eligible("r-xp 00000000 00:00 0", exe));
    }

    #[test]
    fn the_running_test_binary_keeps_working_after_a_release() {
        let before = crate::cli::rss_bytes().unwrap_or(0);
        let released = release_startup_code().unwrap_or(0);
        // Code runs again (faulted back in) and gives the same answers.
        let v: Vec<u64> = (1..=1000).map(|i| i * i).collect();
        assert_eq!(v.iter().sum::<u64>(), 333_833_500);
        assert!(released > 0, "some code pages were resident (rss {before})");
    }
}
