//! Running rules: stream hubs (source + decode + fan-out), the rule task that
//! drives a compiled query, and sink pipelines. See ARCHITECTURE.md for the
//! path of one event.

pub mod delivery;
pub mod hub;
pub mod keyed_state;
pub mod lookup;
pub mod metrics;
pub mod rule;
pub mod sink;
pub mod tracker;

/// Bounds a log of progress points kept oldest first: beyond `max` entries
/// every other one goes and the newest stays. A dropped point only makes
/// what it stood for take effect at the next one kept (later, never early);
/// dropping the newest could leave it waiting for good.
pub(crate) fn thin_keeping_newest<T>(log: &mut std::collections::VecDeque<T>, max: usize) {
    if log.len() <= max {
        return;
    }
    let n = log.len();
    let mut i = 0usize;
    log.retain(|_| {
        i += 1;
        (n - i).is_multiple_of(2)
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn thinning_halves_and_keeps_the_newest() {
        for len in [5usize, 6] {
            let mut q: std::collections::VecDeque<usize> = (1..=len).collect();
            super::thin_keeping_newest(&mut q, 4);
            assert_eq!(q.back(), Some(&len));
            assert!(q.len() <= len.div_ceil(2), "{q:?}");
        }
        let mut q: std::collections::VecDeque<usize> = (1..=4).collect();
        super::thin_keeping_newest(&mut q, 4);
        assert_eq!(q.len(), 4, "within the bound nothing goes");
    }
}
