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
