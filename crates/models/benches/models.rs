//! Model benchmarks, printing figures (`cargo bench -p lennonnet-models`):
//!
//! - ResNet-50d training step (forward, backward, AdamW) at batch 8 and 224 px with this crate's
//!   fast CPU kernels and with candle's own conv2d path, in the same run, and the speed-up;
//! - EfficientNet-Lite0 and ResNet-50d inference at batch 16 and 224 px.
//!
//! `LENNONNET_BENCH_STEPS` sets the timed repetitions (default 3, after two warm-ups);
//! `LENNONNET_BENCH_QUICK=1` uses 112 px and batch 4 for a smoke run.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use lennonnet_core::bench::BenchLine;
use lennonnet_models::{Arch, Backend, Classifier, ModelOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Process CPU time (user + system), seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// Wall and CPU seconds per call: two warm-ups (the allocator settles), then the mean of `steps`
/// timed calls. The CPU time is the steadier figure on a shared machine.
fn time(steps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    f();
    let (start, cpu) = (Instant::now(), cpu_seconds());
    for _ in 0..steps {
        f();
    }
    (
        start.elapsed().as_secs_f64() / steps as f64,
        (cpu_seconds() - cpu) / steps as f64,
    )
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

fn train_step_seconds(backend: Backend, batch: usize, size: usize, steps: usize) -> (f64, f64) {
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

fn inference_seconds(
    arch: Arch,
    backend: Backend,
    batch: usize,
    size: usize,
    steps: usize,
) -> (f64, f64) {
    let m = model(arch, 1000, backend);
    let x = input(batch, size);
    time(steps, || {
        m.forward_t(&x, false).expect("forward");
    })
}

fn main() {
    lennonnet_models::tune_allocator();
    let quick = std::env::var("LENNONNET_BENCH_QUICK").is_ok_and(|v| v == "1");
    let steps = env_usize("LENNONNET_BENCH_STEPS", 3);
    let size = if quick { 112 } else { 224 };
    let (train_batch, infer_batch) = if quick { (4, 4) } else { (8, 16) };
    let threads = candle_core::utils::get_num_threads();
    println!(
        "lennonnet-models benchmarks: {threads} threads, {steps} timed steps after two warm-ups"
    );

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average before: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (fast, fast_cpu) = train_step_seconds(Backend::Fast, train_batch, size, steps);
    println!(
        "resnet50d train step (forward+backward+AdamW), batch {train_batch}, {size} px, fast kernels: \
         {fast:.2} s/step ({fast_cpu:.2} CPU s), {:.2} images/s",
        train_batch as f64 / fast
    );
    let (candle, candle_cpu) = train_step_seconds(Backend::Candle, train_batch, size, steps);
    println!(
        "resnet50d train step (forward+backward+AdamW), batch {train_batch}, {size} px, candle conv2d: \
         {candle:.2} s/step ({candle_cpu:.2} CPU s), {:.2} images/s",
        train_batch as f64 / candle
    );
    println!(
        "resnet50d train step speed-up of the fast kernels over candle's conv2d: {:.2}x wall, {:.2}x CPU time",
        candle / fast,
        candle_cpu / fast_cpu
    );
    println!(
        "{}",
        BenchLine::new(
            "models",
            &format!(
                "resnet50d train step, batch {train_batch}, {size} px, fast kernels, images/s"
            ),
            train_batch as f64 / fast,
            "the same step with candle's conv2d, images/s",
            Some(train_batch as f64 / candle),
        )
    );

    for arch in [Arch::EfficientNetLite0, Arch::ResNet50d] {
        let mut rates = Vec::new();
        for backend in [Backend::Fast, Backend::Candle] {
            let (s, cpu) = inference_seconds(arch, backend, infer_batch, size, steps);
            println!(
                "{arch} inference, batch {infer_batch}, {size} px, {} kernels: {s:.3} s/batch ({cpu:.3} CPU s), {:.1} images/s",
                backend.name(),
                infer_batch as f64 / s
            );
            rates.push(infer_batch as f64 / s);
        }
        println!(
            "{}",
            BenchLine::new(
                "models",
                &format!(
                    "{arch} inference, batch {infer_batch}, {size} px, fast kernels, images/s"
                ),
                rates[0],
                "the same with candle's conv2d, images/s",
                Some(rates[1]),
            )
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average after: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
