//! The report of a synthetic run: deterministic, self-contained, consistent with eval's files,
//! and clear about what is missing.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use base64::Engine as _;
use lennonnet_report::fixture::{FixtureSpec, write_run};
use lennonnet_report::{DatasetInputs, Inputs, ReportError, RunInputs, render, write};

fn fixture(dir: &Path) -> RunInputs {
    write_run(dir, &FixtureSpec::default()).unwrap();
    RunInputs::read(dir).unwrap()
}

fn inputs(run: RunInputs) -> Inputs {
    Inputs {
        run,
        dataset: DatasetInputs::default(),
    }
}

/// The `src` of every `<img>` in `html`.
fn img_srcs(html: &str) -> Vec<&str> {
    html.split("<img ")
        .skip(1)
        .map(|tag| {
            let start = tag.find("src=\"").expect("img has a src") + 5;
            let end = start + tag[start..].find('"').unwrap();
            &tag[start..end]
        })
        .collect()
}

#[test]
fn same_run_same_bytes_and_the_files_match_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let a = render(&inputs(fixture(&tmp.path().join("a")))).unwrap();
    let b = render(&inputs(fixture(&tmp.path().join("b")))).unwrap();
    assert_eq!(a.html, b.html, "the same inputs give the same page");
    for (x, y) in a.plots.iter().zip(&b.plots) {
        assert_eq!(x.png, y.png, "{} differs", x.file);
    }

    let out = tmp.path().join("out");
    let written = write(&a, &out).unwrap();
    assert_eq!(fs::read_to_string(&written.html).unwrap(), a.html);
    let names: Vec<String> = written
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "loss.png",
            "accuracy.png",
            "histograms.png",
            "confusion.png",
            "roc.png",
            "reliability.png"
        ]
    );
    // Each PNG file is the image inlined in the page, byte for byte.
    let inlined: Vec<Vec<u8>> = img_srcs(&a.html)
        .iter()
        .filter_map(|s| s.strip_prefix("data:image/png;base64,"))
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
        .collect();
    for p in &written.plots {
        let bytes = fs::read(p).unwrap();
        assert!(inlined.contains(&bytes), "{} is not inlined", p.display());
    }
    // No temporary file is left behind.
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_page_is_self_contained() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture(tmp.path());
    let thumbs = run.gallery.errors.len() + run.gallery.suspects.len();
    let page = render(&inputs(run)).unwrap().html;
    let srcs = img_srcs(&page);
    assert_eq!(srcs.len(), 6 + thumbs, "six plots and every thumbnail");
    for s in &srcs {
        assert!(
            s.starts_with("data:image/"),
            "not inline: {}",
            &s[..s.len().min(60)]
        );
    }
    let lower = page.to_ascii_lowercase();
    for needle in [
        "<script", "<link", "@import", "url(", "<iframe", "<object", "srcset",
    ] {
        assert!(!lower.contains(needle), "the page holds `{needle}`");
    }
}

#[test]
fn the_page_shows_eval_figures_as_eval_wrote_them() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture(tmp.path());
    let eval = run.eval.clone();
    let page = render(&inputs(run)).unwrap().html;
    // The founding form in the headline.
    let h1 = &page[page.find("<h1>").unwrap()..page.find("</h1>").unwrap()];
    for c in &eval.test.labels.per_class {
        assert!(
            h1.contains(&format!("{}/{} {}", c.right, c.total, c.class)),
            "{h1}"
        );
    }
    // The most confused eval set is named, with its share.
    let worst = eval
        .eval_sets
        .iter()
        .max_by(|a, b| {
            (a.wrong as f64 / a.images as f64).total_cmp(&(b.wrong as f64 / b.images as f64))
        })
        .unwrap();
    assert!(page.contains(&format!(
        "<strong>{}</strong> is taken for john most often",
        worst.group
    )));
    // The suspect ranking's recall against the truth.
    let r = &eval.suspects.recall[0];
    assert!(
        page.contains(&format!(
            "wrong labels in the top 100, train+val+test</dt><dd>{} of {}",
            r.found, r.wrong
        )),
        "the suspect recall"
    );
    assert!(page.contains(&format!("{:.3}", eval.test.labels.roc_auc.unwrap())));
    assert!(page.contains(&format!("{:.3}", eval.test.labels.calibration.ece)));
    // Every gallery item with its provenance.
    let gallery: lennonnet_records::eval::GalleryIndex =
        serde_json::from_slice(&fs::read(tmp.path().join("eval/gallery/index.json")).unwrap())
            .unwrap();
    for item in gallery.errors.iter().chain(&gallery.suspects) {
        let src = &item.sources[0];
        assert!(
            page.contains(&format!("href=\"{}\"", src.url)),
            "{}",
            src.url
        );
        assert!(page.contains(&src.query), "{}", src.query);
        assert!(page.contains(&item.id[..12]));
    }
}

#[test]
fn the_dataset_summary_shows_the_snapshot_and_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture(tmp.path());
    let meta: lennonnet_split::snapshot::Meta = serde_json::from_value(serde_json::json!({
        "format_version": 1,
        "id": run.record.snapshot,
        "parent": null,
        "policy": {"key": "k", "val_fraction": 0.2, "test_per_class": {"john": 25, "not_john": 25}},
        "config_hash": "00",
        "tool_version": "0.1.0",
        "counts": {
            "total": 3,
            "by_split": {"train": 2, "test": 1},
            "by_class": {"john": {"train": 2}, "not_john": {"test": 1}},
            "by_group": {"john": {"train": 2}, "george": {"test": 1}}
        },
        "excluded": {"near_duplicate": 17, "eval_overlaps_train": 3},
        "moved": 0,
        "shortfalls": [{"class": "not_john", "wanted": 25, "got": 1}]
    }))
    .unwrap();
    let store = lennonnet_store::Stats {
        images: 1234,
        by_curation: BTreeMap::from([
            ("representative".into(), 1100),
            ("near_duplicate".into(), 134),
        ]),
        rejected_by_reason: BTreeMap::from([("too_small".into(), 42)]),
        ..Default::default()
    };
    let page = render(&Inputs {
        run,
        dataset: DatasetInputs {
            dir: Some("datasets/x".into()),
            snapshot: Some(meta),
            store: Some(store),
            notes: vec![],
        },
    })
    .unwrap()
    .html;
    for needle in [
        "near_duplicate",
        "eval_overlaps_train",
        "too_small",
        "1,234",
        "short: 1 of 25",
        "representative",
    ] {
        assert!(
            page.contains(needle),
            "no `{needle}` in the dataset summary"
        );
    }
}

#[test]
fn a_run_without_eval_says_to_run_eval_first() {
    let tmp = tempfile::tempdir().unwrap();
    write_run(tmp.path(), &FixtureSpec::default()).unwrap();
    for file in [
        "eval/gallery/index.json",
        "eval/suspects.jsonl",
        "eval/metrics.json",
    ] {
        fs::remove_file(tmp.path().join(file)).unwrap();
        let err = RunInputs::read(tmp.path()).unwrap_err();
        assert!(matches!(err, ReportError::NoEval { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(file), "{text}");
        assert!(
            text.contains(&format!(
                "run `lennonnet eval --run {}` first",
                tmp.path().display()
            )),
            "{text}"
        );
    }
}

#[test]
fn bad_inputs_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = RunInputs::read(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("is not a run folder"), "{err}");

    write_run(tmp.path(), &FixtureSpec::default()).unwrap();
    let preds = tmp.path().join("eval/predictions.jsonl");
    let mut text = fs::read_to_string(&preds).unwrap();
    text.push_str("{\"id\": 3}\n");
    fs::write(&preds, text).unwrap();
    let err = RunInputs::read(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("predictions.jsonl line"), "{err}");

    write_run(tmp.path(), &FixtureSpec::default()).unwrap();
    let index = tmp.path().join("eval/gallery/index.json");
    let text = fs::read_to_string(&index).unwrap();
    let first = text
        .split("\"thumbnail\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    fs::write(&index, text.replace(&first, "../../run.json")).unwrap();
    let err = RunInputs::read(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("is not a path inside"), "{err}");
}
