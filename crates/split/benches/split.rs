//! Snapshot creation over 1,000,000 synthetic records: assignment plus writing the snapshot.
//! Baseline in the same run: serialising the same manifest rows alone. Goals: under 10 s and
//! under 1 GB peak RSS.

use std::collections::BTreeMap;
use std::time::Instant;

use lennonnet_core::{ContentId, Group, Label, Purpose};
use lennonnet_split::{Item, Policy, assign, snapshot};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let n: u64 = std::env::var("SPLIT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let labels = [Label::new("john").unwrap(), Label::new("not_john").unwrap()];
    let groups: Vec<Group> = (0..100)
        .map(|g| Group::new(format!("word_{g}")).unwrap())
        .collect();
    let items: Vec<Item> = (0..n)
        .map(|i| {
            let cluster = if i % 7 == 6 { i - 1 } else { i };
            let id = ContentId::of(&i.to_le_bytes());
            Item {
                id,
                label: labels[(cluster % 10 == 0) as usize].clone(),
                group: groups[(cluster % 100) as usize].clone(),
                purpose: Purpose::Train,
                cluster: ContentId::of(&cluster.to_le_bytes()),
                bytes: 50_000 + i % 1000,
                format: "jpg".into(),
                excluded: None,
                relabelled: None,
            }
        })
        .collect();
    let policy = Policy {
        key: "bench".into(),
        val_fraction: 0.1,
        test_per_class: BTreeMap::from([("john".into(), 100), ("not_john".into(), 100)]),
    };
    let dir = tempfile::tempdir().unwrap();

    let t = Instant::now();
    let a = assign(&items, &policy, None);
    let assigned = t.elapsed();
    let snap = snapshot::create(dir.path(), &a, &policy, None, "bench").unwrap();
    let total = t.elapsed();

    let t = Instant::now();
    let bytes = snapshot::manifest_bytes(&a.rows);
    let baseline = t.elapsed();
    std::hint::black_box(bytes);

    println!(
        "split: snapshot create over {n} records {:.2} s (assign {:.2} s), id {}…; baseline: manifest serialisation {:.2} s; ratio {:.1}; peak RSS {:.0} MB",
        total.as_secs_f64(),
        assigned.as_secs_f64(),
        &snap.id().to_string()[..12],
        baseline.as_secs_f64(),
        total.as_secs_f64() / baseline.as_secs_f64(),
        peak_rss_mb()
    );
    println!(
        "{}",
        lennonnet_core::bench::BenchLine::new(
            "split",
            &format!("snapshot create over {n} records, s (lower is better)"),
            total.as_secs_f64(),
            "manifest serialisation, s",
            Some(baseline.as_secs_f64()),
        )
    );
}
