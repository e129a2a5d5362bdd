use std::path::{Path, PathBuf};

use lennonnet_config::Config;
use lennonnet_records::eval::EVAL_DIR;

const CACHE: &str = "cache";
const LATEST: &str = "latest";
const REPORT: &str = "report";

/// The runs folder (`[train] runs_dir`) and the caches (`[train] cache_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runs {
    dir: PathBuf,
    cache: PathBuf,
}

impl Runs {
    /// The config's runs folder and caches, relative to the config file (`config_path`);
    /// `runs_dir` (a flag, relative to the working directory) replaces the config's.
    pub fn of_config(config: &Config, config_path: &Path, runs_dir: Option<&Path>) -> Self {
        let t = &config.train;
        let dir = runs_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| relative_to(config_path, &t.runs_dir));
        let cache = t
            .cache_dir
            .as_deref()
            .map(|c| relative_to(config_path, c))
            .unwrap_or_else(|| dir.join(CACHE));
        Self { dir, cache }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pixel and feature caches, shared between runs.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    pub fn run(&self, name: &str) -> RunPaths {
        RunPaths::at(self.dir.join(name))
    }

    /// Points `<runs>/latest` (a symbolic link) at the run, replacing an older link. A failure
    /// is only logged: the run itself is complete.
    pub fn point_latest(&self, run_name: &str) {
        let link = self.dir.join(LATEST);
        let tmp = self.dir.join(format!(".latest.tmp-{}", std::process::id()));
        let result =
            std::os::unix::fs::symlink(run_name, &tmp).and_then(|()| std::fs::rename(&tmp, &link));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(link = %link.display(), error = %e, "cannot point runs/latest at the run");
        }
    }
}

/// A path from a config key: relative to the config file's folder.
pub fn relative_to(config_path: &Path, p: &Path) -> PathBuf {
    if p.is_relative() {
        config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .join(p)
    } else {
        p.to_path_buf()
    }
}

/// A run folder's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    dir: PathBuf,
}

impl RunPaths {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<run>/eval/`, what `lennonnet eval` writes.
    pub fn eval_dir(&self) -> PathBuf {
        self.dir.join(EVAL_DIR)
    }

    /// `<run>/report/`, what `lennonnet report` writes by default.
    pub fn report_dir(&self) -> PathBuf {
        self.dir.join(REPORT)
    }
}
