//! Writing the run folder (its layout and records: [`lennonnet_records::run`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
pub(crate) use lennonnet_records::run::*;

use crate::train_error::{TrainError, TrainResult};

const RESUME_KEY: &str = "lennonnet.resume";

/// The versions of this build, for run.json.
pub fn versions() -> Versions {
    Versions {
        lennonnet: env!("CARGO_PKG_VERSION").to_string(),
        candle: CANDLE_VERSION.to_string(),
        run_format: FORMAT_VERSION,
        pixel_cache_format: crate::data::cache::FORMAT_VERSION,
    }
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// run.json, if the folder holds a run.
    pub fn read_record(&self) -> TrainResult<Option<RunRecord>> {
        Ok(read_record(&self.dir)?)
    }

    pub fn write_record(&self, record: &RunRecord) -> TrainResult<()> {
        let mut json = serde_json::to_vec_pretty(record).expect("the record serialises");
        json.push(b'\n');
        write_atomic(&self.path(RUN_JSON), &json)
    }

    /// Every record of metrics.jsonl.
    pub fn read_metrics(&self) -> TrainResult<Vec<MetricsRecord>> {
        Ok(read_metrics(&self.path(METRICS))?)
    }

    /// Writes resume.safetensors: `tensors` and the state in the metadata.
    pub fn write_resume(
        &self,
        tensors: &[(String, Tensor)],
        state: &ResumeState,
    ) -> TrainResult<()> {
        let meta = [(
            RESUME_KEY.to_string(),
            serde_json::to_string(state).expect("the state serialises"),
        )];
        crate::weights::write_safetensors(&self.path(RESUME), tensors, &meta)?;
        Ok(())
    }

    /// Reads resume.safetensors.
    pub fn read_resume(
        &self,
        device: &Device,
    ) -> TrainResult<(HashMap<String, Tensor>, ResumeState)> {
        let path = self.path(RESUME);
        let bytes = fs::read(&path).map_err(|e| TrainError::NothingToResume {
            dir: self.dir.clone(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        let corrupt = |reason: String| TrainError::Corrupt {
            path: path.clone(),
            reason,
        };
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let state_json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(RESUME_KEY))
            .ok_or_else(|| corrupt(format!("no `{RESUME_KEY}` metadata")))?;
        let state: ResumeState =
            serde_json::from_str(state_json).map_err(|e| corrupt(e.to_string()))?;
        if state.format_version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "resume format {}, this build reads {FORMAT_VERSION}",
                state.format_version
            )));
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)?;
        Ok((tensors, state))
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> TrainResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let mut f = File::create(&tmp).map_err(TrainError::io("create", &tmp))?;
    f.write_all(bytes).map_err(TrainError::io("write", &tmp))?;
    f.sync_all().map_err(TrainError::io("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(TrainError::io("rename into place", path))
}

/// metrics.jsonl, appended to record by record.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
    bytes: u64,
}

impl MetricsLog {
    /// Opens the log for appending, first cutting it back to `keep_bytes` (the length at the
    /// checkpoint a run resumes from; 0 for a new run).
    pub fn open(path: &Path, keep_bytes: u64) -> TrainResult<Self> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)
            .map_err(TrainError::io("open", path))?;
        let len = file.metadata().map_err(TrainError::io("stat", path))?.len();
        if len < keep_bytes {
            return Err(TrainError::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "{len} bytes, shorter than the {keep_bytes} the checkpoint recorded"
                ),
            });
        }
        file.set_len(keep_bytes)
            .map_err(TrainError::io("truncate", path))?;
        let mut log = Self {
            path: path.to_path_buf(),
            file,
            bytes: keep_bytes,
        };
        use std::io::Seek;
        log.file
            .seek(std::io::SeekFrom::Start(keep_bytes))
            .map_err(TrainError::io("seek", path))?;
        Ok(log)
    }

    pub fn append(&mut self, record: &MetricsRecord) -> TrainResult<()> {
        let mut line = serde_json::to_vec(record).expect("records serialise");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(TrainError::io("write", &self.path))?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Makes what was appended durable and returns the log's length.
    pub fn sync(&mut self) -> TrainResult<u64> {
        self.file
            .sync_data()
            .map_err(TrainError::io("fsync", &self.path))?;
        Ok(self.bytes)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candle_version_matches_the_lock_file() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .expect("Cargo.lock");
        let want = format!("name = \"candle-core\"\nversion = \"{CANDLE_VERSION}\"");
        assert!(
            lock.contains(&want),
            "update run::CANDLE_VERSION to Cargo.lock's candle-core"
        );
    }

    #[test]
    fn the_log_is_cut_back_to_the_checkpoint_and_time_is_separable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS);
        let rec = |step| {
            MetricsRecord::Step(StepRecord {
                epoch: 1,
                step,
                epoch_step: step as usize,
                epoch_steps: 9,
                loss: 0.5,
                accuracy: 1.0,
                lr: 0.1,
                grad_norm: 2.0,
                time: Timing {
                    elapsed_secs: step as f64,
                    secs: 1.0,
                    images_per_sec: 3.0,
                },
            })
        };
        let mut log = MetricsLog::open(&path, 0).unwrap();
        log.append(&rec(1)).unwrap();
        let checkpoint = log.sync().unwrap();
        log.append(&rec(2)).unwrap();
        drop(log);
        assert_eq!(read_metrics(&path).unwrap().len(), 2);
        let mut log = MetricsLog::open(&path, checkpoint).unwrap();
        log.append(&rec(2)).unwrap();
        log.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with(r#"{"kind":"step","epoch":1,"step":1"#),
            "{}",
            lines[0]
        );
        let a = without_time(lines[1]).unwrap();
        assert!(a.get("time").is_none() && a.get("loss").is_some());
        assert!(MetricsLog::open(&path, 1 << 20).is_err());
    }
}
