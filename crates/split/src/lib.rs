//! The splitter: curated images in, an immutable snapshot out.
//!
//! [`assign`] is pure: it decides every image's split from its near-duplicate cluster's keyed
//! hash and the policy, never from iteration order, time or thread scheduling. [`snapshot`]
//! writes and reads the result on disk: a canonical `manifest.jsonl` sorted by content id, named
//! by its own blake3, with `meta.json` beside it.

mod assign;
pub mod export;
pub mod snapshot;

pub use assign::{Assignment, Exclusion, Item, Moved, Policy, assign, reasons};
pub use snapshot::{Meta, Snapshot, SnapshotError, SnapshotId};
