//! The whole pipeline at reduced scale against the mirror on loopback: plan, scrape, curate,
//! snapshot (twice, byte for byte), store verify, train, eval and report; and the mirror variant of the founding
//! plan that `make dataset MIRROR=1` runs.

use std::path::Path;
use std::time::{Duration, Instant};

use super::util::{
    MirrorProcess, curate_and_snapshot, manifest, mirror_config, objects, ok, root,
    train_head_section, write,
};

/// A few hundred images through every stage, as `make demo` runs them, under 3 minutes.
#[test]
fn reduced_end_to_end_through_every_stage() {
    let started = Instant::now();
    let mirror = MirrorProcess::start(1940, None);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let text = mirror_config(mirror.port, dir.path(), 40) + &train_head_section(&runs);
    let config = write(dir.path(), "c.toml", &text);
    let config = config.to_str().unwrap();
    let dataset = dir.path().join("t");

    let plan = ok(&["plan", "--config", config]);
    assert!(plan.lines().count() >= 6, "{plan}");

    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "-q", "scrape", "--config", config, "--format", "json",
    ]))
    .unwrap();
    let mut wanted = 0;
    for g in report["groups"].as_array().unwrap() {
        assert_eq!(g["got"], g["wanted"], "{g}");
        wanted += g["wanted"].as_u64().unwrap();
    }
    assert_eq!(wanted, 40 * 4 + 40 * 5);
    assert!(objects(&dataset).len() as u64 >= wanted);

    let id = curate_and_snapshot(config);
    let first_manifest = manifest(&dataset, &id);
    // `make splits`: the snapshot rebuilt from scratch gives the same bytes.
    std::fs::remove_dir_all(dataset.join("snapshots")).unwrap();
    let again = ok(&["-q", "snapshot", "--config", config, "create"]);
    assert_eq!(again.trim(), id);
    assert_eq!(manifest(&dataset, &id), first_manifest);
    let shown = ok(&["snapshot", "--config", config, "show", &id]);
    assert!(shown.contains("test") && shown.contains("john"), "{shown}");

    let summary = ok(&[
        "-q",
        "train",
        "--config",
        config,
        "--snapshot",
        &id,
        "--run",
        "e2e",
    ]);
    assert!(summary.contains("threshold P(john) >= "), "{summary}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.join("e2e/run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "finished");
    assert_eq!(record["snapshot"], id.as_str());
    assert!(runs.join("e2e/best.safetensors").is_file());
    // The pretrained backbone's features separate John from the rest well above chance.
    let val = &record["result"]["val_at_threshold"];
    let balanced = val["balanced_accuracy"].as_f64().unwrap();
    assert!(balanced > 0.75, "val at threshold: {val}");

    let run_dir = runs.join("e2e");
    let run_arg = run_dir.to_str().unwrap();
    let table = ok(&["-q", "eval", "--config", config, "--run", run_arg]);
    assert!(table.contains("test split"), "{table}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("eval/metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["snapshot"], id.as_str(), "{metrics}");
    let written = ok(&["-q", "report", "--config", config, "--run", run_arg]);
    let html = run_dir.join("report/report.html");
    assert!(written.contains(html.to_str().unwrap()), "{written}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("john") && page.contains("data:image/png"),
        "report.html is thin"
    );

    let took = started.elapsed();
    eprintln!("reduced end to end: {took:?}");
    assert!(took < Duration::from_secs(180), "took {took:?}");
}

/// `make dataset MIRROR=1`'s config is the founding plan, query for query, with only the
/// dataset name, the [http] and the engines' base URLs and pacing pointed at the mirror.
#[test]
fn mirror_config_keeps_the_founding_plan_and_reaches_only_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let base = root().join("config/lennonnet.toml");
    std::fs::copy(
        root().join("config/words.txt"),
        dir.path().join("words.txt"),
    )
    .unwrap();
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/mirror-config.sh"))
        .arg(&base)
        .arg("8399")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mirrored = write(dir.path(), "m.toml", &text);

    let plan = |c: &Path| ok(&["plan", "--config", c.to_str().unwrap()]);
    assert_eq!(plan(&base), plan(&mirrored));
    let urls: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("base_url"))
        .collect();
    assert_eq!(urls.len(), 3, "{text}");
    for u in urls {
        assert!(u.contains(".mirror.test:8399\""), "{u}");
    }
    assert!(text.contains("name = \"lennonnet-mirror\""), "{text}");
    assert!(text.contains("resolve = { \"mirror.test\" = \"127.0.0.1\" }"));
}
