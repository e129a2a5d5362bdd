//! scrape → curate → snapshot against the mirror: reproducible manifests, parents that keep
//! every assignment, exports.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::util::{MirrorProcess, http_get, journal_urls, mirror_config, run, write};

fn ok(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(
        r.code,
        0,
        "lennonnet {}: {}{}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r.stdout
}

fn manifest(dataset: &Path, id: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dataset.join("snapshots").join(id).join("manifest.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn snapshots_rebuild_byte_for_byte_keep_parents_and_export() {
    let world_dir = tempfile::tempdir().unwrap();
    let world = write(
        world_dir.path(),
        "world.toml",
        "[search]\nburst_limit = 0\n",
    );
    let mirror = MirrorProcess::start(21, Some(&world));
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("t");
    let config = write(
        dir.path(),
        "c.toml",
        &mirror_config(mirror.port, dir.path(), 20),
    );
    let config = config.to_str().unwrap();
    ok(&["-q", "scrape", "--config", config]);
    ok(&["-q", "curate", "--config", config]);

    // Create, delete, rebuild: the same id and the same bytes.
    let id = ok(&["-q", "snapshot", "--config", config, "create"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let bytes = std::fs::read(dataset.join("snapshots").join(&id).join("manifest.jsonl")).unwrap();
    std::fs::remove_dir_all(dataset.join("snapshots")).unwrap();
    let again = ok(&["-q", "snapshot", "--config", config, "create"])
        .trim()
        .to_string();
    assert_eq!(again, id);
    assert_eq!(
        std::fs::read(dataset.join("snapshots").join(&id).join("manifest.jsonl")).unwrap(),
        bytes
    );

    let rows = manifest(&dataset, &id);
    let count = |label: &str, split: &str| {
        rows.iter()
            .filter(|r| r["label"] == label && r["split"] == split)
            .count()
    };
    assert_eq!(count("john", "test"), 5);
    assert_eq!(count("not_john", "test"), 5);
    // No cluster spans two splits.
    let mut split_of: HashMap<String, String> = HashMap::new();
    for r in &rows {
        let s = split_of
            .entry(r["cluster"].as_str().unwrap().to_string())
            .or_insert(r["split"].as_str().unwrap().to_string());
        assert_eq!(
            s,
            r["split"].as_str().unwrap(),
            "cluster {} spans splits",
            r["cluster"]
        );
    }
    assert!(
        rows.iter()
            .any(|r| r["split"] == "eval" && r["group"] == "eval_ringo")
    );
    // Against the mirror's truth: copies of one original picture never sit in two splits
    // (eval included).
    let original_of: HashMap<String, String> = http_get(mirror.port, "/_mirror/truth.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|t| {
            (
                t["url"].as_str().unwrap().to_string(),
                t["original"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let urls = journal_urls(&dataset);
    let mut split_of_original: HashMap<&str, &str> = HashMap::new();
    let mut checked = 0;
    for r in &rows {
        for url in &urls[r["id"].as_str().unwrap()] {
            let Some(original) = original_of.get(url) else {
                continue;
            };
            let split = r["split"].as_str().unwrap();
            let first = *split_of_original.entry(original).or_insert(split);
            assert_eq!(
                first, split,
                "copies of {original} are in {first} and {split}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= rows.len(),
        "only {checked} URLs checked against the truth"
    );
    let show = ok(&["-q", "snapshot", "--config", config, "show", &id[..10]]);
    assert!(show.contains("john") && show.contains("test"), "{show}");
    ok(&["-q", "snapshot", "--config", config, "verify", "latest"]);

    // More images, a child snapshot: nothing existing moves, the test holdout stays as it was.
    let bigger = mirror_config(mirror.port, dir.path(), 24);
    let config2 = write(dir.path(), "c2.toml", &bigger);
    let config2 = config2.to_str().unwrap();
    ok(&["-q", "scrape", "--config", config2]);
    ok(&["-q", "curate", "--config", config2]);
    let child = ok(&[
        "-q", "snapshot", "--config", config2, "create", "--parent", &id,
    ])
    .trim()
    .to_string();
    assert_ne!(child, id);
    let before: BTreeMap<String, String> = rows
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["split"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let after = manifest(&dataset, &child);
    assert!(after.len() > rows.len());
    for r in &after {
        if let Some(was) = before.get(r["id"].as_str().unwrap()) {
            assert_eq!(was, r["split"].as_str().unwrap(), "{} moved", r["id"]);
        }
    }
    let test_ids = |rows: &[serde_json::Value]| -> Vec<String> {
        rows.iter()
            .filter(|r| r["split"] == "test")
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(test_ids(&after), test_ids(&rows));
    let diff = ok(&["-q", "snapshot", "--config", config2, "diff", &id, &child]);
    assert!(diff.lines().all(|l| !l.contains("\"moved\"")), "{diff}");
    assert!(diff.lines().any(|l| l.contains("\"added\"")));

    // Exports.
    let folder = dir.path().join("folder");
    ok(&[
        "-q",
        "snapshot",
        "--config",
        config,
        "export",
        &id,
        "--format",
        "imagefolder",
        "--out",
        folder.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_dir(folder.join("test").join("john"))
            .unwrap()
            .count(),
        5
    );
    let wds = dir.path().join("wds");
    ok(&[
        "-q",
        "snapshot",
        "--config",
        config,
        "export",
        &id,
        "--format",
        "webdataset",
        "--per-shard",
        "16",
        "--out",
        wds.to_str().unwrap(),
    ]);
    let mut listed = 0;
    for shard in std::fs::read_dir(&wds)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "tar"))
    {
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(shard.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        listed += String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| l.ends_with(".json"))
            .count();
    }
    assert_eq!(listed, rows.len());
}
