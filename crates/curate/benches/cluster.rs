//! Near-duplicate clustering of 1,000,000 synthetic hashes.
//!
//! 900,000 random pictures, and 100,000 near copies of some of them (a few bits of the pHash
//! and of the PDQ hash flipped, like a re-encode or a resize). The clustering must find every
//! planted copy, and no more. `cargo bench -p lennonnet-curate --bench cluster`
//! (LENNONNET_BENCH_HASHES sets the count).

use std::time::Instant;

use lennonnet_curate::cluster::{Hashed, Thresholds, choose_blocks, cluster};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn flip(&mut self, v: u64, bits: u32) -> u64 {
        let mut out = v;
        for _ in 0..bits {
            out ^= 1 << (self.next() % 64);
        }
        out
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("LENNONNET_BENCH_HASHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let copies = n / 10;
    // The config's defaults, unless overridden.
    let defaults = lennonnet_config::CurateConfig::default();
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let th = Thresholds {
        phash_max: env("LENNONNET_BENCH_PHASH", defaults.phash_max_distance),
        pdq_max: env("LENNONNET_BENCH_PDQ", defaults.pdq_max_distance),
    };
    let mut rng = Rng(42);
    let mut items: Vec<Hashed> = (0..n - copies)
        .map(|_| Hashed {
            phash: rng.next(),
            pdq: [rng.next(), rng.next(), rng.next(), rng.next()],
            matchable: true,
        })
        .collect();
    for c in 0..copies {
        let src = items[(c * 7) % (n - copies)];
        // Copies up to the thresholds (flips may repeat a bit, so some copies are nearer).
        let b64 = (rng.next() % (th.phash_max as u64 + 1)) as u32;
        let b256 = (rng.next() % 9) as u32;
        let mut pdq = src.pdq;
        for _ in 0..b256 {
            let w = (rng.next() % 4) as usize;
            pdq[w] = rng.flip(pdq[w], 1);
        }
        items.push(Hashed {
            phash: rng.flip(src.phash, b64),
            pdq,
            matchable: true,
        });
    }
    println!(
        "{n} hashes ({copies} planted copies); pHash ≤ {}, PDQ ≤ {}; {} index blocks; {} threads",
        th.phash_max,
        th.pdq_max,
        choose_blocks(n, th.phash_max),
        rayon::current_num_threads()
    );
    let t = Instant::now();
    let roots = cluster(&items, th);
    let s = t.elapsed().as_secs_f64();
    let mut sizes = std::collections::BTreeMap::<u32, u32>::new();
    for r in &roots {
        *sizes.entry(*r).or_default() += 1;
    }
    let multi = sizes.values().filter(|&&v| v > 1).count();
    let in_multi: u32 = sizes.values().filter(|&&v| v > 1).sum();
    // Every copy must sit with its source.
    let missed = (0..copies)
        .filter(|&c| roots[n - copies + c] != roots[(c * 7) % (n - copies)])
        .count();
    println!(
        "clustered in {s:.2} s: {} clusters, {multi} with copies holding {in_multi} hashes; {missed} planted copies missed",
        sizes.len()
    );
    assert_eq!(missed, 0, "the index missed planted copies");

    // Baseline: comparing every pair of hashes, timed on a sample and scaled to n² / 2 pairs.
    let m = n.min(10_000);
    let t = Instant::now();
    let mut near = 0u64;
    for i in 0..m {
        for j in i + 1..m {
            let (a, b) = (&items[i], &items[j]);
            if (a.phash ^ b.phash).count_ones() <= th.phash_max
                && (0..4)
                    .map(|w| (a.pdq[w] ^ b.pdq[w]).count_ones())
                    .sum::<u32>()
                    <= th.pdq_max
            {
                near += 1;
            }
        }
    }
    std::hint::black_box(near);
    let pairs = |k: usize| k as f64 * (k as f64 - 1.0) / 2.0;
    let brute = t.elapsed().as_secs_f64() * pairs(n) / pairs(m);
    println!("all pairs compared (timed on {m} hashes, scaled to {n}): {brute:.1} s");
    println!(
        "{}",
        lennonnet_core::bench::BenchLine::new(
            "curate",
            &format!("near-duplicate clustering of {n} hashes, s (lower is better)"),
            s,
            &format!("every pair compared, timed on {m} hashes and scaled, s"),
            Some(brute),
        )
    );
}
