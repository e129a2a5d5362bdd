//! Training data: a snapshot's train and val images, decoded once into a pixel cache
//! ([`cache`]), fed to the model by a multi-threaded, prefetching loader ([`loader`]).
//!
//! Training reads only the objects a snapshot names, at `<dataset>/objects/<2 hex>/<64 hex>`,
//! where `<dataset>` is the folder that holds the snapshot's `snapshots/` folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lennonnet_core::{ContentId, Split};
use lennonnet_dataset::Dataset;
use lennonnet_split::Snapshot;

use crate::train_error::{TrainError, TrainResult};

pub mod cache;
pub mod loader;

/// One image of the training data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub id: ContentId,
    /// Index into [`SnapshotData::classes`].
    pub class: usize,
    pub group: String,
}

/// The train and val images of a snapshot, with their classes.
#[derive(Debug, Clone)]
pub struct SnapshotData {
    pub snapshot: String,
    /// Class names; the first is the positive class of a binary task (`john`).
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub objects_dir: PathBuf,
}

impl SnapshotData {
    /// Reads the train and val rows of `snapshot` (manifest order: by content id). `classes`
    /// gives the class order (the first is the positive class); when empty, the snapshot's labels
    /// sorted by name. Every label must be one of the classes.
    pub fn load(snapshot: &Snapshot, classes: &[String]) -> TrainResult<Self> {
        let rows = snapshot.rows()?;
        let id = snapshot.id().to_string();
        let classes: Vec<String> = if classes.is_empty() {
            let mut seen: Vec<String> = rows.iter().map(|r| r.label.to_string()).collect();
            seen.sort();
            seen.dedup();
            seen
        } else {
            classes.to_vec()
        };
        if classes.len() < 2 {
            return Err(TrainError::BadOption {
                option: "classes",
                reason: format!("at least two classes are needed, found {classes:?}"),
            });
        }
        let index: BTreeMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut train = Vec::new();
        let mut val = Vec::new();
        for row in &rows {
            let list = match row.split {
                Split::Train => &mut train,
                Split::Val => &mut val,
                Split::Test | Split::Eval => continue,
            };
            let class = *index
                .get(row.label.as_str())
                .ok_or_else(|| TrainError::UnknownClass {
                    snapshot: id.clone(),
                    label: row.label.to_string(),
                    known: classes.join(", "),
                })?;
            list.push(Sample {
                id: row.id,
                class,
                group: row.group.to_string(),
            });
        }
        for (split, list) in [("train", &train), ("val", &val)] {
            if list.is_empty() {
                return Err(TrainError::NoImages {
                    snapshot: id.clone(),
                    split,
                });
            }
        }
        Ok(Self {
            snapshot: id,
            classes,
            train,
            val,
            objects_dir: Dataset::of_snapshot(snapshot).objects_dir(),
        })
    }

    /// Images per class in `samples`.
    pub fn class_counts(&self, samples: &[Sample]) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in samples {
            counts[s.class] += 1;
        }
        counts
    }
}
