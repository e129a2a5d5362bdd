//! Lennonnet's content-addressed image store.
//!
//! A dataset folder holds three things (see [`Store`] for the layout):
//!
//! - **objects**: the original bytes of every accepted image, named by their blake3 hash
//!   ([`lennonnet_core::ContentId`]) and written temp → fsync → rename → fsync of the folder;
//! - **the journal**: append-only JSON Lines, the source of truth ([`record`] lists its record
//!   types): provenance, fetch outcomes, ingest outcomes, curation decisions and label reviews. Appends use
//!   group commit, and nothing is acknowledged before it is durable;
//! - **the index**: a sled database derived from the journal ([`index`] lists its trees), which
//!   can be deleted at any time and rebuilt with [`Store::open_with`] (`store reindex`).
//!
//! Ingesting validates the bytes ([`validate`]): header checks before decoding, a full decode,
//! EXIF orientation, and perceptual hashes ([`hash`]) of the upright image. Refused bytes are
//! a recorded outcome with a typed [`RejectReason`], never an error.

pub mod error;
pub mod hash;
pub mod index;
pub mod journal;
pub mod objects;
pub mod record;
mod repair;
mod store;
pub mod time;
pub mod validate;
mod verify;

pub use error::{Result, StoreError};
pub use index::{Rejection, UrlIngest, UrlState};
pub use journal::Ack;
pub use record::{
    CurationStatus, Decision, DecisionCode, DecisionReason, FetchOutcome, Format, Hash64, Hash256,
    ImageMeta, IngestResult, LabelReview, Provenance, Record, RejectReason, ReviewAction,
};
pub use repair::{RepairReport, repair};
pub use store::{
    Checked, Counts, ImageEntry, IngestOutcome, Ingested, LAYOUT_VERSION, OpenReport, Stats, Store,
    layout_path, objects_dir,
};
pub use time::Timestamp;
pub use validate::{Animated, Rules};
pub use verify::{GcReport, VerifyReport};
