//! SplitMix64: a tiny, well-known deterministic generator for fixtures and synthetic data,
//! where the same seed must give the same output on every machine and every run.

pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + self.next_f64() * (hi - lo)
    }
}

/// A stateless hash of integers to [0, 1), for per-pixel noise without a generator per pixel.
pub fn hash01(a: u64, b: u64, c: u64) -> f64 {
    let mut rng =
        SplitMix::new(a.wrapping_mul(0x100_0000_01B3) ^ b.rotate_left(21) ^ c.rotate_left(42));
    rng.next_f64()
}
