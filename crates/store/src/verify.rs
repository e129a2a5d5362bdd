//! `store verify` and `store gc`.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use lennonnet_core::{ContentId, Progress};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::objects::Found;
use crate::store::Store;

/// What `verify` found. Clean when `corrupt`, `missing` and `orphans` are all empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Object files read and re-hashed.
    pub objects: u64,
    pub bytes: u64,
    /// Object files whose bytes do not hash to their name: (name, actual hash).
    pub corrupt: Vec<(ContentId, ContentId)>,
    /// Accepted images with no object file.
    pub missing: Vec<ContentId>,
    /// Files under `objects/` that nothing references (well-named or stray).
    pub orphans: Vec<PathBuf>,
    /// Object files that could not be read: (path, error).
    pub unreadable: Vec<(PathBuf, String)>,
    pub millis: u64,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing.is_empty()
            && self.orphans.is_empty()
            && self.unreadable.is_empty()
    }

    /// Throughput of the re-hashing, in MB/s (10⁶ bytes).
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.millis.max(1) as f64 / 1e3)
    }
}

/// What `gc` removed, or would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

impl Store {
    /// Re-hashes every object in parallel and compares the objects with the journal's
    /// accepted images.
    pub fn verify(&self, progress: &dyn Progress) -> Result<VerifyReport> {
        let started = Instant::now();
        let found = self.objects().list()?;
        let mut referenced = BTreeSet::new();
        for item in self.images() {
            referenced.insert(item?.0);
        }
        let objects: Vec<(ContentId, PathBuf, u64)> = found
            .iter()
            .filter_map(|f| match f {
                Found::Object { id, path, len } => Some((*id, path.clone(), *len)),
                Found::Stray { .. } => None,
            })
            .collect();
        progress.start("verify", Some(objects.len() as u64));
        type Hashed = (ContentId, PathBuf, Result<(ContentId, u64), String>);
        let hashed: Vec<Hashed> = objects
            .into_par_iter()
            .map(|(id, path, _)| {
                let r = hash_file(&path).map_err(|e| e.to_string());
                progress.advance("verify", 1);
                (id, path, r)
            })
            .collect();
        progress.finish("verify");
        let mut report = VerifyReport::default();
        let mut on_disk = BTreeSet::new();
        for (id, path, r) in hashed {
            on_disk.insert(id);
            match r {
                Ok((actual, len)) => {
                    report.objects += 1;
                    report.bytes += len;
                    if actual != id {
                        report.corrupt.push((id, actual));
                    } else if !referenced.contains(&id) {
                        report.orphans.push(path);
                    }
                }
                Err(e) => report.unreadable.push((path, e)),
            }
        }
        for f in found {
            if let Found::Stray { path, .. } = f {
                report.orphans.push(path);
            }
        }
        report.missing = referenced.difference(&on_disk).copied().collect();
        report.orphans.sort();
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Removes the files under `objects/` that nothing references; with `dry_run` only lists
    /// them.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        for f in self.objects().list()? {
            let (path, len, unreferenced) = match f {
                Found::Object { id, path, len } => (path, len, !self.is_referenced(&id)?),
                Found::Stray { path, len } => (path, len, true),
            };
            if unreferenced {
                if !dry_run {
                    self.objects().remove_path(&path)?;
                }
                report.files.push(path);
                report.bytes += len;
            }
        }
        Ok(report)
    }
}

fn hash_file(path: &std::path::Path) -> Result<(ContentId, u64)> {
    let mut f = std::fs::File::open(path).map_err(StoreError::io("cannot open", path))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(StoreError::io("cannot read", path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((ContentId::from_bytes(*h.finalize().as_bytes()), total))
}
