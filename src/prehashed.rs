//! A hasher for map keys that already are hashes (a `u64` made by SipHash
//! elsewhere): hashing them again is wasted work on the request path. Used
//! by the metrics' series map and the price memo.

use std::hash::Hasher;

/// Passes a `u64` key through as its own hash.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the maps keyed by `u64`; mix anything
        // else anyway, so any input stays well defined.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
