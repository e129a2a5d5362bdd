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

/// What `verify` found. Damaged ([`VerifyReport::is_damaged`]) when an object is corrupt,
/// missing or unreadable; orphans, strays and images without provenance are what an
/// interrupted write leaves behind, reported with their repair but not damage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Object files read and re-hashed.
    pub objects: u64,
    pub bytes: u64,
    /// Object files whose bytes do not hash to their name: (name, actual hash).
    pub corrupt: Vec<(ContentId, ContentId)>,
    /// Accepted images with no object file.
    pub missing: Vec<ContentId>,
    /// Well-named object files that no `ingest` record accepts (left by a crash between writing
    /// an object and journaling it, or by a lost journal).
    pub orphans: Vec<PathBuf>,
    /// Files under `objects/` that are not objects (a stray file, a misplaced object).
    pub strays: Vec<PathBuf>,
    /// Object files that could not be read: (path, error).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Accepted images with no provenance record (a journal cut between an image's `ingest` and
    /// `provenance` records, or images re-adopted by `store repair`): stored, but under no
    /// group or label, so curation leaves them out.
    pub no_provenance: Vec<ContentId>,
    pub millis: u64,
}

impl VerifyReport {
    /// Nothing to report at all.
    pub fn is_clean(&self) -> bool {
        !self.is_damaged()
            && self.orphans.is_empty()
            && self.strays.is_empty()
            && self.no_provenance.is_empty()
    }

    /// Some object is corrupt, missing or unreadable: data is at risk (`store repair` can fetch
    /// the bytes again when a provenance URL or a given file still has them).
    pub fn is_damaged(&self) -> bool {
        !(self.corrupt.is_empty() && self.missing.is_empty() && self.unreadable.is_empty())
    }

    /// Throughput of the re-hashing, in MB/s (10⁶ bytes).
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / (self.millis.max(1) as f64 / 1e3)
    }
}

/// What `gc` removed, or would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Nothing was deleted: only listed (a dry run, or a refusal).
    pub dry_run: bool,
    /// Why nothing was deleted although deleting was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Well-named objects that no `ingest` record accepts: images whose records are lost.
    pub orphans: Vec<PathBuf>,
    /// Files under `objects/` that are not objects.
    pub strays: Vec<PathBuf>,
    pub bytes: u64,
}

impl GcReport {
    /// Every file removed or to be removed: orphans, then strays.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.orphans.iter().chain(self.strays.iter())
    }
}

impl Store {
    /// Re-hashes every object in parallel and compares the objects with the journal's
    /// accepted images.
    pub fn verify(&self, progress: &dyn Progress) -> Result<VerifyReport> {
        let started = Instant::now();
        let found = self.objects().list()?;
        let mut referenced = BTreeSet::new();
        let mut no_provenance = Vec::new();
        for item in self.images() {
            let id = item?.0;
            if !self.has_provenance(&id)? {
                no_provenance.push(id);
            }
            referenced.insert(id);
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
        let mut report = VerifyReport {
            no_provenance,
            ..VerifyReport::default()
        };
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
                report.strays.push(path);
            }
        }
        report.missing = referenced.difference(&on_disk).copied().collect();
        report.orphans.sort();
        report.strays.sort();
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Removes the files under `objects/` that nothing references when `delete`, else only
    /// lists them. Refuses to delete (the report says why, and lists what it would delete) when
    /// any well-named object is unaccounted for by the journal, unless `force`: such an object
    /// is an image whose journal records are lost (a crash between writing it and journaling
    /// it, or a lost or cut journal), and `store repair` can re-adopt it instead.
    pub fn gc(&self, delete: bool, force: bool) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut found = Vec::new();
        for f in self.objects().list()? {
            match f {
                Found::Object { id, path, len } => {
                    if !self.is_referenced(&id)? {
                        report.orphans.push(path.clone());
                        report.bytes += len;
                        found.push(path);
                    }
                }
                Found::Stray { path, len } => {
                    report.strays.push(path.clone());
                    report.bytes += len;
                    found.push(path);
                }
            }
        }
        if delete && !force && !report.orphans.is_empty() {
            report.refused = Some(format!(
                "{} well-named objects are not accounted for by the journal: they are images whose records are lost (an interrupted write, or a lost or cut journal). Run `lennonnet store repair` to re-adopt them, or give --force to delete them anyway",
                report.orphans.len()
            ));
        }
        report.dry_run = !delete || report.refused.is_some();
        if !report.dry_run {
            for path in &found {
                self.objects().remove_path(path)?;
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
