use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{ContentId, Group, Label};

/// Where an image of a snapshot is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
    /// A held-out evaluation set (a group with purpose `eval`): never in train, val or test.
    Eval,
}

impl Split {
    pub const ALL: [Split; 4] = [Split::Train, Split::Val, Split::Test, Split::Eval];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::Eval => "eval",
        }
    }

    /// How strictly a split is held out: a merged cluster goes to the strictest split of its
    /// members, so that nothing seen in training reaches test.
    pub fn holdout_rank(self) -> u8 {
        match self {
            Split::Train => 0,
            Split::Val => 1,
            Split::Test => 2,
            Split::Eval => 3,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown split {found:?}: expected train, val, test or eval")]
pub struct UnknownSplit {
    pub found: String,
}

impl FromStr for Split {
    type Err = UnknownSplit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| UnknownSplit {
                found: s.to_string(),
            })
    }
}

/// One row of a snapshot's `manifest.jsonl`: one image and where it goes. The manifest is sorted
/// by `id`, and its field order is part of the on-disk contract (the snapshot id is the blake3 of
/// the file's bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRow {
    pub id: ContentId,
    pub label: Label,
    pub group: Group,
    pub split: Split,
    /// The near-duplicate cluster: the content id of its representative.
    pub cluster: ContentId,
    /// Size of the original object in bytes.
    pub bytes: u64,
    /// Image format, as a lowercase file extension (`jpg`, `png`, `webp`, `gif`, ...).
    pub format: String,
}
