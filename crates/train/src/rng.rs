//! The run's random streams. Every random choice of training (epoch order, each sample's
//! augmentation, dropout masks, augmented feature views) comes from a ChaCha8 generator seeded
//! by a blake3 hash of the run seed, a domain name and a position (epoch, index, step), never
//! from a shared generator: so the draws do not depend on thread scheduling, and a resumed run
//! draws exactly what an uninterrupted one would.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// A generator for `domain` at position `parts` of the run seeded with `seed`.
pub fn stream(seed: u64, domain: &str, parts: &[u64]) -> ChaCha8Rng {
    let mut h = blake3::Hasher::new_derive_key("lennonnet-train rng v1");
    h.update(&seed.to_le_bytes());
    h.update(&(domain.len() as u64).to_le_bytes());
    h.update(domain.as_bytes());
    for p in parts {
        h.update(&p.to_le_bytes());
    }
    ChaCha8Rng::from_seed(*h.finalize().as_bytes())
}

/// A 64-bit seed for `domain` at position `parts` (for generators owned by others, such as the
/// model's dropout generator).
pub fn seed(seed: u64, domain: &str, parts: &[u64]) -> u64 {
    stream(seed, domain, parts).next_u64()
}

/// Uniform in [0, 1) with 53 random bits: the same on every platform and library version.
pub fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in [lo, hi).
pub fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// Uniform integer in [0, n), n > 0 (Lemire's rejection method: unbiased).
pub fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    assert!(n > 0, "below(0)");
    loop {
        let x = rng.next_u64();
        let m = (x as u128) * (n as u128);
        let low = m as u64;
        if low >= n.wrapping_neg() % n {
            return (m >> 64) as u64;
        }
    }
}

/// A Fisher–Yates shuffle of `items`.
pub fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_seed_domain_and_position_only() {
        let a = stream(1, "aug", &[2, 3]).next_u64();
        assert_eq!(a, stream(1, "aug", &[2, 3]).next_u64());
        assert_ne!(a, stream(2, "aug", &[2, 3]).next_u64());
        assert_ne!(a, stream(1, "order", &[2, 3]).next_u64());
        assert_ne!(a, stream(1, "aug", &[3, 2]).next_u64());
        // The domain's length is hashed: no ambiguity between ("ab", [..]) and ("a", [..]).
        assert_ne!(
            stream(1, "ab", &[]).next_u64(),
            stream(1, "a", &[]).next_u64()
        );
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = stream(0, "t", &[]);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[below(&mut rng, 7) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut rng, &mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}
