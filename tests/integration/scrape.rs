//! `lennonnet scrape` against the mirror: summary, resume, and the crash drill.

use std::process::Stdio;
use std::time::Duration;

use super::util::{MirrorProcess, lennonnet, mirror_config, objects, run, write};

#[test]
fn scrape_fills_groups_and_a_rerun_fetches_nothing_new() {
    let mirror = MirrorProcess::start(3, None);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        &mirror_config(mirror.port, dir.path(), 12),
    );
    let config = config.to_str().unwrap();
    let first = run(&["-q", "scrape", "--config", config, "--format", "json"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let report: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    for g in report["groups"].as_array().unwrap() {
        assert_eq!(g["got"], g["wanted"], "{g}");
    }
    let held = objects(&dir.path().join("t"));
    assert!(held.len() >= 100, "{}", held.len());

    let second = run(&["-q", "scrape", "--config", config, "--format", "json"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let report: serde_json::Value = serde_json::from_str(&second.stdout).unwrap();
    for g in report["groups"].as_array().unwrap() {
        assert_eq!(g["resumed"], g["candidates"], "rerun fetched again: {g}");
    }
    assert_eq!(objects(&dir.path().join("t")), held);

    let table = run(&["-q", "scrape", "--config", config]);
    assert!(
        table.stdout.contains("group") && table.stdout.contains("john"),
        "{}",
        table.stdout
    );
    let verify = run(&["-q", "store", "verify", "--config", config]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

/// SIGKILL the scrape at 5 moments, rerunning after each: the store ends with the same objects
/// as an uninterrupted run, and verifies clean.
#[test]
fn crash_drill_scrape_killed_five_times_ends_like_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    // No engine burst limit here: its Retry-After would stall every rerun for seconds.
    let world = write(dir.path(), "world.toml", "[search]\nburst_limit = 0\n");
    let mirror = MirrorProcess::start(5, Some(&world));
    let clean = tempfile::tempdir().unwrap();
    let config = write(
        clean.path(),
        "c.toml",
        &mirror_config(mirror.port, clean.path(), 15),
    );
    let r = run(&["-q", "scrape", "--config", config.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = objects(&clean.path().join("t"));

    let crashed = tempfile::tempdir().unwrap();
    let config = write(
        crashed.path(),
        "c.toml",
        &mirror_config(mirror.port, crashed.path(), 15),
    );
    let config = config.to_str().unwrap();
    // Kill when the store holds 10%, 30%, 50%, 70% and 90% of the final objects, so the kills
    // land at different stages of the run whatever the machine's speed.
    for (i, share) in [0.1, 0.3, 0.5, 0.7, 0.9].into_iter().enumerate() {
        let target = (expected.len() as f64 * share) as usize;
        let mut child = lennonnet()
            .args(["-q", "scrape", "--config", config, "--no-progress"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while objects(&crashed.path().join("t")).len() < target
            && started.elapsed() < Duration::from_secs(60)
        {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!(
            "kill {i} at {target} objects: {status:?}, {} objects",
            objects(&crashed.path().join("t")).len()
        );
    }
    let r = run(&["-q", "scrape", "--config", config]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        objects(&crashed.path().join("t")),
        expected,
        "the crashed store differs from an uninterrupted run's"
    );
    let verify = run(&["-q", "store", "verify", "--config", config]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

/// Every noise kind of the mirror at high rates at once: the run completes within its timeouts,
/// no bomb is decoded, and every candidate ends stored, a duplicate, rejected or failed with a
/// reason.
#[test]
fn fault_drill_every_fault_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let world = write(
        dir.path(),
        "world.toml",
        r#"[noise]
not_found = 0.05
gone = 0.03
server_error = 0.05
slow_first_byte = 0.03
trickle = 0.03
wrong_content_type = 0.05
html_200 = 0.05
truncated = 0.05
bomb = 0.05
huge = 0.03
redirect_chain = 0.05
redirect_loop = 0.03
reencoded = 0.1
resized = 0.1
cropped = 0.05
watermarked = 0.05
thumbnail = 0.05

[timing]
slow_first_byte_ms = 2500
trickle_interval_ms = 300
huge_bytes = 25000000

[search]
burst_limit = 0
ddg_anomaly = 0.15
ddg_missing_vqd = 0.15
"#,
    );
    let mirror = MirrorProcess::start(9, Some(&world));
    let config = write(
        dir.path(),
        "c.toml",
        &mirror_config(mirror.port, dir.path(), 15),
    );
    let started = std::time::Instant::now();
    let r = run(&[
        "-q",
        "scrape",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(took < Duration::from_secs(240), "the run took {took:?}");
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut reasons = std::collections::BTreeSet::new();
    for g in report["groups"].as_array().unwrap() {
        let sum = |k: &str| {
            g[k].as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>()
        };
        let accounted = g["got"].as_u64().unwrap()
            + g["duplicates"].as_u64().unwrap()
            + sum("rejected")
            + sum("failed");
        assert_eq!(
            accounted,
            g["candidates"].as_u64().unwrap(),
            "unaccounted candidates: {g}"
        );
        assert_eq!(g["got"], g["wanted"], "{g}");
        for k in ["rejected", "failed"] {
            reasons.extend(g[k].as_object().unwrap().keys().cloned());
        }
    }
    // too_many_pixels: the bombs, refused from their headers before any decoding.
    for expected in [
        "http_404",
        "http_5xx",
        "not_an_image",
        "too_large",
        "too_many_pixels",
        "stalled",
        "first_byte_timeout",
    ] {
        assert!(
            reasons.contains(expected),
            "no {expected} among {reasons:?}"
        );
    }
    assert!(
        reasons.contains("redirect_loop") || reasons.contains("too_many_redirects"),
        "{reasons:?}"
    );
    let verify = run(&[
        "-q",
        "store",
        "verify",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}
