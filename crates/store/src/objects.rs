//! The object files: `objects/<first two hex digits>/<64 hex digits>`, each the original bytes
//! of one image, named by their blake3 hash. Written temp file (in `objects/tmp/`) → fsync →
//! rename → fsync of the folder, so a name never points at partial bytes. The folder fsync is
//! left to the caller ([`Objects::write`] returns the folder) so that the journal writer can
//! sync the folders of a whole batch once, just before the batch's records become durable.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lennonnet_core::ContentId;

use crate::error::{Result, StoreError};

/// The objects folder of one dataset.
#[derive(Debug)]
pub struct Objects {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
}

/// A file found under `objects/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A well-named object file.
    Object {
        id: ContentId,
        path: PathBuf,
        len: u64,
    },
    /// Anything else: a stray file, a leftover temp file, a misplaced object.
    Stray { path: PathBuf, len: u64 },
}

impl Objects {
    /// Opens (creating) `root`, and removes temp files left by a crash.
    pub fn open(root: &Path) -> Result<Self> {
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
        for entry in fs::read_dir(&tmp).map_err(StoreError::io("cannot list", &tmp))? {
            let entry = entry.map_err(StoreError::io("cannot list", &tmp))?;
            let path = entry.path();
            tracing::debug!(path = %path.display(), "removing a temp file left by an interrupted write");
            fs::remove_file(&path).map_err(StoreError::io("cannot remove", &path))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    /// The objects folder at `root`, touching nothing on disk (for reading a store read-only).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            counter: AtomicU64::new(0),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many well-named object files there are (0 when the folder is missing).
    pub fn count_objects(&self) -> Result<u64> {
        if !self.root.is_dir() {
            return Ok(0);
        }
        Ok(self
            .list()?
            .iter()
            .filter(|f| matches!(f, Found::Object { .. }))
            .count() as u64)
    }

    /// `objects/ab/ab12...`.
    pub fn path(&self, id: &ContentId) -> PathBuf {
        object_path(&self.root, id)
    }

    pub fn contains(&self, id: &ContentId) -> bool {
        self.path(id).is_file()
    }

    pub fn read(&self, id: &ContentId) -> Result<Vec<u8>> {
        let path = self.path(id);
        fs::read(&path).map_err(StoreError::io("cannot read", path))
    }

    /// Writes `bytes` as the object `id` (which must be their blake3) unless an object of the
    /// same length is already there. Returns the folder whose entry must still be fsynced for
    /// the rename to be durable, or `None` when nothing was written.
    pub fn write(&self, id: &ContentId, bytes: &[u8]) -> Result<Option<PathBuf>> {
        let path = self.path(id);
        if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
            return Ok(None);
        }
        let dir = path
            .parent()
            .expect("object paths have a folder")
            .to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
            sync_dir(&self.root)?;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .tmp
            .join(format!("{}.{}.{n}.tmp", id.to_hex(), std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
            f.write_all(bytes)
                .map_err(StoreError::io("cannot write", &tmp))?;
            f.sync_all().map_err(StoreError::io("cannot fsync", &tmp))?;
            fs::rename(&tmp, &path).map_err(StoreError::io("cannot rename into place", &path))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| Some(dir))
    }

    /// Writes `bytes` as the object `id` (their blake3) even when a file is there (a corrupt
    /// object of the same length): temp file, fsync, rename over it, fsync of the folder.
    pub fn replace(&self, id: &ContentId, bytes: &[u8]) -> Result<()> {
        let path = self.path(id);
        if let Ok(m) = fs::metadata(&path) {
            if !m.is_file() {
                return Err(StoreError::Io {
                    op: "cannot replace (not a file)",
                    path,
                    source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                });
            }
            let tmp = self.tmp.join(format!(
                "{}.{}.replace.tmp",
                id.to_hex(),
                std::process::id()
            ));
            let result = (|| {
                let mut f = File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
                f.write_all(bytes)
                    .map_err(StoreError::io("cannot write", &tmp))?;
                f.sync_all().map_err(StoreError::io("cannot fsync", &tmp))?;
                fs::rename(&tmp, &path).map_err(StoreError::io("cannot rename into place", &path))
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result?;
            return sync_dir(path.parent().expect("object paths have a folder"));
        }
        if let Some(dir) = self.write(id, bytes)? {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Whether the object file of `id` exists with `len` bytes that hash to `id` (a same-length
    /// file is re-hashed, so that re-adding the original bytes repairs a corrupt object).
    fn intact(&self, id: &ContentId, len: usize) -> bool {
        let path = self.path(id);
        fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == len as u64)
            && fs::read(&path).is_ok_and(|b| ContentId::of(&b) == *id)
    }

    /// Writes `bytes` to a temp file for the object `id`, without waiting for the disk: the
    /// journal writer makes it durable and renames it into place ([`commit_staged`]) before the
    /// records that name it become durable. `None` when an object of the same length is there.
    pub fn stage(&self, id: &ContentId, bytes: &[u8]) -> Result<Option<Staged>> {
        let path = self.path(id);
        if self.intact(id, bytes.len()) {
            return Ok(None);
        }
        let dir = path
            .parent()
            .expect("object paths have a folder")
            .to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
            sync_dir(&self.root)?;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .tmp
            .join(format!("{}.{}.{n}.tmp", id.to_hex(), std::process::id()));
        let write = File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(StoreError::io("cannot write", &tmp));
        if let Err(e) = write {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Some(Staged { tmp, path, dir }))
    }

    /// Removes object `id` (for `gc`). Returns its folder, to be fsynced.
    pub fn remove_path(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(StoreError::io("cannot remove", path))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Every file under `objects/` (except the temp folder), sorted by path.
    pub fn list(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        if !self.root.exists() {
            return Ok(out);
        }
        let mut dirs: Vec<_> = read_sorted(&self.root)?;
        dirs.retain(|p| p != &self.tmp);
        for path in dirs {
            let meta = fs::metadata(&path).map_err(StoreError::io("cannot stat", &path))?;
            if !meta.is_dir() {
                out.push(Found::Stray {
                    path,
                    len: meta.len(),
                });
                continue;
            }
            let prefix = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            for file in read_sorted(&path)? {
                let meta = fs::metadata(&file).map_err(StoreError::io("cannot stat", &file))?;
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                match name.parse::<ContentId>() {
                    Ok(id) if meta.is_file() && name.starts_with(&prefix) => {
                        out.push(Found::Object {
                            id,
                            path: file,
                            len: meta.len(),
                        })
                    }
                    _ => out.push(Found::Stray {
                        path: file,
                        len: meta.len(),
                    }),
                }
            }
        }
        Ok(out)
    }
}

/// An object written to a temp file, waiting to be made durable and renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub tmp: PathBuf,
    pub path: PathBuf,
    pub dir: PathBuf,
}

/// Makes staged objects durable: fsyncs their temp files, renames them into place and fsyncs
/// their folders. The fsyncs run in parallel, so the file system can group them.
pub fn commit_staged(staged: &[Staged]) -> Result<()> {
    if staged.is_empty() {
        return Ok(());
    }
    let fsync_file = |p: &Path| {
        File::open(p)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::io("cannot fsync", p))
    };
    parallel(
        staged.iter().map(|s| s.tmp.as_path()).collect(),
        &fsync_file,
    )?;
    for s in staged {
        fs::rename(&s.tmp, &s.path).map_err(StoreError::io("cannot rename into place", &s.path))?;
    }
    let dirs: std::collections::BTreeSet<&Path> = staged.iter().map(|s| s.dir.as_path()).collect();
    parallel(dirs.into_iter().collect(), &sync_dir)
}

/// Runs `f` on every path, on up to 16 threads.
fn parallel(paths: Vec<&Path>, f: &(dyn Fn(&Path) -> Result<()> + Sync)) -> Result<()> {
    if paths.len() == 1 {
        return f(paths[0]);
    }
    let threads = paths.len().min(16);
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|c| scope.spawn(move || c.iter().try_for_each(|p| f(p))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fsync threads do not panic"))
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    })
}

fn read_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(StoreError::io("cannot list", dir))? {
        out.push(entry.map_err(StoreError::io("cannot list", dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// fsyncs a folder, making the creation, rename or removal of its entries durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("cannot fsync folder", dir))
}

/// Where the object folder `objects_dir` keeps the bytes of `id`: `<2 hex digits>/<64 hex digits>`.
pub fn object_path(objects_dir: &Path, id: &ContentId) -> PathBuf {
    let hex = id.to_hex();
    objects_dir.join(&hex[..2]).join(hex)
}
