//! Planning speed on the founding config, against loading (parsing and validating) the same
//! config in the same run. Prints one line: figure, baseline and their ratio.

use std::path::Path;
use std::time::{Duration, Instant};

fn time<T>(min: Duration, mut f: impl FnMut() -> T) -> (Duration, u32) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < min || n < 3 {
        std::hint::black_box(f());
        n += 1;
    }
    (start.elapsed() / n, n)
}

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/lennonnet.toml");
    let config = lennonnet_config::load(&path).expect("founding config loads");
    let src = std::fs::read_to_string(&path).unwrap();
    let (parse, _) = time(Duration::from_secs(1), || {
        lennonnet_config::parse(&src, &path).unwrap()
    });
    let (plan, n) = time(Duration::from_secs(1), || lennonnet_plan::plan(&config));
    let rows = lennonnet_plan::plan(&config).len();
    println!(
        "plan: {:.0} µs per founding plan ({rows} rows, {n} runs); baseline: config parse+validate {:.0} µs; ratio {:.2}",
        plan.as_secs_f64() * 1e6,
        parse.as_secs_f64() * 1e6,
        plan.as_secs_f64() / parse.as_secs_f64()
    );
    println!(
        "{}",
        lennonnet_core::bench::BenchLine::new(
            "plan",
            "founding plan, µs (lower is better)",
            plan.as_secs_f64() * 1e6,
            "config parse + validate, µs",
            Some(parse.as_secs_f64() * 1e6),
        )
    );
}
