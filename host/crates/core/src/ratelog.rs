//! A log line at most once per interval, counting what it held back: how
//! repeated drops and skips are logged without flooding the log.

use std::time::{Duration, Instant};

/// Logs at most once per interval, counting what it held back.
#[derive(Debug)]
pub struct RateLimitedLog {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl RateLimitedLog {
    pub fn new(every: Duration) -> RateLimitedLog {
        RateLimitedLog {
            every,
            last: None,
            held: 0,
        }
    }

    /// Calls `log(held_back)` when the interval has passed since the last log.
    pub fn hit(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.held += 1;
            return;
        }
        log(self.held);
        self.held = 0;
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_interval_counting_the_rest() {
        let mut l = RateLimitedLog::new(Duration::from_secs(3600));
        let mut logged = Vec::new();
        for _ in 0..5 {
            l.hit(|held| logged.push(held));
        }
        assert_eq!(logged, vec![0]);
        assert_eq!(l.held, 4);
    }
}
