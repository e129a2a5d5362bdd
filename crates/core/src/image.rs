//! Image acceptance vocabulary shared by the config and the store.

use serde::{Deserialize, Serialize};

/// What to do with animated images (GIF, WebP, APNG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Animated {
    /// Keep the image; its first frame is what is hashed and trained on.
    FirstFrame,
    /// Refuse it with a recorded reason.
    Reject,
}
