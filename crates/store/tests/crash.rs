//! Crash test: a child process ingests continuously and is killed with SIGKILL at random
//! moments. After every kill the store must open, hold every record the child saw
//! acknowledged, and verify without corrupt or missing objects; after a rerun of the
//! interrupted work, verify must be entirely clean.
//!
//! One binary plays both roles (`harness = false`): run plainly it is the parent; with
//! `LENNONNET_CRASH_CHILD=<dir>` it is the child. Set `LENNONNET_CRASH_SEED` to replay a run.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{prov, synth};
use lennonnet_core::{ContentId, NoProgress};
use lennonnet_store::{FetchOutcome, Rules, Store, Timestamp};

const ROUNDS: u64 = 8;

/// The bytes of work item `i`: a new picture, or every 7th time the picture of item 0 again.
fn item(i: u64) -> Vec<u8> {
    let seed = if i % 7 == 3 { 0 } else { i };
    synth::jpeg(&synth::scene(seed, 96 + (seed % 5) as u32 * 8, 72), 80)
}

fn child(dir: &str, start: u64) {
    let store = Arc::new(Store::open(std::path::Path::new(dir), Rules::default()).expect("open"));
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (store, out) = (store.clone(), out.clone());
            std::thread::spawn(move || {
                let mut i = start + t;
                loop {
                    {
                        let mut o = out.lock().unwrap();
                        writeln!(o, "try {i}").unwrap();
                        o.flush().unwrap();
                    }
                    let url = format!("https://crash.test/{i}");
                    let o = store
                        .ingest(&item(i), prov(&url, "g", "a"))
                        .expect("ingest");
                    store
                        .record_fetch(FetchOutcome {
                            url: url.clone(),
                            final_url: None,
                            query_id: None,
                            status: Some(200),
                            reason: None,
                            bytes: Some(1),
                            duration_ms: 1,
                            at: Timestamp(i as i64),
                        })
                        .wait()
                        .expect("fetch record");
                    let mut o2 = out.lock().unwrap();
                    writeln!(o2, "ack {i} {} {url}", o.id).unwrap();
                    o2.flush().unwrap();
                    i += 3;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn main() {
    if let Ok(dir) = std::env::var("LENNONNET_CRASH_CHILD") {
        let start = std::env::var("LENNONNET_CRASH_START")
            .unwrap()
            .parse()
            .unwrap();
        child(&dir, start);
        return;
    }
    let started = Instant::now();
    let seed: u64 = std::env::var("LENNONNET_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test: seed {seed} (replay with LENNONNET_CRASH_SEED={seed})");
    let mut rng = synth::Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(u64, ContentId, String)> = Vec::new();
    let mut tried: BTreeSet<u64> = BTreeSet::new();
    let mut failures = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env("LENNONNET_CRASH_CHILD", dir.path())
            .env("LENNONNET_CRASH_START", (round * 100_000).to_string())
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            // Only whole lines count: a line cut by the kill was never seen acknowledged.
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line.ends_with('\n') {
                    lines.push(line.trim_end().to_string());
                }
                line.clear();
            }
            lines
        });
        // Early kills hit the open (and its index rebuild), later ones the ingest loop.
        let wait_ms = 30 + rng.below(if round % 3 == 0 { 250 } else { 1200 }) as u64;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut round_acks = 0;
        for line in reader.join().unwrap() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["try", i] => {
                    tried.insert(i.parse().unwrap());
                }
                ["ack", i, id, url] => {
                    acked.push((i.parse().unwrap(), id.parse().unwrap(), url.to_string()));
                    round_acks += 1;
                }
                _ => panic!("unexpected child output {line:?}"),
            }
        }
        // After the crash: every acknowledged record is there, no object is corrupt or missing.
        let store = Store::open(dir.path(), Rules::default()).unwrap();
        for (i, id, url) in &acked {
            let ok = store.meta(id).unwrap().is_some()
                && store.object_path(id).is_file()
                && store.url_id(url).unwrap() == Some(*id)
                && store
                    .url_state(url)
                    .unwrap()
                    .is_some_and(|s| s.fetch.is_some() && s.ingest.is_some())
                && store
                    .provenance(id)
                    .unwrap()
                    .iter()
                    .any(|p| &p.image_url == url);
            if !ok {
                eprintln!("round {round}: acknowledged item {i} ({id}, {url}) was lost");
                failures += 1;
            }
        }
        let report = store.verify(&NoProgress).unwrap();
        if !report.corrupt.is_empty() || !report.missing.is_empty() || !report.unreadable.is_empty()
        {
            eprintln!("round {round}: verify after the crash: {report:?}");
            failures += 1;
        }
        println!(
            "round {round}: killed after {wait_ms} ms, {round_acks} acknowledged, {} in total; {} orphan objects",
            acked.len(),
            report.orphans.len()
        );
        store.close().unwrap();
    }
    // The rerun: finish every interrupted item, as a resumed scrape would.
    let store = Store::open(dir.path(), Rules::default()).unwrap();
    for &i in &tried {
        store
            .ingest(&item(i), prov(&format!("https://crash.test/{i}"), "g", "a"))
            .unwrap();
    }
    let report = store.verify(&NoProgress).unwrap();
    if !report.is_clean() {
        eprintln!("verify after the rerun: {report:?}");
        failures += 1;
    }
    let distinct: BTreeSet<ContentId> = acked.iter().map(|a| a.1).collect();
    println!(
        "rerun of {} tried items: verify clean ({} objects); {} acknowledged records ({} distinct images) all present",
        tried.len(),
        report.objects,
        acked.len(),
        distinct.len()
    );
    if acked.len() < 20 {
        eprintln!(
            "too few acknowledged records ({}) to mean anything",
            acked.len()
        );
        failures += 1;
    }
    let took = started.elapsed().as_secs_f64();
    if failures > 0 {
        println!("crash test: FAILED ({failures} problems, seed {seed}) in {took:.1} s");
        println!("0 passed, 1 failed");
        std::process::exit(1);
    }
    println!("crash test: ok in {took:.1} s");
    println!("1 passed, 0 failed");
}
