//! Evaluation throughput (`cargo bench -p lennonnet-eval --bench eval`): images scored per second
//! by `evaluate` (read the object, decode, resize and crop, normalise on the decoding threads,
//! forward pass in batches, then the figures and the files) against the bare forward pass of the
//! same model on inputs prepared beforehand, the ceiling for scoring.
//!
//! The model is EfficientNet-Lite0 at 224 px (the demo's), trained for one head epoch on the
//! synthetic dataset's images written as 800 × 600 JPEGs (a typical web photo).
//! `LENNONNET_BENCH_QUICK=1`: fewer images, for a smoke run.

use std::time::Instant;

use lennonnet_core::NoProgress;
use lennonnet_eval::{Annotations, EvalOptions, Scorer, evaluate};
use lennonnet_models::candle_core::Device;
use lennonnet_records::{Strategy, TrainSettings};
use lennonnet_train::synthetic::{SyntheticSpec, write_dataset};
use lennonnet_train::{TrainOptions, train};

fn main() {
    lennonnet_models::tune_allocator();
    let quick = std::env::var("LENNONNET_BENCH_QUICK").is_ok_and(|v| v == "1");
    let n = if quick { 32 } else { 128 };
    let tmp = tempfile::tempdir().expect("temp dir");
    let spec = SyntheticSpec {
        train: [n / 2, n / 2],
        val: [4, 4],
        width: 800,
        height: 600,
        jpeg_quality: Some(90),
        ..Default::default()
    };
    let snapshot = write_dataset(&tmp.path().join("data"), &spec).expect("dataset");
    let run_dir = tmp.path().join("runs").join("bench");
    let settings = TrainSettings {
        model: "efficientnet_lite0".into(),
        strategy: Strategy::Head,
        epochs: 1,
        batch_size: 32,
        ..Default::default()
    };
    train(
        &snapshot,
        &TrainOptions::new(settings, run_dir.clone(), tmp.path().join("cache")),
        &NoProgress,
    )
    .expect("training run");

    let device = Device::Cpu;
    let scorer = Scorer::load(&run_dir, &device).expect("scorer");
    let opts = EvalOptions {
        gallery_errors: 0,
        gallery_suspects: 0,
        ..EvalOptions::default()
    };
    let rows = snapshot.rows().expect("rows");
    let images = rows.len();

    // The bare forward pass on prepared inputs, in the same batches.
    let objects = tmp.path().join("data").join("objects");
    let prepared: Vec<_> = rows
        .iter()
        .map(|r| {
            let bytes =
                std::fs::read(lennonnet_dataset::object_path(&objects, &r.id)).expect("object");
            scorer.prepare(&bytes).expect("prepare")
        })
        .collect();
    scorer
        .forward(&prepared[..opts.batch_size.min(images)])
        .expect("warm-up");
    let started = Instant::now();
    for chunk in prepared.chunks(opts.batch_size) {
        scorer.forward(chunk).expect("forward");
    }
    let forward = images as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let out = evaluate(
        &run_dir,
        &scorer,
        &snapshot,
        &Annotations::default(),
        &opts,
        &NoProgress,
        0.0,
    )
    .expect("evaluate");
    let whole = images as f64 / started.elapsed().as_secs_f64();
    assert_eq!(out.metrics.timing.images, images);
    println!(
        "eval: {images} images (800x600 JPEG), efficientnet_lite0 at 224 px, batch {}, {} decoding threads: {whole:.1} img/s; bare forward pass {forward:.1} img/s",
        opts.batch_size, opts.threads
    );
    println!(
        "{}",
        lennonnet_core::bench::BenchLine::new(
            "eval",
            "images/s scored by evaluate (read, decode, preprocess, forward, figures, files)",
            whole,
            "bare forward pass on prepared inputs, images/s",
            Some(forward),
        )
    );
}
