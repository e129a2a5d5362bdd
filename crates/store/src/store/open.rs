//! Opening a store: the lock, the journal's presence, the layout file, the index (used in
//! place or rebuilt from the journal), for writing, for reading only, or for repair.

use super::*;

impl Store {
    /// Opens (creating) the store at `root` with acceptance `rules`.
    pub fn open(root: &Path, rules: Rules) -> Result<Self> {
        Self::open_with(root, rules, false).map(|(s, _)| s)
    }

    /// Opens the store; with `rebuild_index` the index is deleted and rebuilt first. The index
    /// is also rebuilt when it is missing, of another version, unreadable, or was not closed
    /// cleanly (a crash): it is derived data, so a rebuild is always safe.
    ///
    /// Refuses ([`StoreError::JournalMissing`]) a store whose `journal/` folder (or every
    /// segment in it) is gone while objects remain: the journal is the source of truth, and
    /// opening would start an empty one that accounts for none of the objects.
    /// [`Store::open_for_repair`] opens it anyway, for `store repair` to re-adopt them.
    pub fn open_with(root: &Path, rules: Rules, rebuild_index: bool) -> Result<(Self, OpenReport)> {
        Self::open_mode(root, rules, rebuild_index, Mode::Write)
    }

    /// Opens a store whose journal may be missing (see [`Store::open_with`]), for `store repair`.
    pub fn open_for_repair(
        root: &Path,
        rules: Rules,
        rebuild_index: bool,
    ) -> Result<(Self, OpenReport)> {
        Self::open_mode(root, rules, rebuild_index, Mode::Repair)
    }

    /// Opens the store for reading only: nothing in the dataset folder is written (no lock file
    /// is created, no torn journal tail truncated, no temp file removed, the index never marked).
    /// It works on a read-only dataset and on a full disk. The index is used in place when it
    /// is clean and up to date and sled can open it; otherwise it is rebuilt from the journal
    /// into a temporary index (in memory-backed temp files) that is dropped at close. It takes
    /// a shared lock when the lock file can be opened, so no writer runs meanwhile. Every write
    /// fails with [`StoreError::ReadOnly`].
    pub fn open_read_only(root: &Path, rules: Rules) -> Result<(Self, OpenReport)> {
        Self::open_mode(root, rules, false, Mode::Read)
    }

    fn open_mode(
        root: &Path,
        rules: Rules,
        rebuild_index: bool,
        mode: Mode,
    ) -> Result<(Self, OpenReport)> {
        let started = Instant::now();
        let read_only = mode == Mode::Read;
        let journal_dir = root.join("journal");
        if read_only {
            if !root.is_dir() {
                return Err(StoreError::NoStore {
                    path: root.to_path_buf(),
                });
            }
        } else {
            fs::create_dir_all(root).map_err(StoreError::io("cannot create", root))?;
        }
        let lock = lock(root, read_only)?;
        if mode != Mode::Repair {
            check_journal_present(root, &journal_dir)?;
        }
        check_layout(root, read_only)?;
        let objects = if read_only {
            Objects::at(&objects_dir(root))
        } else {
            Objects::open(&objects_dir(root))?
        };
        let end = if read_only {
            if journal_dir.is_dir() {
                journal::read_all(&journal_dir, Position::default(), &mut |_, _| Ok(()))?
            } else {
                Position::default()
            }
        } else {
            journal::repair(&journal_dir)?
        };
        let index_dir = root.join("index");

        let mut report = OpenReport::default();
        let mut why: Option<String> = rebuild_index.then(|| "asked to".to_string());
        let mut index = if why.is_none() && (!read_only || index_dir.is_dir()) {
            match Index::open(&index_dir) {
                Ok(ix) => Some(ix),
                Err(e) => {
                    why = Some(format!("the index could not be opened ({e})"));
                    None
                }
            }
        } else {
            if why.is_none() {
                why = Some("there was no index".into());
            }
            None
        };
        let mut from = Position::default();
        if let Some(ix) = &index {
            match ix.state()? {
                (Some(v), true, Some(at))
                    if v == crate::index::INDEX_VERSION
                        && (at == end || (!read_only && at <= end)) =>
                {
                    from = at;
                }
                (None, _, _) if ix.meta.is_empty() && ix.prov.is_empty() => {
                    why = Some("there was no index".into());
                }
                (Some(v), _, _) if v != crate::index::INDEX_VERSION => {
                    why = Some(format!("the index has version {v}"));
                }
                (_, true, _) if read_only => {
                    why = Some("the index does not match the journal".into());
                }
                _ => why = Some("the index was not closed cleanly".into()),
            }
        }
        if why.is_some() {
            index = None;
            if !read_only && index_dir.exists() {
                fs::remove_dir_all(&index_dir)
                    .map_err(StoreError::io("cannot delete", &index_dir))?;
            }
        }
        let index = match index {
            Some(ix) => ix,
            None if read_only => Index::temporary(&index_dir)?,
            None => Index::open(&index_dir)?,
        };
        let mut n = 0u64;
        let mut batch = Vec::with_capacity(4096);
        if journal_dir.is_dir() && (!read_only || why.is_some()) {
            journal::read_all(&journal_dir, from, &mut |pos, rec| {
                batch.push((pos, rec));
                n += 1;
                if batch.len() == 4096 {
                    index.apply(&batch)?;
                    batch.clear();
                }
                Ok(())
            })?;
        }
        index.apply(&batch)?;
        report.records_replayed = n;
        if let Some(w) = &why {
            if n > 0 {
                tracing::info!(path = %root.display(), reason = %w, records = n, "index rebuilt from the journal");
            }
            for kv in index.meta.iter() {
                let (k, _) = kv.map_err(|e| index.sled_err(e))?;
                if let Some(id) = id_from(&k) {
                    if !objects.contains(&id) {
                        report.missing_objects += 1;
                        tracing::warn!(%id, "accepted image has no object file (run `store verify`)");
                    }
                }
            }
        }
        report.rebuilt = why;
        let index = Arc::new(index);
        let journal = if read_only {
            Journal::read_only(&journal_dir, end)
        } else {
            index.mark_dirty()?;
            let index = index.clone();
            Journal::open(
                &journal_dir,
                end,
                Box::new(move |records| index.apply(records)),
            )?
        };
        report.millis = started.elapsed().as_millis() as u64;
        Ok((
            Self {
                root: root.to_path_buf(),
                objects,
                journal,
                index,
                rules,
                read_only,
                _lock: lock,
            },
            report,
        ))
    }
}

#[derive(Serialize, Deserialize)]
struct LayoutFile {
    store_layout: u32,
}

/// Takes `store.lock`: exclusive for a writer; shared for a reader, and only when the lock
/// file can be opened for reading (a read-only dataset without one has no writer either).
fn lock(root: &Path, shared: bool) -> Result<Option<File>> {
    let path = root.join("store.lock");
    let f = if shared {
        match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "reading without the store lock");
                return Ok(None);
            }
        }
    } else {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("cannot open", &path))?
    };
    let how = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
    // SAFETY: flock on a file descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), how | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            StoreError::Locked { path }
        } else {
            StoreError::Io {
                op: "cannot lock",
                path,
                source: e,
            }
        });
    }
    Ok(Some(f))
}

/// Refuses a store whose journal is gone while objects remain (see [`Store::open_with`]).
fn check_journal_present(root: &Path, journal_dir: &Path) -> Result<()> {
    let has_segments = journal_dir.is_dir() && !journal::segments(journal_dir)?.is_empty();
    if has_segments {
        return Ok(());
    }
    let objects = Objects::at(&root.join("objects")).count_objects()?;
    if objects > 0 {
        return Err(StoreError::JournalMissing {
            path: journal_dir.to_path_buf(),
            objects,
        });
    }
    Ok(())
}

fn check_layout(root: &Path, read_only: bool) -> Result<()> {
    let path = layout_path(root);
    match fs::read(&path) {
        Ok(b) => {
            let l: LayoutFile = serde_json::from_slice(&b).map_err(|e| StoreError::Io {
                op: "cannot parse",
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            if l.store_layout > LAYOUT_VERSION {
                return Err(StoreError::LayoutVersion {
                    path,
                    found: l.store_layout,
                    expected: LAYOUT_VERSION,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && read_only => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = root.join("layout.json.tmp");
            let text = serde_json::to_vec(&LayoutFile {
                store_layout: LAYOUT_VERSION,
            })
            .expect("serialises");
            fs::write(&tmp, text)
                .and_then(|()| File::open(&tmp)?.sync_all())
                .map_err(StoreError::io("cannot write", &tmp))?;
            fs::rename(&tmp, &path).map_err(StoreError::io("cannot rename into place", &path))?;
            sync_dir(root)
        }
        Err(e) => Err(StoreError::Io {
            op: "cannot read",
            path,
            source: e,
        }),
    }
}
