//! The dataset folder and the runs folder: the only crate that builds their paths.
//!
//! ```text
//! <dataset>/                 [dataset] root_dir / name
//!   layout.json, objects/, journal/, index/, lock    the store (lennonnet-store)
//!   snapshots/<id>/, snapshots/LATEST                 splits (lennonnet-split)
//!   engines/changed/, engines/check-<time>/          engine pages saved by scrape and `engines check`
//! <runs>/                    [train] runs_dir
//!   <run>/                   run.json, metrics.jsonl, checkpoints (lennonnet-records::run)
//!     eval/, report/
//!   cache/                   [train] cache_dir: pixel and feature caches
//!   latest -> <run>
//! ```
//!
//! [`Dataset`] opens the store under the config's rules and the snapshots; [`Runs`] names run
//! folders; [`items`] turns the store's curation decisions into the splitter's items and
//! [`sources`] the store's provenance into evaluation's sources.

mod error;
pub mod items;
mod runs;
pub mod sources;

use std::path::{Path, PathBuf};

use lennonnet_config::Config;
use lennonnet_core::ContentId;
use lennonnet_split::Snapshot;
use lennonnet_store::{OpenReport, Rules, Store};

pub use error::{DatasetError, Result};
pub use lennonnet_store::objects::object_path;
pub use lennonnet_store::validate::decode_upright;
pub use runs::{RunPaths, Runs, relative_to};

const SNAPSHOTS: &str = "snapshots";
const ENGINES: &str = "engines";

/// A dataset folder: the store and its snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    root: PathBuf,
    rules: Rules,
}

impl Dataset {
    /// The dataset folder at `root`, under the store's default rules.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            rules: Rules::default(),
        }
    }

    /// The config's dataset (`[dataset] root_dir / name`), under its `[image]` rules.
    pub fn of_config(config: &Config) -> Self {
        Self {
            root: config.dataset_dir(),
            rules: rules(config),
        }
    }

    /// The dataset a snapshot belongs to: `<dataset>/snapshots/<id>` → `<dataset>`.
    pub fn of_snapshot(snapshot: &Snapshot) -> Self {
        Self::at(
            snapshot
                .dir
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        )
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the folder holds a store (its `layout.json`).
    pub fn has_store(&self) -> bool {
        lennonnet_store::layout_path(&self.root).is_file()
    }

    /// The store's object folder.
    pub fn objects_dir(&self) -> PathBuf {
        lennonnet_store::objects_dir(&self.root)
    }

    /// Where the store keeps the bytes of `id`.
    pub fn object_path(&self, id: &ContentId) -> PathBuf {
        object_path(&self.objects_dir(), id)
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join(SNAPSHOTS)
    }

    /// The snapshot `spec` names: an id, a unique id prefix, or `latest`.
    pub fn snapshot(&self, spec: &str) -> Result<Snapshot> {
        Ok(lennonnet_split::snapshot::open(
            &self.snapshots_dir(),
            spec,
        )?)
    }

    /// Where pages an engine answered in a changed format are saved: `engines/changed/`.
    pub fn changed_pages_dir(&self) -> PathBuf {
        self.root.join(ENGINES).join("changed")
    }

    /// Where `lennonnet engines check` started at `secs` (Unix time) saves what the engines
    /// answered: `engines/check-<secs>/`.
    pub fn engines_check_dir(&self, secs: u64) -> PathBuf {
        self.root.join(ENGINES).join(format!("check-{secs}"))
    }

    /// Opens the store for writing (rebuilding its index when asked).
    pub fn open_store(&self, rebuild: bool) -> Result<(Store, OpenReport)> {
        let (store, report) = Store::open_with(&self.root, self.rules, rebuild)
            .map_err(|source| self.store_error(source))?;
        if let (Some(why), true) = (&report.rebuilt, report.records_replayed > 0) {
            tracing::debug!(reason = %why, records = report.records_replayed, millis = report.millis, "index rebuilt");
        }
        Ok((store, report))
    }

    /// Opens the store for reading only ([`Store::open_read_only`]): works on a read-only
    /// dataset or a full disk, and writes nothing.
    pub fn open_store_read_only(&self) -> Result<(Store, OpenReport)> {
        Store::open_read_only(&self.root, self.rules).map_err(|source| self.store_error(source))
    }

    fn store_error(&self, source: lennonnet_store::StoreError) -> DatasetError {
        DatasetError::Store {
            dir: self.root.clone(),
            source,
        }
    }
}

/// The acceptance rules of a config's `[image]` section.
pub fn rules(config: &Config) -> Rules {
    Rules {
        min_side_px: config.image.min_side_px,
        max_pixels: config.image.max_pixels,
        animated: config.image.animated,
    }
}
