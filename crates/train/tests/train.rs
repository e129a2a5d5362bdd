//! Training runs end to end on a small synthetic snapshot (two classes that differ in shape and
//! colour, 2:1 imbalanced): learning, reproducibility, resume, the run folder, the caches.

use std::path::{Path, PathBuf};

use lennonnet_core::NoProgress;
use lennonnet_dataset::{decode_upright, object_path};
use lennonnet_models::scoring::{load_best, preprocess_cfg, probabilities};
use lennonnet_models::{Arch, preprocess};
use lennonnet_records::run::{self, MetricsRecord, RunStatus};
use lennonnet_records::scores::argmax;
use lennonnet_records::{Balance, Strategy, ThresholdMetric, TrainSettings};
use lennonnet_split::Snapshot;
use lennonnet_train::augment::{Normalise, centre_crop};
use lennonnet_train::data::cache::PixelCache;
use lennonnet_train::data::loader::LoaderOptions;
use lennonnet_train::synthetic::{SyntheticSpec, write_dataset};
use lennonnet_train::trainer::resize_px;
use lennonnet_train::{TrainError, TrainOptions, TrainOutcome, train};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    snapshot: Snapshot,
}

fn fixture(corrupt: usize) -> Fixture {
    fixture_with(SyntheticSpec {
        corrupt,
        ..Default::default()
    })
}

fn fixture_with(spec: SyntheticSpec) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let snapshot = write_dataset(&root.join("data"), &spec).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        snapshot,
    }
}

/// A small ResNet at 64 px, trained from scratch.
fn settings(strategy: Strategy, epochs: usize) -> TrainSettings {
    TrainSettings {
        model: "resnet10t".into(),
        strategy,
        epochs,
        batch_size: 12,
        input_px: Some(64),
        seed: 7,
        learning_rate: 3e-3,
        warmup_epochs: 1.0,
        patience_epochs: 20,
        ..Default::default()
    }
}

fn options(f: &Fixture, run: &str, settings: TrainSettings) -> TrainOptions {
    TrainOptions::new(
        settings,
        f.root.join("runs").join(run),
        f.root.join("cache"),
    )
}

fn run(opts: &TrainOptions, snapshot: &Snapshot) -> TrainOutcome {
    train(snapshot, opts, &NoProgress).unwrap()
}

/// metrics.jsonl without the `time` objects.
fn metrics_without_time(run_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join(run::METRICS)).unwrap();
    text.lines()
        .map(|l| run::without_time(l).unwrap())
        .collect()
}

/// Two safetensors files hold the same tensors, bit for bit (the header's metadata order may
/// differ).
fn same_tensors(a: &Path, b: &Path) -> bool {
    let load = |p: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = lennonnet_models::candle_core::safetensors::load(
            p,
            &lennonnet_models::candle_core::Device::Cpu,
        )
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let bytes = t
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            (k, bytes)
        })
        .collect();
        v.sort();
        v
    };
    let (x, y) = (load(a), load(b));
    !x.is_empty() && x == y
}

/// Val accuracy of the best epoch, and the majority baseline.
fn best_and_baseline(out: &TrainOutcome) -> (f64, f64) {
    let r = out.record.result.as_ref().unwrap();
    let val = &out.record.data.val_per_class;
    let baseline = *val.values().max().unwrap() as f64 / val.values().sum::<usize>() as f64;
    (r.val_accuracy, baseline)
}

#[test]
fn full_training_learns_and_fills_the_run_folder() {
    // Two corrupt objects, and three pictures of class `a` labelled `b`.
    let f = fixture_with(SyntheticSpec {
        corrupt: 2,
        flipped: 3,
        ..Default::default()
    });
    let mut s = settings(Strategy::Full, 6);
    s.balance = Balance::WeightedLoss;
    let out = run(&options(&f, "full", s), &f.snapshot);
    let (acc, baseline) = best_and_baseline(&out);
    eprintln!("full: val accuracy {acc:.3}, majority baseline {baseline:.3}");
    assert!(
        acc >= baseline + 0.2,
        "val accuracy {acc} vs majority baseline {baseline}"
    );

    let rec = &out.record;
    assert_eq!(rec.status, RunStatus::Finished);
    assert_eq!(rec.classes, ["a", "b"]);
    assert_eq!(rec.positive_class, "a");
    assert_eq!(rec.snapshot, f.snapshot.id().to_string());
    assert_eq!(rec.data.train, 58, "two corrupt objects are left out");
    assert_eq!(rec.data.failed.len(), 2);
    assert_eq!(rec.data.class_weights.len(), 2);
    assert!(rec.data.class_weights[0] > rec.data.class_weights[1]);
    assert_eq!(rec.preprocess.input_px, 64);
    assert_eq!(rec.preprocess.resize_px, 73);
    assert_eq!(rec.device, "cpu");
    assert!(rec.trainable.frozen.is_empty());
    let threshold = rec.threshold.expect("a binary task gets a threshold");
    assert!((0.0..=1.0).contains(&threshold));
    let at = rec.result.as_ref().unwrap().val_at_threshold.unwrap();
    assert_eq!(at.threshold, threshold);
    assert_eq!(
        rec.result.as_ref().unwrap().threshold_metric,
        ThresholdMetric::BalancedAccuracy
    );
    // run.json on disk is the record returned.
    let on_disk = std::fs::read_to_string(out.run_dir.join(run::RUN_JSON)).unwrap();
    assert_eq!(on_disk, serde_json::to_string_pretty(rec).unwrap() + "\n");
    assert_eq!(
        run::read_record(&out.run_dir).unwrap().unwrap().name,
        "full"
    );
    for file in [
        run::BEST,
        run::LAST,
        run::RESUME,
        run::METRICS,
        run::RUN_JSON,
    ] {
        assert!(out.run_dir.join(file).is_file(), "{file}");
    }
    // The training dynamics: one row per training image, sorted by id; the wrong labels are
    // the ones the model agreed with least while it trained.
    let dynamics = run::read_dynamics(&out.run_dir)
        .unwrap()
        .expect("dynamics.jsonl");
    assert_eq!(dynamics.len(), 58);
    assert!(dynamics.windows(2).all(|w| w[0].id < w[1].id));
    assert!(dynamics.iter().all(|d| (1..=6).contains(&d.seen)));
    let rows = f.snapshot.rows().unwrap();
    let flipped: Vec<String> = rows
        .iter()
        .filter(|r| r.group.as_str() == "group_b_flipped")
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(flipped.len(), 3);
    let mut by_margin = dynamics.clone();
    by_margin.sort_by(|a, b| a.margin.total_cmp(&b.margin));
    let lowest: Vec<&str> = by_margin[..5].iter().map(|d| d.id.as_str()).collect();
    eprintln!(
        "margins: flipped {:?}, lowest {:?}",
        dynamics
            .iter()
            .filter(|d| flipped.contains(&d.id))
            .map(|d| d.margin)
            .collect::<Vec<_>>(),
        by_margin[..5].iter().map(|d| d.margin).collect::<Vec<_>>()
    );
    for id in &flipped {
        assert!(
            lowest.contains(&id.as_str()),
            "{id} not among the 5 lowest margins"
        );
    }
    // metrics.jsonl: steps, one epoch record per epoch, then one end record.
    let records = run::read_metrics(&out.run_dir.join(run::METRICS)).unwrap();
    let steps = records
        .iter()
        .filter(|r| matches!(r, MetricsRecord::Step(_)))
        .count();
    assert_eq!(steps, 6 * (58 / 12));
    assert_eq!(out.epochs.len(), 6);
    assert!(matches!(records.last(), Some(MetricsRecord::End(_))));
    assert!(out.epochs.iter().any(|e| e.best));
    // best.safetensors holds the best epoch's model: loaded afresh and fed the original files
    // through the pretrained preprocessing (what eval and predict do), it scores on val what
    // validation measured.
    let device = lennonnet_models::candle_core::Device::Cpu;
    let (loaded, model) = load_best(&out.run_dir, &device).unwrap();
    assert_eq!(&loaded.classes, &rec.classes);
    let cfg = preprocess_cfg(&loaded);
    let objects = f.root.join("data").join("objects");
    let (mut right, mut total) = (0, 0);
    for row in f.snapshot.rows().unwrap() {
        if row.split != lennonnet_core::Split::Val {
            continue;
        }
        let img = decode_upright(&std::fs::read(object_path(&objects, &row.id)).unwrap()).unwrap();
        let x = preprocess::image_to_tensor(&img, &cfg, &device)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let p = probabilities(&model.forward_t(&x, false).unwrap()).unwrap();
        let predicted = &rec.classes[argmax(&p[0])];
        right += usize::from(predicted == row.label.as_str());
        total += 1;
    }
    assert_eq!(total, 24);
    assert_eq!(right as f64 / total as f64, acc, "{right}/{total}");

    // A second run in the same folder needs --resume; resuming a finished run does nothing.
    let again = options(&f, "full", settings(Strategy::Full, 6));
    let err = train(&f.snapshot, &again, &NoProgress).unwrap_err();
    assert!(matches!(err, TrainError::RunExists { .. }), "{err}");
    let resumed = run(
        &TrainOptions {
            resume: true,
            settings: TrainSettings {
                balance: Balance::WeightedLoss,
                ..settings(Strategy::Full, 6)
            },
            ..again
        },
        &f.snapshot,
    );
    assert!(resumed.already_finished);
}

#[test]
fn head_on_a_random_backbone_learns_from_cached_features() {
    let f = fixture(0);
    let mut s = settings(Strategy::Head, 15);
    s.learning_rate = 1e-2;
    let opts = options(&f, "head", s);
    let out = run(&opts, &f.snapshot);
    let (acc, baseline) = best_and_baseline(&out);
    eprintln!("head: val accuracy {acc:.3}, majority baseline {baseline:.3}");
    assert!(
        acc >= baseline + 0.15,
        "val accuracy {acc} vs majority baseline {baseline}"
    );
    let rec = &out.record;
    assert_eq!(rec.trainable.params, 512 * 2 + 2, "only the head trains");
    assert!(rec.trainable.frozen.contains(&"layer1".to_string()));
    let features = rec.data.feature_cache.clone().expect("a feature cache");
    assert!(features.is_file());
    // A second run with another seed reuses the pixel and feature caches (same backbone
    // weights would differ with another seed, so keep it).
    let modified = std::fs::metadata(&features).unwrap().modified().unwrap();
    let mut s2 = opts.settings.clone();
    s2.epochs = 2;
    let out2 = run(&options(&f, "head2", s2), &f.snapshot);
    assert_eq!(out2.record.data.feature_cache.as_ref(), Some(&features));
    assert_eq!(
        std::fs::metadata(&features).unwrap().modified().unwrap(),
        modified
    );
}

#[test]
fn the_same_seed_gives_the_same_metrics_whatever_the_threads() {
    let f = fixture(0);
    let mut s = settings(Strategy::Full, 2);
    s.balance = Balance::Sampler;
    let mut a = options(&f, "a", s.clone());
    a.loader = LoaderOptions {
        threads: 0,
        prefetch_batches: 1,
    };
    let mut b = options(&f, "b", s.clone());
    b.loader = LoaderOptions {
        threads: 3,
        prefetch_batches: 5,
    };
    let (ra, rb) = (run(&a, &f.snapshot), run(&b, &f.snapshot));
    let (ma, mb) = (
        metrics_without_time(&ra.run_dir),
        metrics_without_time(&rb.run_dir),
    );
    assert!(ma.len() > 5);
    assert_eq!(ma, mb);
    assert!(same_tensors(
        &ra.run_dir.join(run::BEST),
        &rb.run_dir.join(run::BEST)
    ));
    s.seed = 8;
    let c = run(&options(&f, "c", s), &f.snapshot);
    assert_ne!(ma, metrics_without_time(&c.run_dir));
}

#[test]
fn a_stopped_run_resumes_to_the_same_end_as_an_uninterrupted_one() {
    let f = fixture(0);
    let mut s = settings(Strategy::Partial, 3);
    s.trainable_prefixes = vec!["layer3".into(), "layer4".into()];
    let whole = run(&options(&f, "whole", s.clone()), &f.snapshot);

    // Checkpoints every 2 steps and at epoch ends (4 steps an epoch); stopped after step 7, as
    // if killed there: the resume starts from step 6 and redoes step 7.
    let mut cut = options(&f, "cut", s.clone());
    cut.checkpoint_every_steps = 2;
    cut.stop_after_steps = Some(7);
    let stopped = run(&cut, &f.snapshot);
    assert!(!stopped.completed);
    let partial = metrics_without_time(&stopped.run_dir);
    assert_eq!(partial.iter().filter(|r| r["kind"] == "step").count(), 7);

    // Resuming with other settings is refused, naming the setting.
    let mut other = cut.clone();
    other.stop_after_steps = None;
    other.resume = true;
    other.settings.learning_rate = 1e-3;
    let err = train(&f.snapshot, &other, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("learning_rate"), "{err}");

    other.settings = s;
    let resumed = run(&other, &f.snapshot);
    assert!(resumed.completed && !resumed.already_finished);
    assert_eq!(
        metrics_without_time(&whole.run_dir),
        metrics_without_time(&resumed.run_dir)
    );
    assert_eq!(whole.record.result, resumed.record.result);
    assert_eq!(whole.record.threshold, resumed.record.threshold);
    assert_eq!(
        run::read_dynamics(&whole.run_dir).unwrap(),
        run::read_dynamics(&resumed.run_dir).unwrap()
    );
    for file in [run::BEST, run::LAST] {
        assert!(
            same_tensors(&whole.run_dir.join(file), &resumed.run_dir.join(file)),
            "{file}"
        );
    }
    // Stopped after step 1 with checkpoints only at epoch ends: run.json and a step in
    // metrics.jsonl, no checkpoint. The resume starts over and ends as the uninterrupted run.
    let mut early = options(&f, "early", other.settings.clone());
    early.stop_after_steps = Some(1);
    let stopped = run(&early, &f.snapshot);
    assert!(!stopped.completed);
    assert!(!stopped.run_dir.join(run::RESUME).exists());
    assert_eq!(metrics_without_time(&stopped.run_dir).len(), 1);
    early.stop_after_steps = None;
    early.resume = true;
    let resumed = run(&early, &f.snapshot);
    assert!(resumed.completed && !resumed.already_finished);
    assert_eq!(
        metrics_without_time(&whole.run_dir),
        metrics_without_time(&resumed.run_dir)
    );
    assert!(same_tensors(
        &whole.run_dir.join(run::BEST),
        &resumed.run_dir.join(run::BEST)
    ));
    // Nothing to resume in an empty folder.
    let mut nothing = other.clone();
    nothing.run_dir = f.root.join("runs").join("nothing");
    let err = train(&f.snapshot, &nothing, &NoProgress).unwrap_err();
    assert!(matches!(err, TrainError::NothingToResume { .. }), "{err}");
}

#[test]
fn the_eval_transform_of_the_cache_equals_the_pretrained_preprocessing() {
    let f = fixture(0);
    let rows = f.snapshot.rows().unwrap();
    let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    let cfg = Arch::EfficientNetLite0.pretrained_cfg();
    let input = 64;
    let side = resize_px(input, cfg.crop_pct);
    let objects = f.root.join("data").join("objects");
    let cache = PixelCache::open_or_build(
        &f.root.join("cache"),
        &f.snapshot.id().to_string(),
        &ids,
        &objects,
        side,
        cfg.interpolation,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(cache.len(), ids.len());
    assert!(cache.failed().is_empty());
    let small = lennonnet_models::PretrainedCfg {
        input_size: input,
        ..cfg
    };
    let norm = Normalise {
        mean: cfg.mean,
        std: cfg.std,
    };
    let mut buf = vec![0u8; cache.image_bytes()];
    for id in ids.iter().take(5) {
        let original = decode_upright(&std::fs::read(object_path(&objects, id)).unwrap()).unwrap();
        let want = preprocess::image_to_tensor(
            &original,
            &small,
            &lennonnet_models::candle_core::Device::Cpu,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        cache.read(cache.slot(id).unwrap(), &mut buf).unwrap();
        let mut got = vec![0f32; 3 * input * input];
        centre_crop(&buf, side, input, &norm, &mut got);
        assert_eq!(got, want, "{id}");
    }
    // Opening again finds the cache instead of decoding anew.
    let again = PixelCache::open_or_build(
        &f.root.join("cache"),
        &f.snapshot.id().to_string(),
        &ids,
        Path::new("/nonexistent"),
        side,
        cfg.interpolation,
        &NoProgress,
    )
    .unwrap();
    assert!(again.failed().is_empty());
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_on_a_cpu_build_fails_with_the_fix() {
    let f = fixture(0);
    for device in ["cuda", "cuda:1"] {
        let mut s = settings(Strategy::Head, 1);
        s.device = device.into();
        let err = train(&f.snapshot, &options(&f, "cuda", s), &NoProgress).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("built without CUDA") && text.contains("--features cuda"),
            "{text}"
        );
    }
    let mut s = settings(Strategy::Head, 1);
    s.bf16 = true;
    let err = train(&f.snapshot, &options(&f, "bf16", s), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("bf16"), "{err}");
}

#[test]
fn partial_on_a_cached_boundary_is_reproducible_and_resumes_exactly() {
    let f = fixture(0);
    let mut s = settings(Strategy::Partial, 3);
    s.trainable_prefixes = vec!["layer4".into()];
    s.cache_boundary = true;
    s.feature_views = 2;
    let whole = run(&options(&f, "whole", s.clone()), &f.snapshot);
    let (acc, baseline) = best_and_baseline(&whole);
    eprintln!(
        "partial on a cached boundary: val accuracy {acc:.3}, majority baseline {baseline:.3}"
    );
    assert!(
        acc >= baseline + 0.15,
        "val accuracy {acc} vs majority baseline {baseline}"
    );
    let cache = whole
        .record
        .data
        .feature_cache
        .clone()
        .expect("a boundary cache");
    let file = cache.file_name().unwrap().to_string_lossy().into_owned();
    assert!(file.starts_with("boundary-"), "{file}");
    assert!(
        whole
            .record
            .trainable
            .frozen
            .iter()
            .any(|l| l.starts_with("layer3"))
    );

    // The same seed again (reading the cache this time) writes the same metrics and models.
    let modified = std::fs::metadata(&cache).unwrap().modified().unwrap();
    let again = run(&options(&f, "again", s.clone()), &f.snapshot);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        modified,
        "the cache is reused"
    );
    let m = metrics_without_time(&whole.run_dir);
    assert!(m.len() > 5);
    assert_eq!(m, metrics_without_time(&again.run_dir));
    assert!(same_tensors(
        &whole.run_dir.join(run::BEST),
        &again.run_dir.join(run::BEST)
    ));

    // Stopped after step 7 and resumed: the uninterrupted run's metrics, models and threshold.
    let mut cut = options(&f, "cut", s.clone());
    cut.checkpoint_every_steps = 2;
    cut.stop_after_steps = Some(7);
    assert!(!run(&cut, &f.snapshot).completed);
    cut.stop_after_steps = None;
    cut.resume = true;
    let resumed = run(&cut, &f.snapshot);
    assert_eq!(m, metrics_without_time(&resumed.run_dir));
    assert_eq!(whole.record.threshold, resumed.record.threshold);
    assert_eq!(
        run::read_dynamics(&whole.run_dir).unwrap(),
        run::read_dynamics(&resumed.run_dir).unwrap()
    );
    for file in [run::BEST, run::LAST] {
        assert!(
            same_tensors(&whole.run_dir.join(file), &resumed.run_dir.join(file)),
            "{file}"
        );
    }

    // Another seed draws other views and another order.
    s.seed = 8;
    let other = run(&options(&f, "other", s.clone()), &f.snapshot);
    assert_ne!(m, metrics_without_time(&other.run_dir));

    // A cut with nothing frozen before it is refused, naming why.
    s.trainable_prefixes = vec!["conv1".into()];
    let err = train(&f.snapshot, &options(&f, "stem", s), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("before the first block"), "{err}");
}
