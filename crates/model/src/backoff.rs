//! One backoff for every retry loop: a pause that doubles from `min` to `max`, each
//! wait jittered by ±25 % so that many clients failing together do not retry together.
//!
//! ```
//! use std::time::Duration;
//! use spyder_model::backoff::Backoff;
//!
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
//! let first = backoff.next_delay();
//! assert!(first >= Duration::from_millis(75) && first <= Duration::from_millis(125));
//! assert_eq!(backoff.peek(), Duration::from_millis(200));
//! backoff.reset();
//! assert_eq!(backoff.peek(), Duration::from_millis(100));
//! ```

use std::time::Duration;

/// A doubling, jittered pause between retries.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `min` and doubles up to `max` (`max` below `min` is taken as `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The pause the next wait is centred on (before jitter).
    pub fn peek(&self) -> Duration {
        doubling(self.min, self.max, self.attempt)
    }

    /// Back to `min`, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next pause, jittered by ±25 %; the one after it doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let delay = jittered(self.peek());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Sleeps for [`Backoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

/// The pause before retry `attempt` (0 first): `first` doubled `attempt` times, at
/// most `max`; never overflows.
pub fn doubling(first: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max.max(first))
}

/// `base` scaled by a random factor in [0.75, 1.25) (saturating at `Duration::MAX`).
pub fn jittered(base: Duration) -> Duration {
    let factor: f64 = rand::random_range(0.75..1.25);
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_never_overflows() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen.push(b.peek());
            let d = b.next_delay();
            assert!(d <= Duration::from_millis(6_250), "{d:?}");
        }
        assert_eq!(
            seen[..7].iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
            [100, 200, 400, 800, 1600, 3200, 5000]
        );
        let mut huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        huge.next_delay();
        huge.next_delay();
        assert_eq!(huge.peek(), Duration::MAX);
        assert_eq!(
            doubling(Duration::from_millis(10), Duration::MAX, u32::MAX).as_millis(),
            10 << 31
        );
    }
}
