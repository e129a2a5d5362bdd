//! The report of a founding-scale synthetic run (three eval sets of 1,000 pictures, 24 error
//! and 16 suspect thumbnails): milliseconds to read the run folder, draw every plot, lay out
//! the page and write it, against the baseline of only PNG-encoding the same plots' pixels.
//! Best of `REPORT_BENCH_ROUNDS` (default 5) each.
//!
//! `cargo bench -p lennonnet-report`

use std::time::{Duration, Instant};

use lennonnet_core::bench::BenchLine;
use lennonnet_report::fixture::{FixtureSpec, write_run};
use lennonnet_report::plot::encode_png;
use lennonnet_report::{DatasetInputs, Inputs, RunInputs, render, write};

fn best(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("at least one round")
}

fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut r = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    let info = r.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn main() {
    let rounds: usize = std::env::var("REPORT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let run_dir = tmp.path().join("run");
    let spec = FixtureSpec {
        eval_set_images: 1000,
        scale: 4,
        gallery_errors: 24,
        gallery_suspects: 16,
        ..FixtureSpec::default()
    };
    write_run(&run_dir, &spec).expect("fixture run");
    let out = tmp.path().join("report");

    let mut bytes = 0;
    let mut plots = Vec::new();
    let total = best(rounds, || {
        let inputs = Inputs {
            run: RunInputs::read(&run_dir).expect("reads"),
            dataset: DatasetInputs::default(),
        };
        let rendered = render(&inputs).expect("renders");
        let written = write(&rendered, &out).expect("writes");
        bytes = written.html_bytes;
        plots = rendered.plots;
    });

    let pixels: Vec<(u32, u32, Vec<u8>)> = plots.iter().map(|p| decode(&p.png)).collect();
    let encode = best(rounds, || {
        for (w, h, px) in &pixels {
            std::hint::black_box(encode_png(px, *w, *h).expect("encodes"));
        }
    });

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "report: {} plots, page {} KiB, best of {rounds}: {:.1} ms to read, render and write; {:.1} ms to PNG-encode the plots alone",
        plots.len(),
        bytes / 1024,
        ms(total),
        ms(encode)
    );
    let line = BenchLine::new(
        "report",
        &format!(
            "ms to read a run, draw {} plots, lay out and write report.html",
            plots.len()
        ),
        ms(total),
        "ms to PNG-encode the same plots' pixels alone",
        Some(ms(encode)),
    );
    println!("{line}");
}
