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
