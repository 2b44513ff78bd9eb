//! The model: what the cluster must hold, and a seeded generator.

use std::collections::BTreeMap;

/// A small seeded generator (xorshift64*): the same seed gives the same operations.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next() % bound
    }
}

/// The expected contents: key -> value.
#[derive(Default, Debug)]
pub struct Model {
    pub pairs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Model {
    /// The expected value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.pairs.get(key).cloned()
    }

    /// Pairs in `[start, end)` (empty end: unbounded), at most `limit`.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.pairs
            .range(start.to_vec()..)
            .take_while(|(key, _)| end.is_empty() || key.as_slice() < end)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sets or removes `key`.
    pub fn set(&mut self, key: &[u8], value: Option<Vec<u8>>) {
        match value {
            Some(value) => self.pairs.insert(key.to_vec(), value),
            None => self.pairs.remove(key),
        };
    }
}
