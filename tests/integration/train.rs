//! `lennonnet train` as a user runs it: on a small synthetic snapshot, uninterrupted, killed with
//! SIGKILL and resumed, and asked for a GPU this build does not have.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::util::{
    lennonnet, metrics_without_time as metrics, run, steps_logged, synthetic_run_setup,
};

fn setup() -> (tempfile::TempDir, PathBuf) {
    synthetic_run_setup("epochs = 3\ncheckpoint_every_steps = 1")
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_uninterrupted_end() {
    let (tmp, config) = setup();
    let config = config.to_str().unwrap();
    let runs = tmp.path().join("runs");

    let whole = run(&["-q", "train", "--config", config, "--run", "whole"]);
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    assert!(whole.stdout.contains("train loss"), "{}", whole.stdout);
    assert!(
        whole.stdout.contains("threshold P(a) >= "),
        "{}",
        whole.stdout
    );
    let latest = std::fs::read_link(runs.join("latest")).unwrap();
    assert_eq!(latest, Path::new("whole"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join("whole/run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "finished");
    assert_eq!(record["model"], "resnet10t");
    assert_eq!(record["config"]["epochs"], 3);
    assert!(record["threshold"].is_number());
    let total_steps = steps_logged(&runs.join("whole"));
    assert_eq!(total_steps, 3 * (60 / 12));

    // The same command, killed part-way through the second epoch.
    let mut child = lennonnet()
        .args(["-q", "train", "--config", config, "--run", "killed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while steps_logged(&runs.join("killed")) < 7 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(steps_logged(&runs.join("killed")) < total_steps);

    // Without --resume the folder is refused; with it the run ends where the whole one did.
    let again = run(&["-q", "train", "--config", config, "--run", "killed"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
    let resumed = run(&[
        "-q", "train", "--config", config, "--run", "killed", "--resume",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(metrics(&runs.join("whole")), metrics(&runs.join("killed")));
    let killed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join("killed/run.json")).unwrap()).unwrap();
    assert_eq!(killed["result"], record["result"]);
    assert_eq!(killed["threshold"], record["threshold"]);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn asking_for_cuda_on_a_cpu_build_says_how_to_get_it() {
    let (_tmp, config) = setup();
    let out = run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--device",
        "cuda",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("built without CUDA support") && out.stderr.contains("--features cuda"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    let bad = run(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--strategy",
        "most",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
