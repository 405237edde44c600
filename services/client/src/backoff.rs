//! Exponential back-off with jitter, so that many hosts that lost their
//! coordinator at the same moment do not all come back at the same moment.

use std::time::Duration;

/// Delays that double from `base` up to `cap`; each is drawn at random
/// between half of its nominal value and all of it.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// The delay before the next try; each call lengthens the next one.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let half = nominal / 2;
        half + half.mul_f64(random_fraction())
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// A number in [0, 1). A v4 UUID is 122 random bits from the OS, which is
/// plenty for jitter and saves a dependency; its low 53 bits are all random.
fn random_fraction() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 & ((1u64 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_half_of_nominal() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_millis(800);
        let mut backoff = Backoff::new(base, cap);
        for nominal in [100u64, 200, 400, 800, 800, 800] {
            let delay = backoff.next_delay();
            let nominal = Duration::from_millis(nominal);
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{delay:?} vs {nominal:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= base);
    }

    #[test]
    fn fractions_stay_in_range() {
        for _ in 0..1000 {
            let x = random_fraction();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
