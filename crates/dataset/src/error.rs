use std::path::PathBuf;

/// A dataset folder could not be opened or read. Variants name the folder.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot open the store at {}", dir.display())]
    Store {
        dir: PathBuf,
        #[source]
        source: lennonnet_store::StoreError,
    },

    #[error(transparent)]
    StoreRead(#[from] lennonnet_store::StoreError),

    #[error(transparent)]
    Snapshot(#[from] lennonnet_split::SnapshotError),

    #[error(
        "{uncurated} images have no curation decision yet: run `lennonnet curate` first, then create the snapshot"
    )]
    Uncurated { uncurated: u64 },

    #[error("the decision for {id} names no group")]
    NoGroup { id: String },
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
