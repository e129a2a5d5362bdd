//! Shared vocabulary of Lennonnet's stages.
//!
//! Every stage talks to the others through these types, never through each other's internals.
//! This crate does no IO: it only names things (content ids, labels, groups, queries,
//! candidates) and says how they are written down.

pub mod bench;
mod failure;
mod id;
mod image;
mod manifest;
mod name;
mod progress;
mod query;

pub use failure::FailureReason;
pub use id::{ContentId, KeyedHasher, ParseContentIdError, keyed_hash};
pub use image::Animated;
pub use manifest::{ManifestRow, Split, UnknownSplit};
pub use name::{Group, Label, NameError, validate_name};
pub use progress::{NoProgress, Progress};
pub use query::{Candidate, EngineKind, Licence, Purpose, Query, QueryId, UnknownEngine};
