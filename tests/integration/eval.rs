//! scrape → curate → snapshot → train → eval → predict → curate --from-run against the mirror:
//! eval's files and their determinism, the truth read off mirror URLs, predict giving eval's
//! probabilities, reviewed suspects leaving the next snapshot and coming back on release, and
//! contact sheets from a snapshot.

use std::collections::BTreeMap;
use std::path::Path;

use lennonnet_records::eval::{EvalMetrics, GalleryIndex, HISTOGRAM_BINS, Prediction, Suspect};

use super::util::{MirrorProcess, mirror_config, run, write};

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

fn lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn without_timing(path: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.as_object_mut()
        .unwrap()
        .remove("timing")
        .expect("a timing object");
    v
}

#[test]
fn eval_predict_and_review_on_a_mirror_run() {
    let world_dir = tempfile::tempdir().unwrap();
    let world = write(
        world_dir.path(),
        "world.toml",
        "[search]\nburst_limit = 0\n",
    );
    let mirror = MirrorProcess::start(31, Some(&world));
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("t");
    // A head on a random resnet10t backbone at 64 px: a weak model, trained in seconds, that
    // still makes confident mistakes for the suspects to find.
    let text = mirror_config(mirror.port, dir.path(), 12)
        + &format!(
            r#"
[train]
runs_dir = {runs:?}
model = "resnet10t"
strategy = "head"
epochs = 8
batch_size = 16
input_px = 64
seed = 5
learning_rate = 1e-2
loader_threads = 1
"#,
            runs = dir.path().join("runs")
        );
    let config = write(dir.path(), "c.toml", &text);
    let config = config.to_str().unwrap();
    ok(&["-q", "scrape", "--config", config]);
    ok(&["-q", "curate", "--config", config]);
    let snap = ok(&["-q", "snapshot", "--config", config, "create"])
        .trim()
        .to_string();
    ok(&[
        "-q",
        "train",
        "--config",
        config,
        "--run",
        "r",
        "--weights",
        "none",
    ]);
    let run_dir = dir.path().join("runs").join("r");
    let run_s = run_dir.to_str().unwrap();
    let world_s = world.to_str().unwrap();
    let eval_args = [
        "-q",
        "eval",
        "--run",
        run_s,
        "--config",
        config,
        "--world",
        world_s,
        "--world-seed",
        "31",
        "--truth",
        "mirror",
        "--gallery",
        "6",
    ];
    let table = ok(&eval_args);
    let out = run_dir.join("eval");

    // metrics.json: the founding form on test, the truth, the eval set's histograms.
    let m: EvalMetrics =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m.snapshot, snap);
    assert_eq!(m.run.classes, ["john", "not_john"]);
    assert_eq!(m.run.threshold_source, "validation");
    assert_eq!(m.test.labels.images, 10, "test_per_class 5 + 5");
    let per_class: Vec<usize> = m.test.labels.per_class.iter().map(|c| c.total).collect();
    assert_eq!(per_class, [5, 5]);
    for c in &m.test.labels.per_class {
        assert!(
            table.contains(&format!("{}/{} {}", c.right, c.total, c.class)),
            "{table}"
        );
    }
    let cm = &m.test.labels.confusion.rows;
    assert_eq!(
        cm[0][0] + cm[1][1],
        m.test
            .labels
            .per_class
            .iter()
            .map(|c| c.right)
            .sum::<usize>()
    );
    assert!(
        m.truth.available && m.truth.source == "mirror",
        "{:?}",
        m.truth
    );
    let truth = m.test.truth.as_ref().expect("scores against the truth");
    assert_eq!(truth.images, 10);
    assert_eq!(
        m.truth.per_split["test"].known, 10,
        "every mirror URL carries its truth"
    );
    let ringo = m
        .eval_sets
        .iter()
        .find(|e| e.group == "eval_ringo")
        .expect("the eval set");
    assert_eq!(ringo.histogram.counts.len(), HISTOGRAM_BINS);
    assert_eq!(ringo.histogram.counts.iter().sum::<usize>(), ringo.images);
    assert_eq!(
        ringo.threshold_histogram.counts.iter().sum::<usize>(),
        ringo.images
    );
    assert_eq!(ringo.right + ringo.wrong, ringo.images);
    assert!(m.failed.is_empty(), "{:?}", m.failed);

    // predictions.jsonl: every image once, with provenance and truth.
    let preds: Vec<Prediction> = lines(&out.join("predictions.jsonl"));
    // The words row of each split aggregates its word groups; the group rows add up.
    for split in ["test", "val", "eval"] {
        let words = preds
            .iter()
            .filter(|p| p.split == split && p.group.starts_with("word_"))
            .count();
        let row = m
            .groups
            .iter()
            .find(|g| g.split == split && g.group == "words" && g.kind == "words_aggregate");
        assert_eq!(row.map_or(0, |g| g.images), words, "{split}");
        let in_groups: usize = m
            .groups
            .iter()
            .filter(|g| g.split == split && g.kind == "group")
            .map(|g| g.images)
            .sum();
        assert_eq!(in_groups, m.scored[split], "{split}");
    }
    assert_eq!(preds.len(), m.scored.values().sum::<usize>());
    for p in &preds {
        assert!(!p.sources.is_empty(), "{p:?}");
        assert!(
            p.sources.iter().all(|s| s.url.starts_with("http://")),
            "{p:?}"
        );
        assert!(p.truth.is_some(), "{p:?}");
        assert_eq!(p.correct, p.predicted == p.label);
    }
    let gallery: GalleryIndex =
        serde_json::from_str(&std::fs::read_to_string(out.join("gallery/index.json")).unwrap())
            .unwrap();
    for g in gallery.errors.iter().chain(&gallery.suspects) {
        let thumb = std::fs::read(out.join(&g.thumbnail)).unwrap();
        assert_eq!(&thumb[..3], b"\xff\xd8\xff", "{} is a JPEG", g.thumbnail);
    }
    assert_eq!(gallery.errors.len(), m.gallery.errors);
    assert!(
        gallery
            .errors
            .windows(2)
            .all(|w| w[0].confidence >= w[1].confidence)
    );

    // The same run and snapshot again: the same files, apart from timing.
    let metrics_before = without_timing(&out.join("metrics.json"));
    let preds_before = std::fs::read(out.join("predictions.jsonl")).unwrap();
    let suspects_before = std::fs::read(out.join("suspects.jsonl")).unwrap();
    ok(&eval_args);
    assert_eq!(without_timing(&out.join("metrics.json")), metrics_before);
    assert_eq!(
        std::fs::read(out.join("predictions.jsonl")).unwrap(),
        preds_before
    );
    assert_eq!(
        std::fs::read(out.join("suspects.jsonl")).unwrap(),
        suspects_before
    );

    // predict on the stored files of the test split gives eval's probabilities.
    let objects = dataset.join("objects");
    let test: Vec<&Prediction> = preds.iter().filter(|p| p.split == "test").collect();
    let mut args: Vec<String> = ["predict", "--run", run_s, "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for p in &test {
        args.push(
            objects
                .join(&p.id[..2])
                .join(&p.id)
                .to_string_lossy()
                .into_owned(),
        );
    }
    args.push(
        dir.path()
            .join("missing.jpg")
            .to_string_lossy()
            .into_owned(),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(&argv);
    assert_eq!(r.code, 1, "one input is missing: {}", r.stderr);
    assert!(r.stderr.contains("1 of 11 inputs"), "{}", r.stderr);
    let out_lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out_lines.len(), 11);
    for (p, o) in test.iter().zip(&out_lines) {
        let got = o["p_positive"].as_f64().unwrap() as f32;
        assert!(
            (got - p.p_positive).abs() <= 1e-6,
            "{}: predict {got} vs eval {}",
            p.id,
            p.p_positive
        );
        assert_eq!(o["predicted"], p.predicted.as_str());
    }
    assert!(
        out_lines[10]["error"]
            .as_str()
            .unwrap()
            .contains("no such file")
    );

    // Suspects: reviewed and quarantined, they leave the next snapshot with their reason; a
    // rerun of curation keeps them out; --release brings them back.
    let suspects: Vec<Suspect> = lines(&out.join("suspects.jsonl"));
    assert!(
        !suspects.is_empty(),
        "a weak model disagrees with some labels"
    );
    assert!(suspects.windows(2).all(|w| w[0].score >= w[1].score));
    for (i, s) in suspects.iter().enumerate() {
        assert_eq!(s.rank, i + 1);
        assert!(!s.signals.is_empty(), "{s:?}");
        assert!(
            !s.neighbours.is_empty() && s.neighbours.len() <= 10,
            "{s:?}"
        );
        assert!(s.neighbours.iter().all(|n| n.id != s.id), "{s:?}");
        assert!(s.oof_p_label.is_some() && s.neighbour_disagreement.is_some());
        // Training dynamics only for training images.
        assert_eq!(s.training_margin.is_some(), s.split == "train", "{s:?}");
    }
    assert_eq!(m.suspects.suspects, suspects.len());
    assert_eq!(m.suspects.splits, ["train", "val", "test", "eval"]);
    assert!(m.suspects.method.as_ref().unwrap().training_dynamics);
    // Every scored image's features, in a file the review page reads.
    let st = std::fs::read(out.join("features.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&st).unwrap();
    let ids: Vec<String> =
        serde_json::from_str(meta.metadata().as_ref().unwrap().get("ids").unwrap()).unwrap();
    assert_eq!(ids.len(), m.scored.values().sum::<usize>());
    // A training suspect, reviewed and quarantined (a test one would leave the frozen holdout).
    let top = suspects
        .iter()
        .find(|s| s.split == "train")
        .expect("a training suspect");
    let dry = ok(&[
        "curate",
        "--config",
        config,
        "--from-run",
        run_s,
        "--top",
        "1",
        "--dry-run",
    ]);
    assert!(dry.contains("would quarantine"), "{dry}");
    let done = ok(&[
        "curate",
        "--config",
        config,
        "--from-run",
        run_s,
        "--id",
        &top.id,
    ]);
    assert!(done.contains("quarantined"), "{done}");
    ok(&["-q", "curate", "--config", config]);
    let next = ok(&[
        "-q", "snapshot", "--config", config, "create", "--parent", &snap,
    ])
    .trim()
    .to_string();
    assert_ne!(next, snap);
    let excluded: Vec<serde_json::Value> =
        lines(&dataset.join("snapshots").join(&next).join("excluded.jsonl"));
    let reasons: BTreeMap<String, String> = excluded
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons.get(&top.id).map(String::as_str),
        Some("suspect_label")
    );
    let manifest: Vec<serde_json::Value> =
        lines(&dataset.join("snapshots").join(&next).join("manifest.jsonl"));
    assert!(manifest.iter().all(|r| r["id"] != top.id.as_str()));
    // The test holdout is frozen under the parent.
    let test_of = |id: &str| -> Vec<String> {
        let rows: Vec<serde_json::Value> =
            lines(&dataset.join("snapshots").join(id).join("manifest.jsonl"));
        rows.iter()
            .filter(|r| r["split"] == "test")
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(test_of(&next), test_of(&snap));
    ok(&[
        "-q",
        "curate",
        "--config",
        config,
        "--release",
        &top.id[..16],
    ]);
    let back = ok(&[
        "-q", "snapshot", "--config", config, "create", "--parent", &snap,
    ])
    .trim()
    .to_string();
    let back_rows: Vec<serde_json::Value> =
        lines(&dataset.join("snapshots").join(&back).join("manifest.jsonl"));
    assert!(back_rows.iter().any(|r| r["id"] == top.id.as_str()));

    // The simulated reviewer (mirror worlds only): the top suspects of the training data,
    // relabelled to their truth or confirmed, as label_review records; a rerun journals nothing
    // new; the next snapshot with --parent applies them, the test holdout keeps its members.
    let sim_args = [
        "curate",
        "--config",
        config,
        "--from-run",
        run_s,
        "--split",
        "train,val,test",
        "--top",
        "100",
        "--simulated-reviewer",
    ];
    let chosen: Vec<&Suspect> = suspects
        .iter()
        .filter(|s| s.split != "eval")
        .take(100)
        .collect();
    let relabel: Vec<&Suspect> = chosen
        .iter()
        .filter(|s| s.truth.as_ref().unwrap().class != s.label)
        .copied()
        .collect();
    assert!(!relabel.is_empty(), "the top suspects hold a wrong label");
    let sim = ok(&sim_args);
    assert!(
        sim.contains(&format!(
            "simulated reviewer (reads the mirror's truth of the {} suspects it reviews, nothing else): journaled {} relabelled",
            chosen.len(),
            relabel.len()
        )),
        "{sim}"
    );
    let again = ok(&sim_args);
    assert!(
        again.contains(&format!("{} already reviewed so", chosen.len())),
        "{again}"
    );
    let explained = ok(&["curate", "--config", config, "--explain", &relabel[0].id]);
    assert!(
        explained.contains("simulated-reviewer (mirror truth)"),
        "{explained}"
    );
    let reviewed = ok(&[
        "-q", "snapshot", "--config", config, "create", "--parent", &snap,
    ])
    .trim()
    .to_string();
    let rows: Vec<serde_json::Value> = lines(
        &dataset
            .join("snapshots")
            .join(&reviewed)
            .join("manifest.jsonl"),
    );
    for s in &relabel {
        let row = rows
            .iter()
            .find(|r| r["id"] == s.id.as_str())
            .unwrap_or_else(|| panic!("{} stays in the snapshot", s.id));
        assert_eq!(row["label"], s.truth.as_ref().unwrap().class.as_str());
        assert_eq!(row["split"], s.split.as_str(), "its split is kept");
    }
    assert_eq!(test_of(&reviewed), test_of(&snap));
    let moved: Vec<serde_json::Value> = lines(
        &dataset
            .join("snapshots")
            .join(&reviewed)
            .join("moved.jsonl"),
    );
    for s in &relabel {
        let m = moved
            .iter()
            .find(|m| m["id"] == s.id.as_str())
            .unwrap_or_else(|| panic!("{} in moved.jsonl", s.id));
        assert_eq!(m["to_label"], s.truth.as_ref().unwrap().class.as_str());
        assert!(
            m["reason"].as_str().unwrap().starts_with("label_review"),
            "{m}"
        );
    }

    // A contact sheet of the snapshot's test john images.
    let sheet = dir.path().join("sheet.png");
    let s = ok(&[
        "sheet",
        "--config",
        config,
        "--snapshot",
        &snap,
        "--group",
        "john",
        "--split",
        "test",
        "--out",
        sheet.to_str().unwrap(),
    ]);
    assert!(s.contains("\"images\":5"), "{s}");
    assert_eq!(&std::fs::read(&sheet).unwrap()[..4], b"\x89PNG");
    let none = run(&[
        "sheet",
        "--config",
        config,
        "--snapshot",
        &snap,
        "--group",
        "nobody",
        "--out",
        sheet.to_str().unwrap(),
    ]);
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("no images in group nobody"),
        "{}",
        none.stderr
    );
}
