//! Randomness as an input: every random choice in the core comes from a seeded generator, so
//! a run replays bit for bit from its seed.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The randomness the core may use.
pub trait Rng {
    /// A uniformly random 64-bit value.
    fn next_u64(&mut self) -> u64;

    /// Uniform in `[0, bound)`; `bound` must be positive.
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "empty random range");
        // Rejection sampling keeps the result unbiased.
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let value = self.next_u64();
            if value < zone {
                return value % bound;
            }
        }
    }

    /// Uniform in `[low, high)`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low < high, "empty random range {low}..{high}");
        low + self.below(high - low)
    }

    /// True with probability `numerator / denominator`.
    fn ratio(&mut self, numerator: u64, denominator: u64) -> bool {
        assert!(numerator <= denominator && denominator > 0, "bad ratio");
        self.below(denominator) < numerator
    }
}

/// A ChaCha8 stream seeded from a `u64`. Deterministic on every platform.
#[derive(Clone, Debug)]
pub struct SeededRng {
    inner: ChaCha8Rng,
}

impl SeededRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng {
            inner: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// An independent generator for sub-stream `stream` (e.g. one per node), derived from this
    /// one's seed without consuming draws from it.
    pub fn fork(&self, stream: u64) -> SeededRng {
        let mut inner = self.inner.clone();
        inner.set_stream(stream);
        inner.set_word_pos(0);
        SeededRng { inner }
    }
}

impl Rng for SeededRng {
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.inner.try_fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(rng: &mut SeededRng, count: usize) -> Vec<u64> {
        (0..count).map(|_| Rng::next_u64(rng)).collect()
    }

    #[test]
    fn same_seed_same_stream() {
        assert_eq!(
            draws(&mut SeededRng::new(7), 8),
            draws(&mut SeededRng::new(7), 8)
        );
        assert_ne!(
            draws(&mut SeededRng::new(7), 8),
            draws(&mut SeededRng::new(8), 8)
        );
    }

    #[test]
    fn forks_are_independent_and_stable() {
        let root = SeededRng::new(1);
        let a = draws(&mut root.fork(1), 4);
        let b = draws(&mut root.fork(2), 4);
        assert_ne!(a, b);
        assert_eq!(a, draws(&mut root.fork(1), 4));
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut rng = SeededRng::new(3);
        for _ in 0..1000 {
            let v = rng.range(10, 13);
            assert!((10..13).contains(&v));
        }
        assert!(!rng.ratio(0, 5));
        assert!(rng.ratio(5, 5));
    }
}
