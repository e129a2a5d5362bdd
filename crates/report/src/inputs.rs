//! Everything a report is made from, read from a run folder (and, by the caller, the dataset).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use lennonnet_records::eval::{
    self as eval, EVAL_DIR, EvalMetrics, GALLERY_INDEX, GalleryIndex, METRICS_JSON,
    PREDICTIONS_JSONL, Prediction, SUSPECTS_JSONL, Suspect,
};
use lennonnet_records::run::{self, EndRecord, EpochRecord, MetricsRecord, RunRecord};
use lennonnet_split::snapshot::Meta;
use lennonnet_store::Stats;
use serde::de::DeserializeOwned;

use crate::error::{ReportError, Result};

/// A run and its evaluation, as read from the run folder.
#[derive(Debug, Clone)]
pub struct RunInputs {
    pub dir: PathBuf,
    pub record: RunRecord,
    /// The `epoch` records of metrics.jsonl, in order.
    pub epochs: Vec<EpochRecord>,
    pub end: Option<EndRecord>,
    pub eval: EvalMetrics,
    pub predictions: Vec<Prediction>,
    pub suspects: Vec<Suspect>,
    pub gallery: GalleryIndex,
    /// The gallery's thumbnails by their path relative to `eval/`.
    pub thumbnails: BTreeMap<String, Thumbnail>,
}

/// An image file to inline in the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

/// The dataset behind the run: its snapshot and the store's statistics, when they could be read.
#[derive(Debug, Clone, Default)]
pub struct DatasetInputs {
    /// Where the dataset was looked for.
    pub dir: Option<PathBuf>,
    pub snapshot: Option<Meta>,
    pub store: Option<Stats>,
    /// Why a part is missing, for the page.
    pub notes: Vec<String>,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub run: RunInputs,
    pub dataset: DatasetInputs,
}

impl RunInputs {
    /// Reads run.json, metrics.jsonl and the `eval/` folder of the run in `dir`.
    pub fn read(dir: &Path) -> Result<Self> {
        let record = run::read_record(dir)
            .map_err(|e| ReportError::Run(Box::new(e)))?
            .ok_or_else(|| ReportError::NotARun {
                dir: dir.to_path_buf(),
            })?;
        if record.result.is_none() {
            return Err(ReportError::Unfinished {
                run: dir.to_path_buf(),
            });
        }
        let mut epochs = Vec::new();
        let mut end = None;
        for r in
            run::read_metrics(&dir.join(run::METRICS)).map_err(|e| ReportError::Run(Box::new(e)))?
        {
            match r {
                MetricsRecord::Epoch(e) => epochs.push(e),
                MetricsRecord::End(e) => end = Some(e),
                MetricsRecord::Step(_) => {}
            }
        }

        let eval_dir = dir.join(EVAL_DIR);
        let metrics_path = eval_dir.join(METRICS_JSON);
        let need = |path: &Path| -> Result<()> {
            if path.is_file() {
                Ok(())
            } else {
                Err(ReportError::NoEval {
                    run: dir.to_path_buf(),
                    missing: path.to_path_buf(),
                })
            }
        };
        need(&metrics_path)?;
        let eval: EvalMetrics = read_json(&metrics_path)?;
        if eval.format_version > eval::FORMAT_VERSION {
            return Err(ReportError::Invalid {
                path: metrics_path,
                message: format!(
                    "eval format {} is newer than this build reads ({}); update lennonnet",
                    eval.format_version,
                    eval::FORMAT_VERSION
                ),
            });
        }
        if eval.run.name != record.name {
            return Err(ReportError::Invalid {
                path: metrics_path,
                message: format!(
                    "it evaluates run `{}`, but this folder holds run `{}`; run `lennonnet eval --run {}` again",
                    eval.run.name,
                    record.name,
                    dir.display()
                ),
            });
        }
        let predictions_path = eval_dir.join(PREDICTIONS_JSONL);
        need(&predictions_path)?;
        let predictions: Vec<Prediction> = read_jsonl(&predictions_path)?;
        let suspects_path = eval_dir.join(SUSPECTS_JSONL);
        need(&suspects_path)?;
        let suspects: Vec<Suspect> = read_jsonl(&suspects_path)?;
        let index_path = eval_dir.join(GALLERY_INDEX);
        need(&index_path)?;
        let gallery: GalleryIndex = read_json(&index_path)?;

        let mut thumbnails = BTreeMap::new();
        for item in gallery.errors.iter().chain(&gallery.suspects) {
            if thumbnails.contains_key(&item.thumbnail) {
                continue;
            }
            let path = inside(&eval_dir, &item.thumbnail).ok_or_else(|| ReportError::Invalid {
                path: index_path.clone(),
                message: format!(
                    "thumbnail `{}` of {} is not a path inside {}",
                    item.thumbnail,
                    item.id,
                    eval_dir.display()
                ),
            })?;
            let bytes = fs::read(&path).map_err(|source| ReportError::Read {
                path: path.clone(),
                source,
            })?;
            let mime = sniff(&bytes).ok_or_else(|| ReportError::Invalid {
                path: path.clone(),
                message: "not a JPEG, PNG, GIF or WebP image".into(),
            })?;
            thumbnails.insert(item.thumbnail.clone(), Thumbnail { mime, bytes });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            record,
            epochs,
            end,
            eval,
            predictions,
            suspects,
            gallery,
            thumbnails,
        })
    }
}

/// `rel` joined to `base`, when it is a plain relative path that stays inside `base`.
fn inside(base: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(base.join(p))
}

/// The MIME type of an image from its magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        line: Some(e.line()),
        message: e.to_string(),
    })
}

fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = fs::read_to_string(path).map_err(|source| ReportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| ReportError::Parse {
                path: path.to_path_buf(),
                line: Some(i + 1),
                message: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_must_stay_inside_the_eval_folder() {
        let base = Path::new("/r/eval");
        assert_eq!(
            inside(base, "gallery/errors/1-ab.jpg"),
            Some(PathBuf::from("/r/eval/gallery/errors/1-ab.jpg"))
        );
        for bad in ["", "../run.json", "/etc/passwd", "gallery/../../x", "./a"] {
            assert_eq!(inside(base, bad), None, "{bad}");
        }
    }

    #[test]
    fn sniffs_image_types() {
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg"), None);
    }
}
