//! The one backoff of Oort: connectors reconnecting (doubling from a
//! minimum to a maximum) and rules restarting after an error (eKuiper's
//! `restartStrategy`: `delay`, `multiplier`, `maxDelay`, `jitterFactor`).

use std::time::Duration;

/// Exponential backoff: `min`, then each delay `multiplier` times the last,
/// at most `max`, each spread by +/- `jitter` (a fraction of it).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    next: Duration,
}

impl Backoff {
    /// Doubling from `min` up to `max`, no jitter.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff::with(min, max, 2.0, 0.0)
    }

    /// `multiplier` below 1 is taken as 1; `jitter` is clamped to 0..=1.
    pub fn with(min: Duration, max: Duration, multiplier: f64, jitter: f64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            multiplier: if multiplier.is_finite() {
                multiplier.max(1.0)
            } else {
                1.0
            },
            jitter: if jitter.is_finite() {
                jitter.clamp(0.0, 1.0)
            } else {
                0.0
            },
            next: min,
        }
    }

    /// The delay to wait now; grows the following one.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.mul_f64(self.multiplier).min(self.max);
        if self.jitter == 0.0 {
            return d;
        }
        let spread = rand::random::<f64>() * 2.0 - 1.0;
        d.mul_f64((1.0 + self.jitter * spread).max(0.0))
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_maximum_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(got, vec![ms(100), ms(200), ms(350), ms(350)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(100));
        let mut b = Backoff::with(ms(1000), ms(30_000), 3.0, 0.0);
        let got: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            vec![ms(1000), ms(3000), ms(9000), ms(27_000), ms(30_000)]
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let ms = Duration::from_millis;
        for _ in 0..200 {
            let d = Backoff::with(ms(1000), ms(1000), 2.0, 0.1).next_delay();
            assert!(d >= ms(900) && d <= ms(1100), "{d:?}");
        }
    }
}
