//! Snapshots on disk.
//!
//! ```text
//! snapshots/
//!   <id>/                 id = blake3 of manifest.jsonl, 64 hex digits; never changed once written
//!     manifest.jsonl      one ManifestRow per image, sorted by content id, compact JSON, '\n' after each
//!     meta.json           Meta: policy, counts, parent, config hash, tool version (format_version 1)
//!     excluded.jsonl      images kept out, with their reasons, sorted by content id
//!     moved.jsonl         parent images whose split or (by a label review) label changed, with their reasons
//!   latest                the id of the last snapshot created (a convenience pointer, not part of any snapshot)
//! ```
//!
//! A snapshot is written into a temporary folder, each file fsynced, then renamed into place and
//! the parent folder fsynced: a crash leaves either no snapshot or a whole one.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use lennonnet_core::{ContentId, ManifestRow, Split};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::assign::{Assignment, Exclusion, Moved, Policy};

pub const MANIFEST: &str = "manifest.jsonl";
pub const META: &str = "meta.json";
pub const EXCLUDED: &str = "excluded.jsonl";
pub const MOVED: &str = "moved.jsonl";
pub const LATEST: &str = "latest";
/// Version of the snapshot folder layout and of `meta.json`.
pub const FORMAT_VERSION: u32 = 1;

/// A snapshot's id: the blake3 of its `manifest.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(pub ContentId);

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SnapshotId {
    type Err = lennonnet_core::ParseContentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(SnapshotId)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no snapshot matches {prefix:?} in {}", dir.display())]
    NotFound { dir: PathBuf, prefix: String },
    #[error(
        "there is no snapshot yet in {} (`latest` names the last one created): run `lennonnet curate`, then `lennonnet snapshot create`",
        dir.display()
    )]
    NoLatest { dir: PathBuf },
    #[error("{prefix:?} matches {count} snapshots in {}; give more digits", dir.display())]
    Ambiguous {
        dir: PathBuf,
        prefix: String,
        count: usize,
    },
    #[error(
        "snapshot {id} exists with other contents: {} was changed after it was written (run `snapshot verify`)",
        dir.display()
    )]
    Tampered { id: SnapshotId, dir: PathBuf },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Counts of a snapshot's images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub by_split: BTreeMap<Split, u64>,
    /// class -> split -> images.
    pub by_class: BTreeMap<String, BTreeMap<Split, u64>>,
    /// group -> split -> images.
    pub by_group: BTreeMap<String, BTreeMap<Split, u64>>,
}

impl Counts {
    pub fn of(rows: &[ManifestRow]) -> Self {
        let mut c = Counts::default();
        for r in rows {
            c.total += 1;
            *c.by_split.entry(r.split).or_default() += 1;
            *c.by_class
                .entry(r.label.to_string())
                .or_default()
                .entry(r.split)
                .or_default() += 1;
            *c.by_group
                .entry(r.group.to_string())
                .or_default()
                .entry(r.split)
                .or_default() += 1;
        }
        c
    }
}

/// A holdout that could not be filled exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    pub class: String,
    pub wanted: u32,
    pub got: u32,
}

/// `meta.json`. Holds no time and no host: the same inputs give the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format_version: u32,
    pub id: SnapshotId,
    pub parent: Option<SnapshotId>,
    pub policy: Policy,
    /// blake3 of the config file the snapshot was made with.
    pub config_hash: String,
    pub tool_version: String,
    pub counts: Counts,
    /// reason -> images kept out.
    pub excluded: BTreeMap<String, u64>,
    pub moved: u64,
    pub shortfalls: Vec<Shortfall>,
}

/// A snapshot on disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub meta: Meta,
}

/// Canonical manifest bytes: compact JSON per row, in content-id order, `\n` after each.
pub fn manifest_bytes(rows: &[ManifestRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 300);
    for r in rows {
        serde_json::to_writer(&mut out, r).expect("rows serialise");
        out.push(b'\n');
    }
    out
}

fn jsonl<T: Serialize>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        serde_json::to_writer(&mut out, i).expect("records serialise");
        out.push(b'\n');
    }
    out
}

/// Writes `assignment` as a snapshot under `snapshots_dir` and points `latest` at it. Creating a
/// snapshot that already exists (the same manifest) checks it is intact and returns it.
pub fn create(
    snapshots_dir: &Path,
    assignment: &Assignment,
    policy: &Policy,
    parent: Option<SnapshotId>,
    config_hash: &str,
) -> Result<Snapshot, SnapshotError> {
    let manifest = manifest_bytes(&assignment.rows);
    let id = SnapshotId(ContentId::of(&manifest));
    let mut excluded: BTreeMap<String, u64> = BTreeMap::new();
    for e in &assignment.excluded {
        *excluded.entry(e.reason.clone()).or_default() += 1;
    }
    let meta = Meta {
        format_version: FORMAT_VERSION,
        id,
        parent,
        policy: policy.clone(),
        config_hash: config_hash.to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        counts: Counts::of(&assignment.rows),
        excluded,
        moved: assignment.moved.len() as u64,
        shortfalls: assignment
            .shortfalls
            .iter()
            .map(|(class, wanted, got)| Shortfall {
                class: class.clone(),
                wanted: *wanted,
                got: *got,
            })
            .collect(),
    };
    fs::create_dir_all(snapshots_dir).map_err(io("create", snapshots_dir))?;
    let dir = snapshots_dir.join(id.to_string());
    if dir.exists() {
        let existing = fs::read(dir.join(MANIFEST)).map_err(io("read", &dir))?;
        if ContentId::of(&existing) != id.0 {
            return Err(SnapshotError::Tampered { id, dir });
        }
        tracing::info!(%id, "snapshot already exists");
    } else {
        let tmp = snapshots_dir.join(format!(".tmp-{id}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io("remove", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let mut meta_json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
        meta_json.push(b'\n');
        for (name, bytes) in [
            (MANIFEST, manifest),
            (META, meta_json),
            (EXCLUDED, jsonl(&assignment.excluded)),
            (MOVED, jsonl(&assignment.moved)),
        ] {
            write_synced(&tmp.join(name), &bytes)?;
        }
        sync_dir(&tmp)?;
        fs::rename(&tmp, &dir).map_err(io("rename into place", &dir))?;
        sync_dir(snapshots_dir)?;
    }
    let latest = snapshots_dir.join(LATEST);
    let latest_tmp = snapshots_dir.join(format!(".{LATEST}.tmp"));
    write_synced(&latest_tmp, format!("{id}\n").as_bytes())?;
    fs::rename(&latest_tmp, &latest).map_err(io("rename into place", &latest))?;
    sync_dir(snapshots_dir)?;
    open_dir(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let mut f = fs::File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("fsync", path))
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io("fsync", dir))
}

fn open_dir(dir: PathBuf) -> Result<Snapshot, SnapshotError> {
    let path = dir.join(META);
    let bytes = fs::read(&path).map_err(io("read", &path))?;
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Corrupt {
        path: path.clone(),
        line: e.line(),
        message: e.to_string(),
    })?;
    Ok(Snapshot { dir, meta })
}

/// Every snapshot under `snapshots_dir`, sorted by id.
pub fn list(snapshots_dir: &Path) -> Result<Vec<Snapshot>, SnapshotError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(snapshots_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io("list", snapshots_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("list", snapshots_dir))?;
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.parse::<SnapshotId>().is_ok())
        {
            out.push(open_dir(entry.path())?);
        }
    }
    out.sort_by_key(|s| s.meta.id);
    Ok(out)
}

/// Opens the snapshot whose id starts with `prefix`; `latest` names the last one created.
pub fn open(snapshots_dir: &Path, prefix: &str) -> Result<Snapshot, SnapshotError> {
    let prefix = if prefix == LATEST {
        let path = snapshots_dir.join(LATEST);
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::NoLatest {
                    dir: snapshots_dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io("read", &path)(e)),
        }
    } else {
        prefix.to_ascii_lowercase()
    };
    let matches: Vec<Snapshot> = list(snapshots_dir)?
        .into_iter()
        .filter(|s| s.meta.id.to_string().starts_with(&prefix))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(SnapshotError::NotFound {
            dir: snapshots_dir.to_path_buf(),
            prefix,
        }),
        count => Err(SnapshotError::Ambiguous {
            dir: snapshots_dir.to_path_buf(),
            prefix,
            count,
        }),
    }
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, SnapshotError> {
    let f = fs::File::open(path).map_err(io("open", path))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io("read", path))?;
        out.push(
            serde_json::from_str(&line).map_err(|e| SnapshotError::Corrupt {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

impl Snapshot {
    pub fn id(&self) -> SnapshotId {
        self.meta.id
    }

    pub fn rows(&self) -> Result<Vec<ManifestRow>, SnapshotError> {
        read_jsonl(&self.dir.join(MANIFEST))
    }

    pub fn excluded(&self) -> Result<Vec<Exclusion>, SnapshotError> {
        read_jsonl(&self.dir.join(EXCLUDED))
    }

    pub fn moved(&self) -> Result<Vec<Moved>, SnapshotError> {
        read_jsonl(&self.dir.join(MOVED))
    }

    /// Checks the manifest still hashes to the id, and every object it names is present and
    /// intact (re-hashed in parallel).
    pub fn verify(
        &self,
        object_path: impl Fn(&ContentId) -> PathBuf + Sync,
    ) -> Result<VerifyReport, SnapshotError> {
        let manifest_path = self.dir.join(MANIFEST);
        let bytes = fs::read(&manifest_path).map_err(io("read", &manifest_path))?;
        let manifest_ok = ContentId::of(&bytes) == self.meta.id.0;
        let rows = self.rows()?;
        let results: Vec<(ContentId, ObjectState, u64)> = rows
            .par_iter()
            .map(|r| {
                let path = object_path(&r.id);
                match fs::File::open(&path) {
                    Err(_) => (r.id, ObjectState::Missing, 0),
                    Ok(mut f) => {
                        let mut h = blake3::Hasher::new();
                        match std::io::copy(&mut f, &mut h) {
                            Ok(n) if ContentId::from_bytes(*h.finalize().as_bytes()) == r.id => {
                                (r.id, ObjectState::Intact, n)
                            }
                            Ok(n) => (r.id, ObjectState::Corrupt, n),
                            Err(_) => (r.id, ObjectState::Corrupt, 0),
                        }
                    }
                }
            })
            .collect();
        let mut report = VerifyReport {
            manifest_ok,
            objects: rows.len() as u64,
            ..Default::default()
        };
        for (id, state, n) in results {
            report.bytes += n;
            match state {
                ObjectState::Intact => {}
                ObjectState::Missing => report.missing.push(id),
                ObjectState::Corrupt => report.corrupt.push(id),
            }
        }
        Ok(report)
    }
}

enum ObjectState {
    Intact,
    Missing,
    Corrupt,
}

/// What [`Snapshot::verify`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub manifest_ok: bool,
    pub objects: u64,
    pub bytes: u64,
    pub missing: Vec<ContentId>,
    pub corrupt: Vec<ContentId>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.manifest_ok && self.missing.is_empty() && self.corrupt.is_empty()
    }
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Added {
        id: ContentId,
        split: Split,
        label: String,
        group: String,
        reason: String,
    },
    Removed {
        id: ContentId,
        split: Split,
        label: String,
        group: String,
        reason: String,
    },
    Moved {
        id: ContentId,
        from: Split,
        to: Split,
        reason: String,
    },
}

/// The changes from `a` to `b`, in content-id order. Reasons come from `b`'s own records
/// (its exclusions and moves) and policies.
pub fn diff(a: &Snapshot, b: &Snapshot) -> Result<Vec<Change>, SnapshotError> {
    let rows_a = a.rows()?;
    let rows_b = b.rows()?;
    let excluded_b: BTreeMap<ContentId, String> = b
        .excluded()?
        .into_iter()
        .map(|e| (e.id, e.reason))
        .collect();
    let moved_b: BTreeMap<ContentId, String> =
        b.moved()?.into_iter().map(|m| (m.id, m.reason)).collect();
    let policy_changed = a.meta.policy != b.meta.policy;
    let mut changes = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < rows_a.len() || j < rows_b.len() {
        let (ra, rb) = (rows_a.get(i), rows_b.get(j));
        match (ra, rb) {
            (Some(x), Some(y)) if x.id == y.id => {
                if x.split != y.split {
                    let reason = moved_b.get(&x.id).cloned().unwrap_or_else(|| {
                        if policy_changed {
                            "split policy changed".into()
                        } else {
                            "reassigned".into()
                        }
                    });
                    changes.push(Change::Moved {
                        id: x.id,
                        from: x.split,
                        to: y.split,
                        reason,
                    });
                }
                i += 1;
                j += 1;
            }
            (Some(x), y) if y.is_none_or(|y| x.id < y.id) => {
                let reason = excluded_b
                    .get(&x.id)
                    .map(|r| format!("excluded: {r}"))
                    .unwrap_or_else(|| "no longer in the store".into());
                changes.push(Change::Removed {
                    id: x.id,
                    split: x.split,
                    label: x.label.to_string(),
                    group: x.group.to_string(),
                    reason,
                });
                i += 1;
            }
            (_, Some(y)) => {
                let reason = if b.meta.parent == Some(a.meta.id) {
                    "new in the store; assigned on top of the parent".into()
                } else {
                    "new in the store".into()
                };
                changes.push(Change::Added {
                    id: y.id,
                    split: y.split,
                    label: y.label.to_string(),
                    group: y.group.to_string(),
                    reason,
                });
                j += 1;
            }
            (Some(_), None) | (None, None) => unreachable!("handled above"),
        }
    }
    Ok(changes)
}
