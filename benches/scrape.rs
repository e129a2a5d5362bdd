//! Scrape plus ingest of a mirror world of 10,000 images, end to end through the real binary:
//! images/s, the scrape process's peak RSS, and the ratio to decoding the same images alone
//! (on the same 2 cores, in the same run). Goals: ≥ 300 images/s, within 2× of decode-only,
//! under 500 MB RSS.
//!
//! The mirror runs as its own process. A first scrape warms its cache (rendering is the mirror's
//! cost, not the scraper's); the second, into a fresh dataset, is the one measured.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rayon::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_lennonnet");

fn config(port: u16, root: &Path) -> String {
    let mut words = String::new();
    for w in 0..30 {
        words += &format!(
            "\n[[group]]\nname = \"word_{w}\"\nlabel = \"not_john\"\nwanted = 100\nqueries = [\"scene{w}\"]\n"
        );
    }
    format!(
        r#"[dataset]
name = "bench"
root_dir = {root:?}

{client}
[fetch]
concurrency = 64
per_host_concurrency = 8
per_host_requests_per_sec = 10000.0
first_byte_timeout_secs = 2
total_timeout_secs = 5
stall_window_secs = 1
max_retries = 1
retry_base_delay_ms = 10

[[class]]
name = "john"
[[class]]
name = "not_john"

[[group]]
name = "john"
label = "john"
wanted = 2000
queries = ["John Lennon", "John Lennon portrait", "John Lennon 1960s", "John Lennon 1970s"]
[[group]]
name = "paul"
label = "not_john"
wanted = 1000
queries = ["Paul McCartney", "Paul McCartney portrait"]
[[group]]
name = "george"
label = "not_john"
wanted = 1000
queries = ["George Harrison", "George Harrison portrait"]
[[group]]
name = "ringo"
label = "not_john"
wanted = 1000
queries = ["Ringo Starr", "Ringo Starr portrait"]
[[group]]
name = "person"
label = "not_john"
wanted = 2000
queries = ["person", "person portrait", "man portrait"]
{words}
[split]
key = "bench"
val_fraction = 0.1
"#,
        client = lennonnet_mirror::client_config(port, &["duckduckgo", "bing"]),
        root = root.to_str().unwrap()
    )
}

/// Runs a command to completion and returns its wall time and peak RSS (MB), from wait4.
// The child is reaped by wait4 (which `Child::wait` cannot do: it gives no rusage).
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (f64, f64) {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child pid with valid out-pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "command failed: {status}"
    );
    (
        start.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

fn objects(dataset: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(dataset.join("objects"))
        .unwrap()
        .flatten()
    {
        if d.file_name().len() == 2 {
            out.extend(
                std::fs::read_dir(d.path())
                    .unwrap()
                    .flatten()
                    .map(|f| f.path()),
            );
        }
    }
    out
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    // The engines' burst limit is off: its Retry-After pauses measure the engine, not the scraper.
    let world = tmp.path().join("world.toml");
    std::fs::write(&world, "[search]\nburst_limit = 0\n").unwrap();
    let mut mirror = Command::new(BIN)
        .args([
            "-q",
            "mirror",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--seed",
            "2024",
            "--world",
        ])
        .arg(&world)
        .stdout(Stdio::piped())
        .spawn()
        .expect("mirror");
    let mut line = String::new();
    std::io::BufReader::new(mirror.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port: u16 = v["addr"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let warm_root = tmp.path().join("warm");
    std::fs::create_dir_all(&warm_root).unwrap();
    let warm_cfg = warm_root.join("c.toml");
    std::fs::write(&warm_cfg, config(port, &warm_root)).unwrap();
    let (cold, _) = run_measured(
        Command::new(BIN)
            .args(["-q", "scrape", "--no-progress", "--config"])
            .arg(&warm_cfg),
    );

    let root = tmp.path().join("measured");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = root.join("c.toml");
    std::fs::write(&cfg, config(port, &root)).unwrap();
    let (secs, rss) = run_measured(
        Command::new(BIN)
            .args(["-q", "scrape", "--no-progress", "--config"])
            .arg(&cfg),
    );
    let _ = mirror.kill();
    let _ = mirror.wait();

    let files = objects(&root.join("bench"));
    let n = files.len();
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        files.par_iter().for_each(|p| {
            let bytes = std::fs::read(p).unwrap();
            let _ = std::hint::black_box(image::load_from_memory(&bytes));
        })
    });
    let decode = start.elapsed().as_secs_f64();
    println!(
        "scrape: {n} images in {secs:.1} s = {:.0} images/s (cold mirror: {cold:.1} s), peak RSS {rss:.0} MB; baseline: decode-only {decode:.1} s ({:.0} images/s); ratio {:.2}",
        n as f64 / secs,
        n as f64 / decode,
        secs / decode
    );
}
