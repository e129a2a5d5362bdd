use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Group, Label};

/// A search engine Lennonnet has an adapter for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    #[serde(rename = "duckduckgo")]
    DuckDuckGo,
    Bing,
    WikimediaCommons,
}

impl EngineKind {
    pub const ALL: [EngineKind; 3] = [
        EngineKind::DuckDuckGo,
        EngineKind::Bing,
        EngineKind::WikimediaCommons,
    ];

    /// The name used in config, plans and on disk.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::DuckDuckGo => "duckduckgo",
            EngineKind::Bing => "bing",
            EngineKind::WikimediaCommons => "wikimedia_commons",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine {found:?}: expected one of duckduckgo, bing, wikimedia_commons")]
pub struct UnknownEngine {
    pub found: String,
}

impl FromStr for EngineKind {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEngine {
                found: s.to_string(),
            })
    }
}

/// What a group's images are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Goes through curation into the train, validation and test splits.
    Train,
    /// A held-out evaluation set: never in train, validation or test.
    Eval,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Train => "train",
            Purpose::Eval => "eval",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A query's stable id: a short keyed hash of its group, engine and text, so that it does not
/// change when other queries are added, removed or reordered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueryId(pub String);

impl QueryId {
    pub fn for_query(group: &Group, engine: EngineKind, text: &str) -> Self {
        let h = crate::keyed_hash(
            "lennonnet query id v1",
            b"",
            &[
                group.as_str().as_bytes(),
                engine.as_str().as_bytes(),
                text.as_bytes(),
            ],
        );
        let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("q-{hex}"))
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One row of a plan: a text to search on one engine, for one group.
///
/// Rows of a group are worked in order until the group has `wanted` distinct images. A row with
/// `tier` n > 0 is a fallback: it runs only if the group is still short after every row of
/// tier n - 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub id: QueryId,
    pub text: String,
    pub group: Group,
    pub label: Label,
    pub engine: EngineKind,
    /// The group's wanted number of distinct valid images.
    pub wanted: u32,
    pub purpose: Purpose,
    /// 0 for the first engines tried, 1.. for fallbacks.
    pub tier: u32,
    /// The group stores the engine's thumbnail when an image host refuses the original.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accept_thumbnails: bool,
}

/// The licence of a result, where the engine says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Licence {
    /// Short name, for example `CC BY-SA 4.0` or `Public domain`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub short_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub artist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribution: Option<String>,
}

/// One search result: where an image is, where it was found, and what the engine said of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub image_url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub page_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub licence: Option<Licence>,
    pub engine: EngineKind,
    /// The plan row this result answers; none when parsed outside a search.
    #[serde(default)]
    pub query_id: Option<QueryId>,
    /// 1-based position in the engine's results for the query.
    pub rank: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip() {
        for e in EngineKind::ALL {
            assert_eq!(e.as_str().parse::<EngineKind>().unwrap(), e);
            assert_eq!(serde_json_str(&e), format!("\"{}\"", e.as_str()));
        }
        assert!("google".parse::<EngineKind>().is_err());
    }

    fn serde_json_str<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn query_id_is_stable() {
        let g = Group::new("john").unwrap();
        let id = QueryId::for_query(&g, EngineKind::DuckDuckGo, "John Lennon");
        assert_eq!(
            id,
            QueryId::for_query(&g, EngineKind::DuckDuckGo, "John Lennon")
        );
        assert_ne!(id, QueryId::for_query(&g, EngineKind::Bing, "John Lennon"));
        assert!(id.0.starts_with("q-") && id.0.len() == 18);
    }
}
