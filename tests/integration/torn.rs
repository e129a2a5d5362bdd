//! The torn-journal property: a store of a few hundred records (a scrape of the mirror, then
//! curation), its journal cut at every record boundary and at random byte offsets inside the
//! last records, as a crash can leave it. After every cut, `store stats`, `store verify`,
//! `curate` and `snapshot create` succeed without a panic and agree with each other; on a
//! sample of the cuts (every cut with `LENNONNET_TORN_ALL=1`), the rerun of the interrupted work
//! (`scrape`, `curate`, `snapshot create`) gives back the objects and the very snapshot of the
//! uncut store. `LENNONNET_DRILL_SEED` replays the random offsets.

use std::path::Path;

/// The plan's scale: about 230 journal records.
const SCALE: u32 = 6;

use super::util::{DrillRng, MirrorProcess, mirror_config, objects, ok, run, write};

/// Copies the dataset's objects, journal and layout (not the index, which is derived) to `to`.
fn copy_dataset(from: &Path, to: &Path) {
    fn copy_dir(a: &Path, b: &Path) {
        std::fs::create_dir_all(b).unwrap();
        for e in std::fs::read_dir(a).unwrap() {
            let e = e.unwrap();
            let target = b.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    copy_dir(&from.join("objects"), &to.join("objects"));
    copy_dir(&from.join("journal"), &to.join("journal"));
    std::fs::copy(from.join("layout.json"), to.join("layout.json")).unwrap();
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Runs the read and curation commands on a cut store and checks that they agree.
fn check_cut(c: &str, what: &str) {
    let stats = json(&["-q", "store", "stats", "-c", c, "--json"]);
    let verify = run(&["-q", "store", "verify", "-c", c, "--json"]);
    assert_eq!(
        verify.code, 0,
        "{what}: verify: {}{}",
        verify.stdout, verify.stderr
    );
    let verify: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let n = |v: &serde_json::Value, k: &str| v[k].as_array().map_or(0, |a| a.len() as u64);
    assert_eq!(
        n(&verify, "corrupt") + n(&verify, "missing") + n(&verify, "unreadable"),
        0,
        "{what}: {verify}"
    );
    // Every accepted image has its object; the other objects are orphans of the cut.
    let images = stats["images"].as_u64().unwrap();
    assert_eq!(
        verify["objects"].as_u64().unwrap() - n(&verify, "orphans"),
        images,
        "{what}: {stats} {verify}"
    );
    assert_eq!(
        n(&verify, "no_provenance"),
        stats["no_provenance"].as_u64().unwrap(),
        "{what}"
    );
    let by_label: u64 = stats["by_label"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["accepted"].as_u64().unwrap())
        .sum();
    assert!(
        by_label >= images - stats["no_provenance"].as_u64().unwrap(),
        "{what}: {stats}"
    );
    let curate = run(&["-q", "curate", "-c", c, "--json"]);
    assert_eq!(curate.code, 0, "{what}: curate: {}", curate.stderr);
    let report: serde_json::Value = serde_json::from_str(&curate.stdout).unwrap();
    assert_eq!(
        report["images"].as_u64().unwrap() + report["no_provenance"].as_u64().unwrap(),
        images,
        "{what}: {report}"
    );
    assert_eq!(report["no_provenance"], stats["no_provenance"], "{what}");
    ok(&["-q", "snapshot", "-c", c, "create"]);
}

/// Copies the uncut dataset to `dir`, cuts its journal at `at` and checks the cut store.
fn one_cut(dataset: &Path, dir: &Path, cc: &str, at: u64, what: &str) {
    let _ = std::fs::remove_dir_all(dir);
    copy_dataset(dataset, &dir.join("t"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("t/journal/00000001.jsonl"))
        .unwrap()
        .set_len(at)
        .unwrap();
    check_cut(cc, what);
}

/// Reruns the interrupted work on a cut store: it must give back the uncut store's objects and
/// snapshot.
fn rerun(
    dataset: &Path,
    dir: &Path,
    cc: &str,
    what: &str,
    snapshot: &str,
    expected_objects: &std::collections::BTreeSet<String>,
) {
    ok(&["-q", "scrape", "-c", cc, "--no-progress"]);
    ok(&["-q", "curate", "-c", cc]);
    let id = ok(&["-q", "snapshot", "-c", cc, "create"])
        .trim()
        .to_string();
    if id != snapshot {
        let m = |d: &Path, id: &str| -> std::collections::BTreeSet<String> {
            std::fs::read_to_string(d.join("snapshots").join(id).join("manifest.jsonl"))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        let (a, b) = (m(dataset, snapshot), m(&dir.join("t"), &id));
        let only_a: Vec<_> = a.difference(&b).take(4).collect();
        let only_b: Vec<_> = b.difference(&a).take(4).collect();
        panic!(
            "{what}: the rerun gave another snapshot:\nonly uncut {only_a:#?}\nonly rerun {only_b:#?}"
        );
    }
    assert_eq!(&objects(&dir.join("t")), expected_objects, "{what}");
    let stats = json(&["-q", "store", "stats", "-c", cc, "--json"]);
    assert_eq!(stats["no_provenance"], 0, "{what}: {stats}");
}

#[test]
fn every_cut_of_the_journal_reads_consistently_and_a_rerun_restores_it() {
    let mut rng = DrillRng::from_env("torn journal");
    let all = std::env::var("LENNONNET_TORN_ALL").as_deref() == Ok("1");
    let work = tempfile::tempdir().unwrap();
    let world = write(
        work.path(),
        "w.toml",
        "[search]\nburst_limit = 0\nddg_anomaly = 0.0\nddg_missing_vqd = 0.0\n",
    );
    let mirror = MirrorProcess::start(61, Some(&world));
    let base = work.path().join("base");
    let c = write(
        work.path(),
        "base.toml",
        &mirror_config(mirror.port, &base, SCALE),
    );
    let c = c.to_str().unwrap();
    ok(&["-q", "scrape", "-c", c, "--no-progress"]);
    ok(&["-q", "curate", "-c", c]);
    let snapshot = ok(&["-q", "snapshot", "-c", c, "create"])
        .trim()
        .to_string();
    let dataset = base.join("t");
    let expected_objects = objects(&dataset);
    let journal = std::fs::read(dataset.join("journal/00000001.jsonl")).unwrap();
    let mut boundaries = vec![0u64];
    for (i, b) in journal.iter().enumerate() {
        if *b == b'\n' {
            boundaries.push(i as u64 + 1);
        }
    }
    let records = boundaries.len() - 1;
    assert!(records >= 200, "only {records} records");
    let mut cuts: Vec<(u64, String)> = boundaries
        .iter()
        .enumerate()
        .map(|(i, &b)| (b, format!("after record {i}")))
        .collect();
    // Random offsets inside the last 8 records.
    for _ in 0..12 {
        let k = records - 1 - (rng.next_u64() % 8) as usize;
        let (lo, hi) = (boundaries[k], boundaries[k + 1]);
        let at = lo + 1 + rng.next_u64() % (hi - lo - 1);
        cuts.push((at, format!("inside record {}, byte {at}", k + 1)));
    }

    let started = std::time::Instant::now();
    let reruns = std::sync::atomic::AtomicUsize::new(0);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    // Cuts are independent: three at a time, each in its own folder.
    std::thread::scope(|scope| {
        for worker in 0..3 {
            let (work, cuts, dataset, snapshot, expected_objects) =
                (work.path(), &cuts, &dataset, &snapshot, &expected_objects);
            let (reruns, next, failed, port) = (&reruns, &next, &failed, mirror.port);
            scope.spawn(move || {
                let dir = work.join(format!("cut{worker}"));
                let cc = write(
                    work,
                    &format!("cut{worker}.toml"),
                    &mirror_config(port, &dir, SCALE),
                );
                let cc = cc.to_str().unwrap();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n >= cuts.len() || failed.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let (at, what) = &cuts[n];
                    let r = std::panic::catch_unwind(|| {
                        one_cut(dataset, &dir, cc, *at, what);
                        // The rerun on every 8th boundary, the last 10 records and every random
                        // offset (on every cut with LENNONNET_TORN_ALL=1).
                        if all || n % 8 == 0 || n + 10 >= records {
                            reruns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            rerun(dataset, &dir, cc, what, snapshot, expected_objects);
                        }
                    });
                    if let Err(p) = r {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        std::panic::resume_unwind(p);
                    }
                }
            });
        }
    });
    let reruns = reruns.into_inner();
    eprintln!(
        "{} cuts of a {records}-record journal ({} random), {reruns} reruns, in {:.1} s",
        cuts.len(),
        cuts.len() - records - 1,
        started.elapsed().as_secs_f64()
    );
}
