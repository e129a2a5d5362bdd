use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use lennonnet_core::{ContentId, FailureReason, Group, Label};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::index::{Index, Rejection, UrlState, decode, id_from};
use crate::journal::{self, Ack, Journal, Position};
use crate::objects::{Objects, sync_dir};
use crate::record::{
    Decision, FetchOutcome, ImageMeta, IngestResult, Provenance, RECORD_VERSION, Record,
    RejectReason,
};
use crate::time::Timestamp;
use crate::validate::{Rejected, Rules, validate};

mod open;
mod reviews;

/// The on-disk layout version this build writes, kept in `layout.json`.
pub const LAYOUT_VERSION: u32 = 1;

/// The store's `layout.json` under `root`: a folder holds a store when it has one.
pub fn layout_path(root: &Path) -> PathBuf {
    root.join("layout.json")
}

/// The store's object folder under `root`.
pub fn objects_dir(root: &Path) -> PathBuf {
    root.join("objects")
}

/// A dataset's store: objects, journal and index under one folder.
///
/// ```text
/// datasets/<name>/
///   layout.json            {"store_layout": 1}
///   store.lock             held (flock) by the one process that has the store open
///   objects/ab/<64 hex>    original bytes, named by their blake3
///   objects/tmp/           temp files of writes in progress (cleared at open)
///   journal/00000001.jsonl append-only records, the source of truth
///   index/                 sled, derived; deleted and rebuilt by `store reindex`
/// ```
///
/// `Store` is `Send + Sync`: share it (e.g. in an `Arc`) between threads or async tasks.
/// Every write returns only once durable (or hands back an [`Ack`] that resolves then).
pub struct Store {
    root: PathBuf,
    objects: Objects,
    journal: Journal,
    index: Arc<Index>,
    rules: Rules,
    read_only: bool,
    _lock: Option<File>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    Repair,
    Read,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

/// What became of ingested bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    pub id: ContentId,
    #[serde(flatten)]
    pub result: Ingested,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Ingested {
    /// Valid. `new` is false when the same bytes were already stored (only provenance was added).
    Accepted { meta: Box<ImageMeta>, new: bool },
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

impl IngestOutcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self.result, Ingested::Accepted { .. })
    }
}

/// Bytes hashed and validated by [`Store::check`], ready for [`Store::ingest_checked`].
#[derive(Debug)]
pub struct Checked<B> {
    bytes: B,
    id: ContentId,
    /// `None` when the store already held the bytes at check time.
    verdict: Option<std::result::Result<ImageMeta, Rejected>>,
    /// The rules validated under.
    rules: Rules,
}

impl<B> Checked<B> {
    /// The content id of the bytes.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// Whether the bytes will be accepted: `Some(true)` valid, `Some(false)` refused, `None`
    /// already stored when checked (so accepted).
    pub fn valid(&self) -> Option<bool> {
        self.verdict.as_ref().map(|v| v.is_ok())
    }
}

/// How opening went: whether the index had to be rebuilt, and what the rebuild found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpenReport {
    /// Why the index was rebuilt (absent: it was reused).
    pub rebuilt: Option<String>,
    pub records_replayed: u64,
    /// Accepted images whose object file is missing.
    pub missing_objects: u64,
    pub millis: u64,
}

/// One accepted image with everything known of where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    pub id: ContentId,
    pub meta: ImageMeta,
    pub provenance: Vec<Provenance>,
}

/// Counts over the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Accepted images (distinct content ids) and their bytes.
    pub images: u64,
    pub bytes: u64,
    /// Distinct content ids refused.
    pub rejected: u64,
    /// Accepted images with no provenance record: their journal was cut between the image's
    /// `ingest` and `provenance` records (a crash), or they were re-adopted by `store repair`.
    /// They are counted in `images` but under no group or label, and curation leaves them out
    /// until a rerun of the interrupted work records where they came from.
    pub no_provenance: u64,
    pub provenance_records: u64,
    pub by_format: BTreeMap<String, u64>,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Distinct images found in each group: accepted and rejected.
    pub by_group: BTreeMap<String, Counts>,
    /// Distinct images found under each label (an image found under two labels counts twice).
    pub by_label: BTreeMap<String, Counts>,
    /// URLs by their last fetch outcome (`ok` or the reason).
    pub fetch_by_outcome: BTreeMap<String, u64>,
    /// Images by their curation status (`uncurated` when never curated).
    pub by_curation: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub accepted: u64,
    pub rejected: u64,
}

impl Store {
    /// Waits for pending records, stops the writer and marks the index clean. Dropping the
    /// store does the same; `close` reports errors.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        self.journal.close();
        if self.read_only {
            return Ok(());
        }
        if self.journal.poisoned().is_some() {
            return Ok(());
        }
        self.index.mark_clean(self.journal.end())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    pub fn object_path(&self, id: &ContentId) -> PathBuf {
        self.objects.path(id)
    }

    /// Validates `bytes`, stores them if valid, and records their provenance. Returns once
    /// everything is durable.
    pub fn ingest(&self, bytes: &[u8], provenance: Provenance) -> Result<IngestOutcome> {
        let (outcome, ack) = self.ingest_nowait(bytes, provenance)?;
        ack.wait()?;
        Ok(outcome)
    }

    /// Like [`Store::ingest`], but hands back the [`Ack`] instead of waiting: the outcome holds
    /// only once the ack resolves (`.wait()` or `.await`). Lets async callers wait without
    /// blocking a thread, and lets one thread have many ingests in one group commit.
    pub fn ingest_nowait(
        &self,
        bytes: &[u8],
        provenance: Provenance,
    ) -> Result<(IngestOutcome, Ack)> {
        let checked = self.check(bytes)?;
        self.ingest_checked(checked, provenance)
    }

    /// The costly half of an ingest, without writing anything: hashes `bytes` and, unless the
    /// store already holds them, validates them (decode, orientation, perceptual hashes). Run it
    /// on any thread, ahead of [`Store::ingest_checked`], which is then cheap: a pipeline can
    /// check many images in parallel and store them in the order it chooses.
    pub fn check<B: AsRef<[u8]>>(&self, bytes: B) -> Result<Checked<B>> {
        let id = ContentId::of(bytes.as_ref());
        let verdict = match self.index.meta(&id)? {
            Some(_) => None,
            None => Some(validate(bytes.as_ref(), &self.rules)),
        };
        Ok(Checked {
            bytes,
            id,
            verdict,
            rules: self.rules,
        })
    }

    /// Stores checked bytes if valid and records their provenance, as [`Store::ingest_nowait`]
    /// does with the same bytes. Bytes that were known when checked but are not now (or were
    /// checked under other rules) are validated here.
    pub fn ingest_checked<B: AsRef<[u8]>>(
        &self,
        checked: Checked<B>,
        provenance: Provenance,
    ) -> Result<(IngestOutcome, Ack)> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let Checked {
            bytes,
            id,
            verdict,
            rules,
        } = checked;
        let bytes = bytes.as_ref();
        let prov = Record::Provenance {
            v: RECORD_VERSION,
            id,
            provenance,
        };
        if let Some(meta) = self.index.meta(&id)? {
            // Known bytes: (re)write the object only if it went missing, add the provenance.
            let staged = self.objects.stage(&id, bytes)?.into_iter().collect();
            let ack = self.journal.append(vec![prov], staged);
            let result = Ingested::Accepted {
                meta: Box::new(meta),
                new: false,
            };
            return Ok((IngestOutcome { id, result }, ack));
        }
        let at = Timestamp::now();
        let verdict = match verdict {
            Some(v) if rules == self.rules => v,
            _ => validate(bytes, &self.rules),
        };
        match verdict {
            Ok(meta) => {
                let staged = self.objects.stage(&id, bytes)?.into_iter().collect();
                let ingest = Record::Ingest {
                    v: RECORD_VERSION,
                    id,
                    at,
                    result: IngestResult::Accepted { meta: meta.clone() },
                    recovered: false,
                };
                let ack = self.journal.append(vec![ingest, prov], staged);
                let result = Ingested::Accepted {
                    meta: Box::new(meta),
                    new: true,
                };
                Ok((IngestOutcome { id, result }, ack))
            }
            Err(rejected) => {
                tracing::debug!(%id, reason = %rejected.reason, detail = %rejected.detail, "image rejected");
                let ingest = Record::Ingest {
                    v: RECORD_VERSION,
                    id,
                    at,
                    result: IngestResult::Rejected {
                        reason: rejected.reason,
                        detail: rejected.detail.clone(),
                    },
                    recovered: false,
                };
                let ack = self.journal.append(vec![ingest, prov], Vec::new());
                let result = Ingested::Rejected {
                    reason: rejected.reason,
                    detail: rejected.detail,
                };
                Ok((IngestOutcome { id, result }, ack))
            }
        }
    }

    /// Re-adopts an object file that no journal record accepts (`store repair`): its bytes must
    /// hash to `id`; they are validated again, and when valid an `ingest` record marked
    /// `recovered` is journaled (with no provenance: where it came from is unknown). Returns the
    /// rejection when the bytes are not an acceptable image (the object is then left alone).
    pub fn adopt(
        &self,
        id: &ContentId,
        bytes: &[u8],
    ) -> Result<std::result::Result<ImageMeta, Rejected>> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        let actual = ContentId::of(bytes);
        if actual != *id {
            return Ok(Err(Rejected {
                reason: RejectReason::Corrupt,
                detail: format!("the object's bytes hash to {actual}, not to its name"),
            }));
        }
        let meta = match validate(bytes, &self.rules) {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        let ingest = Record::Ingest {
            v: RECORD_VERSION,
            id: *id,
            at: Timestamp::now(),
            result: IngestResult::Accepted { meta: meta.clone() },
            recovered: true,
        };
        self.journal.append(vec![ingest], Vec::new()).wait()?;
        Ok(Ok(meta))
    }

    /// Puts the original bytes of `id` back in place of a corrupt or missing object file
    /// (`store repair`). `bytes` must hash to `id`; returns false, writing nothing, otherwise.
    pub fn restore_object(&self, id: &ContentId, bytes: &[u8]) -> Result<bool> {
        if self.read_only {
            return Err(StoreError::ReadOnly);
        }
        if ContentId::of(bytes) != *id {
            return Ok(false);
        }
        self.objects.replace(id, bytes)?;
        Ok(true)
    }

    /// Records how a download ended (the downloader's outcome, success or failure).
    pub fn record_fetch(&self, outcome: FetchOutcome) -> Ack {
        self.journal.append(
            vec![Record::Fetch {
                v: RECORD_VERSION,
                fetch: outcome,
            }],
            Vec::new(),
        )
    }

    /// Records curation decisions as one batch.
    pub fn record_decisions(&self, decisions: Vec<Decision>) -> Ack {
        let records = decisions
            .into_iter()
            .map(|decision| Record::Decision {
                v: RECORD_VERSION,
                decision,
            })
            .collect();
        self.journal.append(records, Vec::new())
    }

    pub fn meta(&self, id: &ContentId) -> Result<Option<ImageMeta>> {
        self.index.meta(id)
    }

    pub fn rejection(&self, id: &ContentId) -> Result<Option<Rejection>> {
        self.index.rejection(id)
    }

    /// Every provenance of `id`, in journal order.
    pub fn provenance(&self, id: &ContentId) -> Result<Vec<Provenance>> {
        Ok(self
            .index
            .provenance(id)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Whether any provenance record names `id`.
    pub fn has_provenance(&self, id: &ContentId) -> Result<bool> {
        match self.index.prov.scan_prefix(id.as_bytes()).next() {
            None => Ok(false),
            Some(kv) => kv.map(|_| true).map_err(|e| self.index.sled_err(e)),
        }
    }

    /// The content id the bytes of `url` had, if they were ingested.
    pub fn url_id(&self, url: &str) -> Result<Option<ContentId>> {
        self.index.url_id(url)
    }

    /// The last fetch and ingest outcome of `url`, for resuming a scrape.
    pub fn url_state(&self, url: &str) -> Result<Option<UrlState>> {
        self.index.url_state(url)
    }

    pub fn decision(&self, id: &ContentId) -> Result<Option<Decision>> {
        self.index.decision(id)
    }

    /// Every decision about `id`, oldest first.
    pub fn decision_history(&self, id: &ContentId) -> Result<Vec<Decision>> {
        Ok(self
            .index
            .decision_log(id)?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// The members of the cluster whose representative is `rep`, by content id.
    pub fn cluster_members(&self, rep: &ContentId) -> Result<Vec<ContentId>> {
        self.index.cluster_members(rep)
    }

    /// Every accepted image with its metadata, by content id.
    pub fn images(&self) -> impl Iterator<Item = Result<(ContentId, ImageMeta)>> + '_ {
        self.index.meta.iter().map(move |kv| {
            let (k, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let id = id_from(&k).ok_or_else(|| StoreError::IndexCorrupt {
                key: "meta".into(),
                message: "short key".into(),
            })?;
            Ok((id, decode(&v, "meta", &id)?))
        })
    }

    /// Every accepted image with its provenance, by content id (a merge of two sorted scans).
    pub fn entries(&self) -> impl Iterator<Item = Result<ImageEntry>> + '_ {
        let mut prov = self.index.prov.iter().peekable();
        self.images().map(move |item| {
            let (id, meta) = item?;
            let mut provenance = Vec::new();
            while let Some(kv) = prov.peek() {
                let (k, v) = match kv {
                    Ok(kv) => kv,
                    Err(_) => {
                        let e = prov.next().expect("peeked").unwrap_err();
                        return Err(self.index.sled_err(e));
                    }
                };
                match k[..32].cmp(id.as_bytes()) {
                    std::cmp::Ordering::Less => {
                        prov.next();
                    }
                    std::cmp::Ordering::Equal => {
                        provenance.push(decode(v, "prov", &id)?);
                        prov.next();
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            Ok(ImageEntry {
                id,
                meta,
                provenance,
            })
        })
    }

    /// Every current curation decision, by content id.
    /// Every URL with its last fetch outcome and ingest outcome, in URL byte order (what
    /// `store failures` lists).
    pub fn url_states(&self) -> impl Iterator<Item = Result<(String, UrlState)>> + '_ {
        self.index.url_state.iter().map(move |kv| {
            let (k, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let url = String::from_utf8_lossy(&k).into_owned();
            let state = decode(&v, "url_state", &ContentId::from_bytes([0; 32]))?;
            Ok((url, state))
        })
    }

    pub fn decisions(&self) -> impl Iterator<Item = Result<Decision>> + '_ {
        self.index.decision.iter().map(move |kv| {
            let (k, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let id = id_from(&k).unwrap_or(ContentId::from_bytes([0; 32]));
            decode(&v, "decision", &id)
        })
    }

    /// The content id (accepted or rejected) that `prefix` (at least 4 hex digits) names.
    pub fn resolve(&self, prefix: &str) -> Result<ContentId> {
        if let Ok(id) = prefix.parse::<ContentId>() {
            return Ok(id);
        }
        let bad = || StoreError::BadPrefix {
            prefix: prefix.to_string(),
        };
        if prefix.len() < 4
            || prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad());
        }
        // Prefix bytes: whole bytes match exactly, an odd last digit bounds a range.
        let lo_hex = format!("{prefix:0<64}");
        let lo = lo_hex.parse::<ContentId>().map_err(|_| bad())?;
        let mut found = std::collections::BTreeSet::new();
        for tree in [&self.index.meta, &self.index.rejected] {
            for kv in tree.range(lo.as_bytes().to_vec()..) {
                let (k, _) = kv.map_err(|e| self.index.sled_err(e))?;
                let Some(id) = id_from(&k) else { continue };
                if !id.to_hex().starts_with(prefix) {
                    break;
                }
                found.insert(id);
                if found.len() > 1 {
                    break;
                }
            }
        }
        let mut it = found.iter();
        match (it.next(), it.next()) {
            (Some(id), None) => Ok(*id),
            (None, _) => Err(StoreError::NoSuchPrefix {
                prefix: prefix.to_string(),
            }),
            (Some(_), Some(_)) => Err(StoreError::AmbiguousPrefix {
                prefix: prefix.to_string(),
                count: found.len(),
            }),
        }
    }

    /// Counts per format, reason, group, label, fetch outcome and curation status.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        for item in self.images() {
            let (_, meta) = item?;
            s.images += 1;
            s.bytes += meta.bytes;
            *s.by_format.entry(meta.format.to_string()).or_default() += 1;
        }
        for kv in self.index.rejected.iter() {
            let (k, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let id = id_from(&k).unwrap_or(ContentId::from_bytes([0; 32]));
            let r: Rejection = decode(&v, "rejected", &id)?;
            s.rejected += 1;
            *s.rejected_by_reason
                .entry(r.reason.to_string())
                .or_default() += 1;
        }
        // Provenance is keyed by id first: collect each id's groups and labels, then count.
        let mut current: Option<ContentId> = None;
        let mut groups: Vec<Group> = Vec::new();
        let mut labels: Vec<Label> = Vec::new();
        let flush = |s: &mut Stats,
                     id: &ContentId,
                     groups: &mut Vec<Group>,
                     labels: &mut Vec<Label>|
         -> Result<()> {
            let accepted = self
                .index
                .meta
                .contains_key(id.as_bytes())
                .map_err(|e| self.index.sled_err(e))?;
            groups.sort();
            groups.dedup();
            labels.sort();
            labels.dedup();
            for g in groups.drain(..) {
                let c = s.by_group.entry(g.to_string()).or_default();
                if accepted {
                    c.accepted += 1
                } else {
                    c.rejected += 1
                }
            }
            for l in labels.drain(..) {
                let c = s.by_label.entry(l.to_string()).or_default();
                if accepted {
                    c.accepted += 1
                } else {
                    c.rejected += 1
                }
            }
            Ok(())
        };
        for kv in self.index.prov.iter() {
            let (k, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let Some(id) = id_from(&k) else { continue };
            if current.is_some_and(|c| c != id) {
                flush(&mut s, &current.expect("checked"), &mut groups, &mut labels)?;
            }
            current = Some(id);
            let p: Provenance = decode(&v, "prov", &id)?;
            s.provenance_records += 1;
            groups.push(p.group);
            labels.push(p.label);
        }
        if let Some(id) = current {
            flush(&mut s, &id, &mut groups, &mut labels)?;
        }
        for kv in self.index.url_state.iter() {
            let (_, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let st: UrlState =
                serde_json::from_slice(&v).map_err(|e| StoreError::IndexCorrupt {
                    key: "url_state".into(),
                    message: e.to_string(),
                })?;
            if let Some(f) = st.fetch {
                let key = f.reason.map_or("ok", FailureReason::as_str).to_string();
                *s.fetch_by_outcome.entry(key).or_default() += 1;
            }
        }
        for item in self.images() {
            let (id, _) = item?;
            if !self.has_provenance(&id)? {
                s.no_provenance += 1;
            }
        }
        let mut curated = 0;
        for d in self.decisions() {
            let d = d?;
            curated += 1;
            *s.by_curation.entry(d.status.to_string()).or_default() += 1;
        }
        if s.images > curated {
            s.by_curation.insert("uncurated".into(), s.images - curated);
        }
        Ok(s)
    }

    /// The whole index as (tree, key, value) rows: equal dumps mean equal answers.
    pub fn dump_index(&self) -> Result<Vec<crate::index::IndexRow>> {
        self.index.dump()
    }

    /// Whether `id` is referenced: accepted in the journal.
    pub fn is_referenced(&self, id: &ContentId) -> Result<bool> {
        self.index
            .meta
            .contains_key(id.as_bytes())
            .map_err(|e| self.index.sled_err(e))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "closing the store");
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Store>();
    is::<Ack>();
}
