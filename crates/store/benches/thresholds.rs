//! Precision and recall of the perceptual hashes per threshold, on copies whose truth is known.
//!
//! Synthetic pictures are copied the ways the web copies them (re-encoded, resized, cropped,
//! watermarked, brightened, grey, bordered); every pair of images from the same picture is a
//! true near-duplicate, every other pair is not. With `LENNONNET_MIRROR_DIR=<dir>` (the output
//! of `lennonnet mirror generate`), the mirror's own copies are measured too: images sharing
//! an `original` in its truth.jsonl are near-duplicates.
//!
//! Prints Markdown tables (for docs/store.md). `cargo bench -p lennonnet-store --bench thresholds`

#[path = "../tests/common/synth.rs"]
mod synth;

use std::collections::BTreeMap;
use std::time::Instant;

use lennonnet_store::{Rules, validate::validate};
use rayon::prelude::*;

struct Sample {
    truth: u32,
    kind: String,
    phash: u64,
    pdq: [u64; 4],
    quality: u8,
}

fn words(h: &lennonnet_store::Hash256) -> [u64; 4] {
    std::array::from_fn(|i| u64::from_be_bytes(h.0[i * 8..i * 8 + 8].try_into().unwrap()))
}

fn sample(bytes: &[u8], truth: u32, kind: String) -> Option<Sample> {
    let rules = Rules {
        min_side_px: 16,
        ..Rules::default()
    };
    let meta = validate(bytes, &rules).ok()?;
    Some(Sample {
        truth,
        kind,
        phash: meta.phash.as_u64(),
        pdq: words(&meta.pdq),
        quality: meta.pdq_quality,
    })
}

fn synthetic(bases: u64) -> Vec<Sample> {
    (0..bases)
        .into_par_iter()
        .flat_map_iter(|b| {
            let pic = synth::scene(1000 + b, 480, 360);
            let mut out = vec![sample(&synth::jpeg(&pic, 90), b as u32, "original".into())];
            for (k, c) in synth::Copy::ALL.iter().enumerate() {
                out.push(sample(
                    &c.apply(&pic, b * 31 + k as u64),
                    b as u32,
                    c.name(),
                ));
            }
            out.into_iter().flatten()
        })
        .collect()
}

fn mirror(dir: &str) -> Vec<Sample> {
    let text = std::fs::read_to_string(format!("{dir}/truth.jsonl")).expect("truth.jsonl");
    let mut originals: BTreeMap<String, u32> = BTreeMap::new();
    let mut files: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (Some(file), Some(orig)) = (v["file"].as_str(), v["original"].as_str()) else {
            continue;
        };
        let n = originals.len() as u32;
        let t = *originals.entry(orig.to_string()).or_insert(n);
        let kind = v["variant"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v["variant"].to_string());
        files.insert(file.to_string(), (t, kind));
    }
    let files: Vec<_> = files.into_iter().collect();
    files
        .par_iter()
        .filter_map(|(f, (t, kind))| {
            let bytes = std::fs::read(format!("{dir}/{f}")).ok()?;
            sample(&bytes, *t, kind.clone())
        })
        .collect()
}

/// Distances of every pair: (phash, pdq, same truth, both hashable).
fn pairs(s: &[Sample], min_quality: u8) -> Vec<(u8, u16, bool)> {
    (0..s.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            (i + 1..s.len()).filter_map(move |j| {
                let (a, b) = (&s[i], &s[j]);
                if a.quality < min_quality || b.quality < min_quality {
                    return None;
                }
                let d64 = (a.phash ^ b.phash).count_ones() as u8;
                let d256: u32 = (0..4).map(|k| (a.pdq[k] ^ b.pdq[k]).count_ones()).sum();
                Some((d64, d256 as u16, a.truth == b.truth))
            })
        })
        .collect()
}

fn table(title: &str, s: &[Sample], min_quality: u8) {
    let t = Instant::now();
    let p = pairs(s, min_quality);
    let positives = p.iter().filter(|x| x.2).count();
    let low = s.iter().filter(|x| x.quality < min_quality).count();
    println!(
        "\n### {title}\n\n{} images of {} pictures; {} pairs, {} of them true near-duplicates; {} images below quality {min_quality} left out ({:.1} s)\n",
        s.len(),
        s.iter()
            .map(|x| x.truth)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        p.len(),
        positives,
        low,
        t.elapsed().as_secs_f64()
    );
    let pr = |f: &dyn Fn(&(u8, u16, bool)) -> bool| {
        let (mut tp, mut fp) = (0usize, 0usize);
        for x in &p {
            if f(x) {
                if x.2 { tp += 1 } else { fp += 1 }
            }
        }
        let precision = if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        };
        (precision, tp as f64 / positives.max(1) as f64, fp)
    };
    println!(
        "| pHash-64 ≤ | precision | recall | false pairs | | PDQ-256 ≤ | precision | recall | false pairs |"
    );
    println!("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for (t64, t256) in [
        (0, 8),
        (2, 16),
        (4, 24),
        (6, 32),
        (8, 40),
        (10, 48),
        (12, 56),
        (14, 64),
        (16, 72),
        (18, 80),
        (20, 90),
        (24, 100),
    ] {
        let (p1, r1, f1) = pr(&|x| x.0 <= t64);
        let (p2, r2, f2) = pr(&|x| x.1 <= t256);
        println!("| {t64} | {p1:.4} | {r1:.3} | {f1} | | {t256} | {p2:.4} | {r2:.3} | {f2} |");
    }
    println!("\nBoth conditions (the curation rule):\n");
    println!("| pHash-64 ≤ | PDQ-256 ≤ | precision | recall | false pairs |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (t64, t256) in [
        (4, 32),
        (6, 32),
        (6, 40),
        (6, 48),
        (7, 40),
        (7, 48),
        (8, 40),
        (8, 48),
        (8, 64),
        (10, 48),
        (10, 70),
        (12, 80),
    ] {
        let (p, r, f) = pr(&|x| x.0 <= t64 && x.1 <= t256);
        println!("| {t64} | {t256} | {p:.4} | {r:.3} | {f} |");
    }
    // The headline for `make bench`: the default rule against pHash-64 alone at the same
    // distance (what the PDQ confirmation costs in recall and buys in precision).
    let curate = lennonnet_config::CurateConfig::default();
    let (t64, t256) = (curate.phash_max_distance, curate.pdq_max_distance);
    let (p_rule, r_rule, _) = pr(&|x| u32::from(x.0) <= t64 && u32::from(x.1) <= t256);
    let (p_alone, r_alone, _) = pr(&|x| u32::from(x.0) <= t64);
    let r4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    for (what, rule, alone) in [("recall", r_rule, r_alone), ("precision", p_rule, p_alone)] {
        println!(
            "{}",
            lennonnet_core::bench::BenchLine::new(
                "store",
                &format!(
                    "near-duplicate {what} of the default rule (pHash-64 <= {t64} and PDQ-256 <= {t256}), {}",
                    title.to_lowercase()
                ),
                r4(rule),
                &format!("pHash-64 <= {t64} alone, {what}"),
                Some(r4(alone)),
            )
        );
    }
    // Recall per kind of copy against the original(s), at a few rules.
    let rules = [(6u32, 32u32), (7, 40), (8, 48), (10, 70)];
    let mut by_kind: BTreeMap<&str, (Vec<usize>, usize)> = BTreeMap::new();
    for a in s
        .iter()
        .filter(|a| a.quality >= min_quality && !is_original(&a.kind))
    {
        for b in s
            .iter()
            .filter(|b| b.truth == a.truth && is_original(&b.kind) && b.quality >= min_quality)
        {
            let d64 = (a.phash ^ b.phash).count_ones();
            let d256: u32 = (0..4).map(|k| (a.pdq[k] ^ b.pdq[k]).count_ones()).sum();
            let e = by_kind
                .entry(a.kind.as_str())
                .or_insert((vec![0; rules.len()], 0));
            e.1 += 1;
            for (r, (t64, t256)) in rules.iter().enumerate() {
                if d64 <= *t64 && d256 <= *t256 {
                    e.0[r] += 1;
                }
            }
        }
    }
    if !by_kind.is_empty() {
        println!("\nRecall against the original, per kind of copy (pHash ≤ a and PDQ ≤ b):\n");
        let head: Vec<String> = rules.iter().map(|(a, b)| format!("{a} / {b}")).collect();
        println!("| copy | pairs | {} |", head.join(" | "));
        println!("| --- | ---: |{}", " ---: |".repeat(rules.len()));
        for (k, (hits, n)) in by_kind {
            let cells: Vec<String> = hits
                .iter()
                .map(|h| format!("{:.3}", *h as f64 / n.max(1) as f64))
                .collect();
            println!("| {k} | {n} | {} |", cells.join(" | "));
        }
    }
}

fn is_original(kind: &str) -> bool {
    kind == "original"
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bases: u64 = std::env::var("LENNONNET_BENCH_PICTURES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let t = Instant::now();
    let s = synthetic(bases);
    println!(
        "hashed {} synthetic images in {:.1} s",
        s.len(),
        t.elapsed().as_secs_f64()
    );
    table("Synthetic pictures and their copies", &s, 30);
    if let Ok(dir) = std::env::var("LENNONNET_MIRROR_DIR") {
        let t = Instant::now();
        let s = mirror(&dir);
        println!(
            "\nhashed {} mirror images in {:.1} s",
            s.len(),
            t.elapsed().as_secs_f64()
        );
        table("The mirror's world and its copies", &s, 30);
    }
}
