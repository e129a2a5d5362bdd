//! `store repair`: what can be mended without guessing.
//!
//! 1. Unreadable journal lines (not a torn last line, which opening handles) are moved into
//!    `journal-quarantine/` with a report ([`journal::quarantine_bad_lines`]), and the index is
//!    rebuilt, since journal positions moved.
//! 2. Objects that no journal record accepts (left by a crash between writing an object and
//!    journaling it, or by a lost journal) are re-validated and re-adopted with an `ingest`
//!    record marked `recovered`; their provenance is unknown.
//! 3. Corrupt and missing objects get their original bytes back when a file given by the caller
//!    or one of the image's provenance sources (a `local:` path, or a URL through the caller's
//!    `fetch`) still has bytes with the right blake3.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lennonnet_core::{ContentId, NoProgress};
use serde::Serialize;

use crate::error::Result;
use crate::journal::{self, QuarantinedLine};
use crate::store::Store;
use crate::validate::Rules;

/// What `store repair` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Journal lines moved into the quarantine folder.
    pub quarantined: Vec<QuarantinedLine>,
    /// Orphan objects re-adopted (ingest records marked `recovered`, provenance unknown).
    pub adopted: Vec<ContentId>,
    /// Orphan objects left as they are: (path, why). `store gc --yes --force` can delete them.
    pub not_adopted: Vec<(PathBuf, String)>,
    /// Corrupt or missing objects whose bytes were put back: (id, where they came from).
    pub restored: Vec<(ContentId, String)>,
    /// Corrupt or missing objects with no source left: (id, the sources tried).
    pub unrestored: Vec<(ContentId, Vec<String>)>,
}

impl RepairReport {
    /// Some damage is left that repair could not mend.
    pub fn incomplete(&self) -> bool {
        !self.unrestored.is_empty()
    }
}

/// Repairs the store at `root` (see the module docs). `files` are files that may hold lost
/// objects' bytes; `fetch` downloads a provenance URL (`None` when it cannot).
pub fn repair(
    root: &Path,
    rules: Rules,
    files: &[PathBuf],
    fetch: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<RepairReport> {
    let mut report = RepairReport {
        quarantined: journal::quarantine_bad_lines(
            &root.join("journal"),
            &root.join("journal-quarantine"),
        )?,
        ..RepairReport::default()
    };
    let (store, _) = Store::open_for_repair(root, rules, !report.quarantined.is_empty())?;
    let found = store.verify(&NoProgress)?;
    for path in &found.orphans {
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<ContentId>().ok());
        let Some(id) = id else { continue };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                report
                    .not_adopted
                    .push((path.clone(), format!("cannot read: {e}")));
                continue;
            }
        };
        match store.adopt(&id, &bytes)? {
            Ok(_) => report.adopted.push(id),
            Err(r) => report
                .not_adopted
                .push((path.clone(), format!("{}: {}", r.reason, r.detail))),
        }
    }
    let damaged: Vec<ContentId> = found
        .corrupt
        .iter()
        .map(|(id, _)| *id)
        .chain(found.missing.iter().copied())
        .collect();
    if !damaged.is_empty() {
        // The given files, by the blake3 of their bytes.
        let mut by_hash: BTreeMap<ContentId, PathBuf> = BTreeMap::new();
        for f in files {
            if let Ok(b) = std::fs::read(f) {
                by_hash
                    .entry(ContentId::of(&b))
                    .or_insert_with(|| f.clone());
            }
        }
        for id in damaged {
            let mut tried = Vec::new();
            let mut done = None;
            if let Some(f) = by_hash.get(&id) {
                if let Ok(b) = std::fs::read(f) {
                    if store.restore_object(&id, &b)? {
                        done = Some(format!("file {}", f.display()));
                    }
                }
            }
            if done.is_none() {
                tried.extend(files.iter().map(|f| format!("file {}", f.display())));
                for p in store.provenance(&id)? {
                    let url = p.image_url;
                    let bytes = match url.strip_prefix("local:") {
                        Some(path) => std::fs::read(path).ok(),
                        None => fetch(&url),
                    };
                    if let Some(b) = bytes {
                        if store.restore_object(&id, &b)? {
                            done = Some(url);
                            break;
                        }
                    }
                    tried.push(url);
                }
            }
            match done {
                Some(from) => report.restored.push((id, from)),
                None => report.unrestored.push((id, tried)),
            }
        }
    }
    store.close()?;
    Ok(report)
}
