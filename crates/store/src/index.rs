//! The sled index in `index/`: derived from the journal (and checked against the objects), never
//! the source of truth. It can be deleted at any time; [`crate::Store::reindex`] rebuilds it.
//!
//! Trees (keys are raw bytes, values JSON):
//!
//! | tree | key | value |
//! | --- | --- | --- |
//! | `meta` | content id (32 bytes) | [`ImageMeta`] of an accepted image |
//! | `rejected` | content id | [`Rejection`] of refused bytes |
//! | `prov` | content id ++ journal position (12 bytes) | [`Provenance`] |
//! | `url` | image URL | content id its bytes had |
//! | `url_state` | image URL | [`UrlState`]: last fetch outcome and ingest outcome, for resume |
//! | `decision` | content id | latest curation [`Decision`] |
//! | `decision_log` | content id ++ journal position | every [`Decision`], oldest first |
//! | `cluster` | representative id ++ member id | empty |
//! | `review` | content id | the [`LabelReview`] in force (absent when none, or the latest is `clear`) |
//! | `review_log` | content id ++ journal position | every [`LabelReview`], oldest first |
//! | `info` | `version`, `clean`, `end` | index version, clean-shutdown flag, journal position applied |

use std::path::{Path, PathBuf};

use lennonnet_core::ContentId;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Result, StoreError};
use crate::journal::Position;
use crate::record::{
    Decision, FetchOutcome, ImageMeta, IngestResult, LabelReview, Provenance, Record, RejectReason,
};
use crate::time::Timestamp;

/// One index entry: tree name, key, value.
pub type IndexRow = (String, Vec<u8>, Vec<u8>);

/// Bump when the index's trees or values change shape: an index of another version is rebuilt.
/// (Adding the `review` trees needed no bump: a journal that an index of version 1 reflects
/// holds no `label_review` record, so their empty trees are right.)
pub const INDEX_VERSION: u32 = 1;

const TREES: [&str; 10] = [
    "meta",
    "rejected",
    "prov",
    "url",
    "url_state",
    "decision",
    "decision_log",
    "cluster",
    "review",
    "review_log",
];

/// Why some bytes were refused, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
    pub at: Timestamp,
}

/// What is known of one URL: how its download ended and what its bytes became.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UrlState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<FetchOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<UrlIngest>,
}

/// The ingest outcome of a URL's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlIngest {
    pub id: ContentId,
    /// `None` when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<RejectReason>,
}

pub struct Index {
    path: PathBuf,
    db: sled::Db,
    pub(crate) meta: sled::Tree,
    pub(crate) rejected: sled::Tree,
    pub(crate) prov: sled::Tree,
    pub(crate) url: sled::Tree,
    pub(crate) url_state: sled::Tree,
    pub(crate) decision: sled::Tree,
    pub(crate) decision_log: sled::Tree,
    pub(crate) cluster: sled::Tree,
    pub(crate) review: sled::Tree,
    pub(crate) review_log: sled::Tree,
    info: sled::Tree,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("index values always serialise")
}

pub(crate) fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

pub(crate) fn id_from(b: &[u8]) -> Option<ContentId> {
    Some(ContentId::from_bytes(b.get(..32)?.try_into().ok()?))
}

impl Index {
    /// Opens (creating) the index at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let ierr = |source| StoreError::Index {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 << 20)
            // No periodic flush: the index is flushed at close, and rebuilt from the journal
            // after a crash anyway, so flushing in between would only cost time.
            .flush_every_ms(None)
            .open()
            .map_err(ierr)?;
        Self::with_db(path, db)
    }

    /// A temporary index (sled's temporary mode: memory-backed files removed when dropped), for
    /// a store opened read-only whose own index cannot be used. `path` names the store's index
    /// folder in errors.
    pub fn temporary(path: &Path) -> Result<Self> {
        let ierr = |source| StoreError::Index {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(256 << 20)
            .flush_every_ms(None)
            .open()
            .map_err(ierr)?;
        Self::with_db(path, db)
    }

    fn with_db(path: &Path, db: sled::Db) -> Result<Self> {
        let ierr = |source| StoreError::Index {
            path: path.to_path_buf(),
            source,
        };
        let t = |name: &str| db.open_tree(name).map_err(ierr);
        Ok(Self {
            path: path.to_path_buf(),
            meta: t(TREES[0])?,
            rejected: t(TREES[1])?,
            prov: t(TREES[2])?,
            url: t(TREES[3])?,
            url_state: t(TREES[4])?,
            decision: t(TREES[5])?,
            decision_log: t(TREES[6])?,
            cluster: t(TREES[7])?,
            review: t(TREES[8])?,
            review_log: t(TREES[9])?,
            info: t("info")?,
            db,
        })
    }

    fn err(&self) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Index {
            path: self.path.clone(),
            source,
        }
    }

    /// The index version, whether it was closed cleanly, and the journal position it reflects.
    pub fn state(&self) -> Result<(Option<u32>, bool, Option<Position>)> {
        let get = |k: &str| self.info.get(k).map_err(self.err());
        let version =
            get("version")?.and_then(|v| Some(u32::from_be_bytes(v.as_ref().try_into().ok()?)));
        let clean = get("clean")?.is_some_and(|v| v.as_ref() == b"1");
        let end = get("end")?.and_then(|v| Position::from_bytes(&v));
        Ok((version, clean, end))
    }

    /// Marks the index as in use: a crash from now on means a rebuild at the next open.
    pub fn mark_dirty(&self) -> Result<()> {
        self.info
            .insert("version", &INDEX_VERSION.to_be_bytes())
            .map_err(self.err())?;
        self.info.insert("clean", b"0").map_err(self.err())?;
        self.flush()
    }

    /// Flushes everything and marks the index as matching the journal up to `end`.
    pub fn mark_clean(&self, end: Position) -> Result<()> {
        self.flush()?;
        self.info
            .insert("end", &end.to_bytes())
            .map_err(self.err())?;
        self.info.insert("clean", b"1").map_err(self.err())?;
        self.flush()
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(self.err())
    }

    /// Applies durable records in journal order. Every step only sets keys from the record
    /// and the state left by earlier records, so a rebuild gives the same index.
    pub fn apply(&self, records: &[(Position, Record)]) -> Result<()> {
        let e = self.err();
        for (pos, record) in records {
            match record {
                Record::Ingest { id, at, result, .. } => match result {
                    IngestResult::Accepted { meta } => {
                        self.meta.insert(id.as_bytes(), json(meta)).map_err(&e)?;
                        self.rejected.remove(id.as_bytes()).map_err(&e)?;
                    }
                    IngestResult::Rejected { reason, detail } => {
                        let r = Rejection {
                            reason: *reason,
                            detail: detail.clone(),
                            at: *at,
                        };
                        self.rejected.insert(id.as_bytes(), json(&r)).map_err(&e)?;
                        self.meta.remove(id.as_bytes()).map_err(&e)?;
                    }
                },
                Record::Provenance { id, provenance, .. } => {
                    let key = cat(id.as_bytes(), &pos.to_bytes());
                    self.prov.insert(key, json(provenance)).map_err(&e)?;
                    let url = provenance.image_url.as_bytes();
                    self.url.insert(url, id.as_bytes()).map_err(&e)?;
                    let rejected = match self.rejected.get(id.as_bytes()).map_err(&e)? {
                        Some(v) if !self.meta.contains_key(id.as_bytes()).map_err(&e)? => {
                            Some(decode::<Rejection>(&v, "rejected", id)?.reason)
                        }
                        _ => None,
                    };
                    let mut state = self.url_state(&provenance.image_url)?.unwrap_or_default();
                    state.ingest = Some(UrlIngest { id: *id, rejected });
                    self.url_state.insert(url, json(&state)).map_err(&e)?;
                }
                Record::Fetch { fetch, .. } => {
                    let mut state = self.url_state(&fetch.url)?.unwrap_or_default();
                    state.fetch = Some(fetch.clone());
                    self.url_state
                        .insert(fetch.url.as_bytes(), json(&state))
                        .map_err(&e)?;
                }
                Record::Decision { decision, .. } => {
                    let id = decision.id;
                    if let Some(prev) = self.decision(&id)? {
                        self.cluster
                            .remove(cat(prev.cluster.as_bytes(), id.as_bytes()))
                            .map_err(&e)?;
                    }
                    self.cluster
                        .insert(cat(decision.cluster.as_bytes(), id.as_bytes()), &[])
                        .map_err(&e)?;
                    let v = json(decision);
                    self.decision.insert(id.as_bytes(), v.clone()).map_err(&e)?;
                    self.decision_log
                        .insert(cat(id.as_bytes(), &pos.to_bytes()), v)
                        .map_err(&e)?;
                }
                Record::LabelReview { review, .. } => {
                    let id = review.id;
                    let v = json(review);
                    if review.in_force() {
                        self.review.insert(id.as_bytes(), v.clone()).map_err(&e)?;
                    } else {
                        self.review.remove(id.as_bytes()).map_err(&e)?;
                    }
                    self.review_log
                        .insert(cat(id.as_bytes(), &pos.to_bytes()), v)
                        .map_err(&e)?;
                }
            }
        }
        Ok(())
    }

    pub fn meta(&self, id: &ContentId) -> Result<Option<ImageMeta>> {
        self.get(&self.meta, id.as_bytes(), "meta")
    }

    pub fn rejection(&self, id: &ContentId) -> Result<Option<Rejection>> {
        self.get(&self.rejected, id.as_bytes(), "rejected")
    }

    pub fn decision(&self, id: &ContentId) -> Result<Option<Decision>> {
        self.get(&self.decision, id.as_bytes(), "decision")
    }

    /// The label review in force for `id`.
    pub fn label_review(&self, id: &ContentId) -> Result<Option<LabelReview>> {
        self.get(&self.review, id.as_bytes(), "review")
    }

    pub fn review_log(&self, id: &ContentId) -> Result<Vec<(Position, LabelReview)>> {
        self.by_prefix(&self.review_log, id, "review_log")
    }

    pub fn url_state(&self, url: &str) -> Result<Option<UrlState>> {
        self.get(&self.url_state, url.as_bytes(), "url_state")
    }

    pub fn url_id(&self, url: &str) -> Result<Option<ContentId>> {
        Ok(self
            .url
            .get(url.as_bytes())
            .map_err(self.err())?
            .and_then(|v| id_from(&v)))
    }

    pub fn provenance(&self, id: &ContentId) -> Result<Vec<(Position, Provenance)>> {
        self.by_prefix(&self.prov, id, "prov")
    }

    pub fn decision_log(&self, id: &ContentId) -> Result<Vec<(Position, Decision)>> {
        self.by_prefix(&self.decision_log, id, "decision_log")
    }

    pub fn cluster_members(&self, rep: &ContentId) -> Result<Vec<ContentId>> {
        let mut out = Vec::new();
        for kv in self.cluster.scan_prefix(rep.as_bytes()) {
            let (k, _) = kv.map_err(self.err())?;
            out.extend(id_from(&k[32..]));
        }
        Ok(out)
    }

    fn by_prefix<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        id: &ContentId,
        name: &str,
    ) -> Result<Vec<(Position, T)>> {
        let mut out = Vec::new();
        for kv in tree.scan_prefix(id.as_bytes()) {
            let (k, v) = kv.map_err(self.err())?;
            let pos = Position::from_bytes(&k[32..]).ok_or_else(|| StoreError::IndexCorrupt {
                key: format!("{name}/{id}"),
                message: "bad journal position in key".into(),
            })?;
            out.push((pos, decode(&v, name, id)?));
        }
        Ok(out)
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        name: &str,
    ) -> Result<Option<T>> {
        match tree.get(key).map_err(self.err())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::IndexCorrupt {
                    key: format!("{name}/{}", String::from_utf8_lossy(key)),
                    message: e.to_string(),
                }),
        }
    }

    /// Every (tree, key, value), in a fixed order: two indexes that answer alike dump alike.
    pub fn dump(&self) -> Result<Vec<IndexRow>> {
        let mut out = Vec::new();
        for (name, tree) in TREES.iter().zip(self.trees()) {
            for kv in tree.iter() {
                let (k, v) = kv.map_err(self.err())?;
                out.push((name.to_string(), k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    fn trees(&self) -> [&sled::Tree; 10] {
        [
            &self.meta,
            &self.rejected,
            &self.prov,
            &self.url,
            &self.url_state,
            &self.decision,
            &self.decision_log,
            &self.cluster,
            &self.review,
            &self.review_log,
        ]
    }

    pub(crate) fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Index {
            path: self.path.clone(),
            source,
        }
    }
}

pub(crate) fn decode<T: DeserializeOwned>(v: &[u8], tree: &str, id: &ContentId) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| StoreError::IndexCorrupt {
        key: format!("{tree}/{id}"),
        message: e.to_string(),
    })
}
