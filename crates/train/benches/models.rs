//! Model benchmarks, printing figures (`cargo bench -p lennonnet-train`):
//!
//! - ResNet-50d training step (forward, backward, AdamW) at batch 8 and 224 px with this crate's
//!   fast CPU kernels and with candle's own conv2d path, in the same run, and the speed-up;
//! - EfficientNet-Lite0 and ResNet-50d inference at batch 16 and 224 px.
//!
//! `LENNONNET_BENCH_STEPS` sets the timed repetitions (default 3, after one warm-up);
//! `LENNONNET_BENCH_QUICK=1` uses 112 px and batch 4 for a smoke run.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use lennonnet_train::{Arch, Backend, Classifier, ModelOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Seconds per call: one warm-up, then the mean of `steps` timed calls.
fn time(steps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..steps {
        f();
    }
    start.elapsed().as_secs_f64() / steps as f64
}

fn input(batch: usize, size: usize) -> Tensor {
    Tensor::randn(0f32, 1f32, (batch, 3, size, size), &Device::Cpu).expect("input")
}

fn model(arch: Arch, classes: usize, backend: Backend) -> Classifier {
    let opts = ModelOptions {
        num_classes: classes,
        backend: Some(backend),
        dtype: DType::F32,
        ..Default::default()
    };
    Classifier::new(arch, &opts, &Device::Cpu).expect("model")
}

fn train_step_seconds(backend: Backend, batch: usize, size: usize, steps: usize) -> f64 {
    let m = model(Arch::ResNet50d, 1000, backend);
    let vars = m.trainable_vars().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(vars, ParamsAdamW::default()).expect("optimiser");
    let x = input(batch, size);
    let labels = Tensor::from_vec(
        (0..batch as u32).map(|i| i * 7 % 1000).collect::<Vec<_>>(),
        batch,
        &Device::Cpu,
    )
    .expect("labels");
    time(steps, || {
        let logits = m.forward_t(&x, true).expect("forward");
        let loss = candle_nn::loss::cross_entropy(&logits, &labels).expect("loss");
        opt.backward_step(&loss).expect("backward and step");
    })
}

fn inference_seconds(arch: Arch, backend: Backend, batch: usize, size: usize, steps: usize) -> f64 {
    let m = model(arch, 1000, backend);
    let x = input(batch, size);
    time(steps, || {
        m.forward_t(&x, false).expect("forward");
    })
}

fn main() {
    let quick = std::env::var("LENNONNET_BENCH_QUICK").is_ok_and(|v| v == "1");
    let steps = env_usize("LENNONNET_BENCH_STEPS", 3);
    let size = if quick { 112 } else { 224 };
    let (train_batch, infer_batch) = if quick { (4, 4) } else { (8, 16) };
    let threads = candle_core::utils::get_num_threads();
    println!("lennonnet-train benchmarks: {threads} threads, {steps} timed steps after one warm-up");

    let fast = train_step_seconds(Backend::Fast, train_batch, size, steps);
    println!(
        "resnet50d train step (forward+backward+AdamW), batch {train_batch}, {size} px, fast kernels: \
         {fast:.2} s/step, {:.2} images/s",
        train_batch as f64 / fast
    );
    let candle = train_step_seconds(Backend::Candle, train_batch, size, steps);
    println!(
        "resnet50d train step (forward+backward+AdamW), batch {train_batch}, {size} px, candle conv2d: \
         {candle:.2} s/step, {:.2} images/s",
        train_batch as f64 / candle
    );
    println!("resnet50d train step speed-up of the fast kernels over candle's conv2d: {:.2}x", candle / fast);

    for arch in [Arch::EfficientNetLite0, Arch::ResNet50d] {
        for backend in [Backend::Fast, Backend::Candle] {
            let s = inference_seconds(arch, backend, infer_batch, size, steps);
            println!(
                "{arch} inference, batch {infer_batch}, {size} px, {} kernels: {s:.3} s/batch, {:.1} images/s",
                backend.name(),
                infer_batch as f64 / s
            );
        }
    }
}
