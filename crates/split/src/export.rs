//! Exports of a snapshot for other tools.
//!
//! - `imagefolder`: `<out>/<split>/<label>/<content id>.<ext>`, the layout torchvision's and
//!   timm's `ImageFolder` read. Files are hard links to the store's objects where the file system
//!   allows, copies otherwise.
//! - `webdataset`: `<out>/<split>-NNNNNN.tar` shards of `per_shard` samples, each sample an image
//!   `<content id>.<ext>` and its `<content id>.json` (the manifest row), in content-id order.
//!
//! Both write `<out>/metadata.csv` with one row per image: id, split, label, group, cluster, bytes,
//! format, path (relative to `<out>`). Exports are deterministic: same snapshot, same files
//! (tar headers carry no time, owner or mode beyond 0644).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use lennonnet_core::{ContentId, ManifestRow, Split};

use crate::snapshot::{Snapshot, SnapshotError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    ImageFolder,
    WebDataset { per_shard: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not empty; export into a new or empty folder", path.display())]
    NotEmpty { path: PathBuf },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub images: u64,
    pub bytes: u64,
    pub files: u64,
}

/// Exports `snapshot` into `out` (created; must be empty). `object_path` maps an id to its object.
pub fn export(
    snapshot: &Snapshot,
    format: Format,
    out: &Path,
    object_path: impl Fn(&ContentId) -> PathBuf,
) -> Result<ExportSummary, ExportError> {
    if out.exists() && fs::read_dir(out).map_err(io("list", out))?.next().is_some() {
        return Err(ExportError::NotEmpty {
            path: out.to_path_buf(),
        });
    }
    fs::create_dir_all(out).map_err(io("create", out))?;
    let rows = snapshot.rows()?;
    let mut summary = ExportSummary::default();
    let mut paths: Vec<String> = Vec::with_capacity(rows.len());
    match format {
        Format::ImageFolder => {
            for r in &rows {
                let rel = format!("{}/{}/{}.{}", r.split, r.label, r.id, r.format);
                let dest = out.join(&rel);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent).map_err(io("create", parent))?;
                }
                let src = object_path(&r.id);
                if fs::hard_link(&src, &dest).is_err() {
                    fs::copy(&src, &dest).map_err(io("copy", &src))?;
                }
                summary.images += 1;
                summary.bytes += r.bytes;
                summary.files += 1;
                paths.push(rel);
            }
        }
        Format::WebDataset { per_shard } => {
            let per_shard = per_shard.max(1);
            let mut rels = vec![String::new(); rows.len()];
            for split in Split::ALL {
                let members: Vec<(usize, &ManifestRow)> = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.split == split)
                    .collect();
                for (shard_no, chunk) in members.chunks(per_shard).enumerate() {
                    let name = format!("{split}-{shard_no:06}.tar");
                    let path = out.join(&name);
                    let file = fs::File::create(&path).map_err(io("create", &path))?;
                    let mut tar = tar::Builder::new(BufWriter::new(file));
                    tar.mode(tar::HeaderMode::Deterministic);
                    for (i, r) in chunk {
                        let src = object_path(&r.id);
                        let bytes = fs::read(&src).map_err(io("read", &src))?;
                        append(&mut tar, &format!("{}.{}", r.id, r.format), &bytes, &path)?;
                        let json = serde_json::to_vec(r).expect("rows serialise");
                        append(&mut tar, &format!("{}.json", r.id), &json, &path)?;
                        rels[*i] = name.clone();
                        summary.images += 1;
                        summary.bytes += r.bytes;
                    }
                    let mut w = tar.into_inner().map_err(io("finish", &path))?;
                    w.flush().map_err(io("write", &path))?;
                    summary.files += 1;
                }
            }
            paths = rels;
        }
    }
    write_metadata(out, &rows, &paths)?;
    summary.files += 1;
    Ok(summary)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    path: &Path,
) -> Result<(), ExportError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
        .map_err(io("write", path))
}

fn write_metadata(out: &Path, rows: &[ManifestRow], paths: &[String]) -> Result<(), ExportError> {
    let path = out.join("metadata.csv");
    let file = fs::File::create(&path).map_err(io("create", &path))?;
    let mut w = BufWriter::new(file);
    let mut write = || -> std::io::Result<()> {
        writeln!(w, "id,split,label,group,cluster,bytes,format,path")?;
        for (r, p) in rows.iter().zip(paths) {
            // Names are [a-z0-9_-], ids hex and formats lowercase: no field needs quoting.
            writeln!(
                w,
                "{},{},{},{},{},{},{},{}",
                r.id, r.split, r.label, r.group, r.cluster, r.bytes, r.format, p
            )?;
        }
        w.flush()
    };
    write().map_err(io("write", &path))
}
