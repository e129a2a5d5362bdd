//! What the journal holds: one JSON object per line, tagged by `type` and versioned by `v`.
//!
//! | `type` | written when | carries |
//! | --- | --- | --- |
//! | `ingest` | bytes were validated | content id, `accepted` with [`ImageMeta`] or `rejected` with a [`RejectReason`] |
//! | `provenance` | bytes arrived from a search result or a local file | content id, [`Provenance`] |
//! | `fetch` | the downloader finished with a URL | [`FetchOutcome`] |
//! | `decision` | curation decided about an image | [`Decision`] |
//! | `label_review` | a person reviewed an image's label (relabel, exclude, confirm, or undo) | [`LabelReview`] |
//!
//! Every record type is at version 1 ([`RECORD_VERSION`]). A reader refuses a record whose `v`
//! it does not know, so an old binary never half-reads a newer journal.

use std::fmt;

use lennonnet_core::{
    ContentId, EngineKind, FailureReason, Group, Label, Licence, Purpose, QueryId,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Timestamp;

/// The version of every record type this build writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The outcome of validating some bytes.
    Ingest {
        v: u32,
        id: ContentId,
        at: Timestamp,
        #[serde(flatten)]
        result: IngestResult,
        /// Written by `store repair` for an object found with no journal record: re-validated,
        /// its provenance unknown. Absent (false) otherwise; readers that predate it ignore it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recovered: bool,
    },
    /// Where some bytes came from. One image may have many.
    Provenance {
        v: u32,
        id: ContentId,
        provenance: Provenance,
    },
    /// How a download ended.
    Fetch { v: u32, fetch: FetchOutcome },
    /// A curation decision about one image; the latest one for an id is in force.
    Decision { v: u32, decision: Decision },
    /// A person's review of one image's label; the latest one for an id is in force. Kept apart
    /// from curation's decisions, so curating again never undoes a review.
    LabelReview { v: u32, review: LabelReview },
}

impl Record {
    pub fn version(&self) -> u32 {
        match self {
            Record::Ingest { v, .. }
            | Record::Provenance { v, .. }
            | Record::Fetch { v, .. }
            | Record::Decision { v, .. }
            | Record::LabelReview { v, .. } => *v,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Record::Ingest { .. } => "ingest",
            Record::Provenance { .. } => "provenance",
            Record::Fetch { .. } => "fetch",
            Record::Decision { .. } => "decision",
            Record::LabelReview { .. } => "label_review",
        }
    }
}

/// `accepted` with the image's metadata, or `rejected` with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum IngestResult {
    Accepted {
        meta: ImageMeta,
    },
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

/// A path as text, without loss: the path itself when it is valid UTF-8; otherwise each byte
/// that is not part of valid UTF-8, and each `%`, as `%XX`, so the bytes can be read back and
/// nothing is replaced by U+FFFD (which would give every such name the same text).
pub fn path_text(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where an image came from: one search result (or one local file) that led to its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The group the search was made for.
    pub group: Group,
    /// The label the group gives its images.
    pub label: Label,
    /// The group's purpose when the image was found (curation uses the config's when it knows
    /// the group).
    pub purpose: Purpose,
    /// The image's URL, or `local:<absolute path>` for `store add`.
    pub image_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<QueryId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    /// 1-based rank in the engine's results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<Licence>,
    /// Set when the bytes are the engine's thumbnail (at `image_url`) of this original image
    /// URL, because the original's host refused it and the group accepts thumbnails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_of: Option<String>,
    pub fetched_at: Timestamp,
}

impl Provenance {
    /// The provenance of a local file added with `store add`.
    pub fn local(path: &std::path::Path, group: Group, label: Label, purpose: Purpose) -> Self {
        Self {
            group,
            label,
            purpose,
            image_url: format!("local:{}", path_text(path)),
            query_id: None,
            query_text: None,
            engine: None,
            rank: None,
            page_url: None,
            title: None,
            licence: None,
            thumbnail_of: None,
            fetched_at: Timestamp::now(),
        }
    }

    /// The provenance of a downloaded search result.
    pub fn from_candidate(
        query: &lennonnet_core::Query,
        candidate: &lennonnet_core::Candidate,
        fetched_at: Timestamp,
    ) -> Self {
        Self {
            group: query.group.clone(),
            label: query.label.clone(),
            purpose: query.purpose,
            image_url: candidate.image_url.clone(),
            query_id: Some(query.id.clone()),
            query_text: Some(query.text.clone()),
            engine: Some(candidate.engine),
            rank: Some(candidate.rank),
            page_url: candidate.page_url.clone(),
            title: candidate.title.clone(),
            licence: candidate.licence.clone(),
            thumbnail_of: None,
            fetched_at,
        }
    }
}

/// How one download ended, as the downloader reports it. `reason` is `None` on success and a
/// stable snake_case string on failure (the downloader owns the list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchOutcome {
    pub url: String,
    /// Where redirects ended, when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<QueryId>,
    /// The HTTP status, when a response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// Body bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    pub duration_ms: u64,
    pub at: Timestamp,
}

impl FetchOutcome {
    pub fn is_success(&self) -> bool {
        self.reason.is_none()
    }
}

/// An image file format the store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Bmp,
    Tiff,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What validation learnt about an accepted image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub format: Format,
    /// Size as stored in the file.
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1 (upright) to 8.
    pub orientation: u8,
    /// Size after the EXIF orientation is applied: what is hashed and trained on.
    pub oriented_width: u32,
    pub oriented_height: u32,
    /// The decoded colour type, e.g. `rgb8`, `l16`, `rgba8`.
    pub color: String,
    pub has_alpha: bool,
    /// More than one frame (GIF, WebP, APNG); only the first is used.
    pub animated: bool,
    /// Length of the original bytes.
    pub bytes: u64,
    /// The perceptual hashes of the oriented first frame, see [`crate::hash`].
    pub phash: Hash64,
    pub pdq: Hash256,
    /// PDQ quality, 0 to 100; below about 50 the image is too flat for its hash to mean much.
    pub pdq_quality: u8,
    /// The version of the hashing scheme ([`crate::hash::HASH_VERSION`]).
    pub hash_version: u32,
}

impl ImageMeta {
    pub fn oriented_pixels(&self) -> u64 {
        self.oriented_width as u64 * self.oriented_height as u64
    }
}

/// Why bytes were refused. Serialised as a stable snake_case string; ordered by that name, as
/// reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No bytes at all.
    Empty,
    /// No image signature: HTML, JSON, text, ... served as an image.
    NotAnImage,
    /// An image format this build cannot decode (AVIF, HEIC, SVG, ...).
    UnsupportedFormat,
    /// The header declares a width or height of 0.
    ZeroSize,
    /// The shorter side is below `image.min_side_px` (decided from the header).
    TooSmall,
    /// More pixels than `image.max_pixels` (decided from the header): the decompression-bomb guard.
    TooManyPixels,
    /// An animation, and `image.animated = "reject"`.
    Animated,
    /// The data ends before the image does.
    Truncated,
    /// The decoder found invalid data.
    Corrupt,
    /// The decoder would need more memory than allowed.
    LimitsExceeded,
    /// The decoder panicked on these bytes (caught; a decoder bug).
    DecoderPanic,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        RejectReason::Empty,
        RejectReason::NotAnImage,
        RejectReason::UnsupportedFormat,
        RejectReason::ZeroSize,
        RejectReason::TooSmall,
        RejectReason::TooManyPixels,
        RejectReason::Animated,
        RejectReason::Truncated,
        RejectReason::Corrupt,
        RejectReason::LimitsExceeded,
        RejectReason::DecoderPanic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "empty",
            RejectReason::NotAnImage => "not_an_image",
            RejectReason::UnsupportedFormat => "unsupported_format",
            RejectReason::ZeroSize => "zero_size",
            RejectReason::TooSmall => "too_small",
            RejectReason::TooManyPixels => "too_many_pixels",
            RejectReason::Animated => "animated",
            RejectReason::Truncated => "truncated",
            RejectReason::Corrupt => "corrupt",
            RejectReason::LimitsExceeded => "limits_exceeded",
            RejectReason::DecoderPanic => "decoder_panic",
        }
    }
}

impl Ord for RejectReason {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for RejectReason {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where curation put an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurationStatus {
    /// Goes on to train/validation/test under `label`.
    Train,
    /// Stays in its held-out evaluation group(s) under `label`.
    Eval,
    /// Left out of everything: its cluster mixes labels and the policy quarantines.
    Quarantined,
    /// Left out: an eval image whose cluster holds training images.
    Excluded,
}

impl CurationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CurationStatus::Train => "train",
            CurationStatus::Eval => "eval",
            CurationStatus::Quarantined => "quarantined",
            CurationStatus::Excluded => "excluded",
        }
    }
}

impl fmt::Display for CurationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why curation decided what it did. Serialised as a stable snake_case string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionCode {
    /// The image represents its near-duplicate cluster.
    Representative,
    /// The image is a near-duplicate of its cluster's representative.
    NearDuplicate,
    /// The image's hash is too flat to match on; it is its own cluster.
    LowHashQuality,
    /// Its cluster was found under several labels; the policy gave it the preferred label.
    Relabelled,
    /// Its cluster was found under several labels; the policy quarantined it.
    LabelConflict,
    /// An eval image whose cluster also holds training images: taken out of eval.
    EvalLeak,
    /// A person reviewed a suspect label (`lennonnet curate --from-run`) and quarantined it; it
    /// stays quarantined through later curation runs until released (`curate --release`).
    SuspectLabel,
}

impl DecisionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionCode::Representative => "representative",
            DecisionCode::NearDuplicate => "near_duplicate",
            DecisionCode::LowHashQuality => "low_hash_quality",
            DecisionCode::Relabelled => "relabelled",
            DecisionCode::LabelConflict => "label_conflict",
            DecisionCode::EvalLeak => "eval_leak",
            DecisionCode::SuspectLabel => "suspect_label",
        }
    }
}

impl fmt::Display for DecisionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason of a decision: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionReason {
    pub code: DecisionCode,
    pub detail: String,
}

/// Curation's decision about one image. The latest decision for an id is in force; older ones
/// stay in the journal as its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: ContentId,
    pub at: Timestamp,
    /// The representative of the image's near-duplicate cluster (itself when alone).
    pub cluster: ContentId,
    pub cluster_size: u32,
    /// The label the image is used under (for train and eval), or the one it was found under.
    pub label: Label,
    pub status: CurationStatus,
    /// The groups the image was found in, sorted.
    pub groups: Vec<Group>,
    pub reasons: Vec<DecisionReason>,
}

impl Decision {
    /// Whether two decisions say the same thing, whenever they were made.
    pub fn same_as(&self, other: &Decision) -> bool {
        self.id == other.id
            && self.cluster == other.cluster
            && self.cluster_size == other.cluster_size
            && self.label == other.label
            && self.status == other.status
            && self.groups == other.groups
            && self.reasons == other.reasons
    }
}

/// A person's decision about one image's label, after looking at it (usually because a run
/// flagged it as a suspect). The latest review for an id is in force; older ones stay in the
/// journal as its history. A review of one member applies to its whole near-duplicate cluster
/// when a snapshot is made (the latest review among the members wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelReview {
    pub id: ContentId,
    pub at: Timestamp,
    /// The label the image carried when it was reviewed.
    pub old_label: Label,
    /// What the reviewer decided: `{"action":"relabel","label":"john"}`, `{"action":"exclude"}`, ...
    #[serde(flatten)]
    pub action: ReviewAction,
    /// Who reviewed (a person's name, or `simulated` for the offline demo's reviewer).
    pub reviewer: String,
    /// The run whose suspects were reviewed (its folder name), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

impl LabelReview {
    /// Whether the review is in force: anything but [`ReviewAction::Clear`].
    pub fn in_force(&self) -> bool {
        self.action != ReviewAction::Clear
    }
}

/// What a reviewer decided about an image's label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReviewAction {
    /// The label is wrong: the image belongs to `label`.
    Relabel { label: Label },
    /// The image belongs to no class (or cannot be told): leave it out of snapshots.
    Exclude,
    /// The label is right: nothing changes, and the image need not be reviewed again.
    Confirm,
    /// No review in force: what undoing a review writes when the image had none before.
    Clear,
}

impl ReviewAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReviewAction::Relabel { .. } => "relabel",
            ReviewAction::Exclude => "exclude",
            ReviewAction::Confirm => "confirm",
            ReviewAction::Clear => "clear",
        }
    }
}

impl fmt::Display for ReviewAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReviewAction::Relabel { label } => write!(f, "relabel as {label}"),
            other => f.write_str(other.as_str()),
        }
    }
}

macro_rules! hex_hash {
    ($(#[$doc:meta])* $ty:ident, $n:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $ty(pub [u8; $n]);

        impl $ty {
            /// The number of differing bits.
            pub fn distance(&self, other: &Self) -> u32 {
                self.0
                    .iter()
                    .zip(other.0.iter())
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum()
            }

            pub fn to_hex(&self) -> String {
                self.0.iter().map(|b| format!("{b:02x}")).collect()
            }

            pub fn from_hex(s: &str) -> Option<Self> {
                if s.len() != 2 * $n || !s.is_ascii() {
                    return None;
                }
                let mut out = [0u8; $n];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
                }
                Some(Self(out))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.to_hex())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected {} hex digits, found {s:?}",
                        2 * $n
                    ))
                })
            }
        }
    };
}

hex_hash! {
    /// A 64-bit perceptual hash (DCT pHash), 16 hex digits.
    Hash64, 8
}

hex_hash! {
    /// A 256-bit perceptual hash (PDQ-style), 64 hex digits.
    Hash256, 32
}

impl Hash64 {
    pub fn as_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    pub fn from_u64(v: u64) -> Self {
        Self(v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_a_stable_shape() {
        let id = ContentId::of(b"x");
        let r = Record::Ingest {
            v: 1,
            id,
            at: Timestamp(0),
            result: IngestResult::Rejected {
                reason: RejectReason::TooSmall,
                detail: "12x12".into(),
            },
            recovered: false,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            format!(
                r#"{{"type":"ingest","v":1,"id":"{id}","at":"1970-01-01T00:00:00.000Z","status":"rejected","reason":"too_small","detail":"12x12"}}"#
            )
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        // A re-adopted object's record (`store repair`) says so; the flag is read back.
        let Record::Ingest {
            v, id, at, result, ..
        } = r
        else {
            unreachable!()
        };
        let recovered = Record::Ingest {
            v,
            id,
            at,
            result,
            recovered: true,
        };
        let line = serde_json::to_string(&recovered).unwrap();
        assert!(
            line.ends_with(r#""detail":"12x12","recovered":true}"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), recovered);
        for reason in RejectReason::ALL {
            assert_eq!(
                serde_json::to_string(&reason).unwrap(),
                format!("\"{}\"", reason.as_str())
            );
        }
    }

    #[test]
    fn label_reviews_have_a_stable_shape() {
        let id = ContentId::of(b"x");
        let check = |action: ReviewAction, run: Option<&str>, tail: &str| {
            let r = Record::LabelReview {
                v: 1,
                review: LabelReview {
                    id,
                    at: Timestamp(0),
                    old_label: Label::new("not_john").unwrap(),
                    action,
                    reviewer: "ada".into(),
                    run: run.map(String::from),
                },
            };
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(
                line,
                format!(
                    r#"{{"type":"label_review","v":1,"review":{{"id":"{id}","at":"1970-01-01T00:00:00.000Z","old_label":"not_john",{tail}}}}}"#
                )
            );
            assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
            assert_eq!(r.kind(), "label_review");
        };
        let john = Label::new("john").unwrap();
        check(
            ReviewAction::Relabel { label: john },
            Some("run-1"),
            r#""action":"relabel","label":"john","reviewer":"ada","run":"run-1""#,
        );
        check(
            ReviewAction::Exclude,
            None,
            r#""action":"exclude","reviewer":"ada""#,
        );
        check(
            ReviewAction::Confirm,
            None,
            r#""action":"confirm","reviewer":"ada""#,
        );
        check(
            ReviewAction::Clear,
            None,
            r#""action":"clear","reviewer":"ada""#,
        );
    }

    #[test]
    fn hashes_round_trip_and_measure() {
        let a = Hash64::from_u64(0xff00);
        assert_eq!(a.to_hex(), "000000000000ff00");
        assert_eq!(Hash64::from_hex(&a.to_hex()), Some(a));
        assert_eq!(a.distance(&Hash64::from_u64(0x0f00)), 4);
        assert_eq!(Hash256::from_hex("zz"), None);
    }
}
