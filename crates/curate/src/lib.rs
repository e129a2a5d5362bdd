//! Lennonnet's curation: it reads the store, forms near-duplicate clusters, resolves clusters
//! found under several labels, keeps eval images that also appear in training out of eval, and
//! journals one [`Decision`] per image with its reasons. It never deletes an object.
//!
//! The rules, per cluster (see `docs/store.md`):
//!
//! - **Clusters** are the connected components of "near-duplicate" pairs (pHash and PDQ
//!   distances within the `[curate]` thresholds, both images hashable), found through a
//!   multi-index ([`cluster`]). The representative is the member with the most (oriented)
//!   pixels, then the smallest content id.
//! - **Labels**: an image's labels are those of the groups it was found in (the config's label
//!   for a known group, the recorded one otherwise). A cluster with more than one label is a
//!   conflict: with `conflict_policy = "prefer_label"` and the preferred label among its labels,
//!   every member gets the preferred label (`relabelled` for those found under another);
//!   otherwise every member is `quarantined`.
//! - **Purpose**: a member found in a `train` group is `train`. A member found only in `eval`
//!   groups is `eval`, unless its cluster holds a train member: then it is `excluded` with an
//!   `eval_leak` reason.
//!
//! Only decisions that differ from the ones in force are journaled, so a rerun on the same
//! store and policy writes nothing.

pub mod cluster;
mod explain;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use lennonnet_config::{Config, ConflictPolicy};
use lennonnet_core::{ContentId, Group, Label, Progress, Purpose};
use lennonnet_store::{
    CurationStatus, Decision, DecisionCode, DecisionReason, Store, StoreError, Timestamp,
};
use serde::Serialize;

pub use explain::{ClusterMember, Explanation, explain};

/// A curation run failed (per-image findings are decisions, not errors).
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to curate: thresholds, conflict policy, and what the config says of each group.
#[derive(Debug, Clone)]
pub struct Policy {
    pub phash_max_distance: u32,
    pub pdq_max_distance: u32,
    pub min_quality: u8,
    pub conflict: Conflict,
    /// Label and purpose of each group the config declares.
    pub groups: BTreeMap<Group, (Label, Purpose)>,
    /// The config's word groups: a group named `<prefix><word>` for a word of the list has
    /// their label and purpose.
    pub words: Option<WordGroups>,
}

/// What the config's `[words]` section says of the groups it makes.
#[derive(Debug, Clone)]
pub struct WordGroups {
    pub prefix: String,
    pub words: BTreeSet<String>,
    pub label: Label,
    pub purpose: Purpose,
}

/// What to do with a cluster found under several labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Relabel to this label when it is among the cluster's labels; quarantine otherwise.
    Prefer(Label),
    Quarantine,
}

impl Policy {
    /// The policy of a config's `[curate]` section and its groups.
    pub fn from_config(config: &Config) -> Self {
        let c = &config.curate;
        let prefer = c
            .prefer_label
            .clone()
            .unwrap_or_else(|| config.classes[0].name.clone());
        let groups = config
            .groups
            .iter()
            .map(|g| (g.name.clone(), (g.label.clone(), g.purpose)))
            .collect();
        let words = config.words.as_ref().map(|w| WordGroups {
            prefix: w.group_prefix.clone(),
            words: w.list.iter().cloned().collect(),
            label: w.label.clone(),
            purpose: w.purpose,
        });
        Self {
            phash_max_distance: c.phash_max_distance,
            pdq_max_distance: c.pdq_max_distance,
            min_quality: c.min_quality,
            conflict: match c.conflict_policy {
                ConflictPolicy::PreferLabel => Conflict::Prefer(prefer),
                ConflictPolicy::Quarantine => Conflict::Quarantine,
            },
            groups,
            words,
        }
    }

    /// The label and purpose the config gives group `g`, if it names it.
    fn group(&self, g: &Group) -> Option<(Label, Purpose)> {
        if let Some(lp) = self.groups.get(g) {
            return Some(lp.clone());
        }
        let w = self.words.as_ref()?;
        let word = g.as_str().strip_prefix(w.prefix.as_str())?;
        w.words.contains(word).then(|| (w.label.clone(), w.purpose))
    }

    fn conflict_name(&self) -> &'static str {
        match self.conflict {
            Conflict::Prefer(_) => "prefer_label",
            Conflict::Quarantine => "quarantine",
        }
    }
}

/// What a curation run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CurateReport {
    pub images: u64,
    /// Accepted images left out because no provenance record names them (a journal cut between
    /// an image's `ingest` and `provenance` records, or an image re-adopted by `store repair`):
    /// with no group there is no label to give them. A rerun of the interrupted scrape or
    /// `store add` records their provenance, and the next curation takes them in.
    pub no_provenance: u64,
    pub clusters: u64,
    /// Clusters of two or more images, and the images in them.
    pub duplicate_clusters: u64,
    pub images_in_duplicate_clusters: u64,
    pub largest_cluster: u64,
    /// Images too flat to match on.
    pub low_quality: u64,
    /// Clusters found under more than one label.
    pub conflicting_clusters: u64,
    pub relabelled: u64,
    pub quarantined: u64,
    /// Eval images taken out of eval because their cluster holds training images.
    pub eval_excluded: u64,
    /// Images kept quarantined because a person quarantined their suspect label after review.
    pub review_quarantined: u64,
    /// Review quarantines lifted by this run (`curate --release`).
    pub released: u64,
    /// Images by final status and label, e.g. `train/john`.
    pub by_status_label: BTreeMap<String, u64>,
    /// Decisions journaled (the others were already in force).
    pub decisions_written: u64,
    pub millis_load: u64,
    pub millis_cluster: u64,
    pub millis_decide: u64,
    pub millis_write: u64,
}

/// One image as curation sees it.
struct Item {
    id: ContentId,
    pixels: u64,
    phash: u64,
    pdq: [u64; 4],
    quality: u8,
    groups: BTreeSet<u32>,
}

/// Interned groups with their label and purpose.
#[derive(Default)]
struct Groups {
    names: Vec<Group>,
    labels: Vec<Label>,
    purposes: Vec<Purpose>,
    by_name: BTreeMap<Group, u32>,
}

impl Groups {
    fn intern(&mut self, g: &Group, label: &Label, purpose: Purpose, policy: &Policy) -> u32 {
        if let Some(&i) = self.by_name.get(g) {
            return i;
        }
        let (label, purpose) = policy.group(g).unwrap_or((label.clone(), purpose));
        let i = self.names.len() as u32;
        self.names.push(g.clone());
        self.labels.push(label);
        self.purposes.push(purpose);
        self.by_name.insert(g.clone(), i);
        i
    }
}

fn pdq_words(h: &lennonnet_store::Hash256) -> [u64; 4] {
    let b = &h.0;
    std::array::from_fn(|i| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
}

/// Curates the whole store under `policy`, journaling every decision that changed.
pub fn curate(
    store: &Store,
    policy: &Policy,
    progress: &dyn Progress,
) -> Result<CurateReport, CurateError> {
    curate_releasing(store, policy, &BTreeSet::new(), progress)
}

/// [`curate`], lifting the review quarantines ([`quarantine_reviewed`]) of the images in
/// `release`: they get the decision curation alone gives them. Every other review quarantine in
/// force stays, with its reason, on top of what curation decides.
pub fn curate_releasing(
    store: &Store,
    policy: &Policy,
    release: &BTreeSet<ContentId>,
    progress: &dyn Progress,
) -> Result<CurateReport, CurateError> {
    let mut report = CurateReport::default();
    let t = Instant::now();
    let mut groups = Groups::default();
    let mut items = Vec::new();
    progress.start("curate: load", None);
    for entry in store.entries() {
        let e = entry?;
        if e.provenance.is_empty() {
            report.no_provenance += 1;
            progress.advance("curate: load", 1);
            continue;
        }
        let mut gs = BTreeSet::new();
        for p in &e.provenance {
            gs.insert(groups.intern(&p.group, &p.label, p.purpose, policy));
        }
        items.push(Item {
            id: e.id,
            pixels: e.meta.oriented_pixels(),
            phash: e.meta.phash.as_u64(),
            pdq: pdq_words(&e.meta.pdq),
            quality: e.meta.pdq_quality,
            groups: gs,
        });
        progress.advance("curate: load", 1);
    }
    progress.finish("curate: load");
    report.images = items.len() as u64;
    report.millis_load = t.elapsed().as_millis() as u64;

    let t = Instant::now();
    let hashed: Vec<cluster::Hashed> = items
        .iter()
        .map(|it| cluster::Hashed {
            phash: it.phash,
            pdq: it.pdq,
            matchable: it.quality >= policy.min_quality,
        })
        .collect();
    report.low_quality = hashed.iter().filter(|h| !h.matchable).count() as u64;
    let roots = cluster::cluster(
        &hashed,
        cluster::Thresholds {
            phash_max: policy.phash_max_distance,
            pdq_max: policy.pdq_max_distance,
        },
    );
    report.millis_cluster = t.elapsed().as_millis() as u64;

    let t = Instant::now();
    // Members of each cluster, by root; items are in content-id order, so are members.
    let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, r) in roots.iter().enumerate() {
        members.entry(*r).or_default().push(i as u32);
    }
    let now = Timestamp::now();
    report.clusters = members.len() as u64;
    // Decide cluster by cluster, journaling changed decisions in batches as they come, so that
    // memory holds one batch of decisions, not one per image.
    const BATCH: usize = 10_000;
    let mut decisions = Vec::new();
    let mut changed = Vec::with_capacity(BATCH);
    let mut acks = Vec::new();
    let (mut millis_write, mut written) = (0u128, 0u64);
    progress.start("curate: decide", Some(items.len() as u64));
    for m in members.values() {
        decide_cluster(m, &items, &groups, policy, now, &mut report, &mut decisions);
        progress.advance("curate: decide", decisions.len() as u64);
        let tw = Instant::now();
        for mut d in decisions.drain(..) {
            let old = store.decision(&d.id)?;
            if let Some(r) = old.as_ref().and_then(review_reason) {
                if release.contains(&d.id) {
                    report.released += 1;
                } else {
                    d.status = CurationStatus::Quarantined;
                    d.reasons.push(r.clone());
                    report.review_quarantined += 1;
                }
            }
            *report
                .by_status_label
                .entry(format!("{}/{}", d.status, d.label))
                .or_default() += 1;
            if !old.is_some_and(|old| old.same_as(&d)) {
                changed.push(d);
            }
        }
        if changed.len() >= BATCH {
            written += changed.len() as u64;
            acks.push(store.record_decisions(std::mem::take(&mut changed)));
        }
        millis_write += tw.elapsed().as_millis();
    }
    let tw = Instant::now();
    if !changed.is_empty() {
        written += changed.len() as u64;
        acks.push(store.record_decisions(changed));
    }
    for ack in acks {
        ack.wait()?;
    }
    progress.finish("curate: decide");
    report.decisions_written = written;
    report.millis_write = (millis_write + tw.elapsed().as_millis()) as u64;
    report.millis_decide = (t.elapsed().as_millis() as u64).saturating_sub(report.millis_write);
    tracing::info!(
        images = report.images,
        clusters = report.clusters,
        conflicts = report.conflicting_clusters,
        relabelled = report.relabelled,
        quarantined = report.quarantined,
        eval_excluded = report.eval_excluded,
        written = report.decisions_written,
        "curation done"
    );
    Ok(report)
}

/// The review quarantine of a decision in force, if it carries one.
fn review_reason(d: &Decision) -> Option<&DecisionReason> {
    (d.status == CurationStatus::Quarantined)
        .then(|| {
            d.reasons
                .iter()
                .find(|r| r.code == DecisionCode::SuspectLabel)
        })
        .flatten()
}

/// One image to quarantine after review, and why (shown in `curate --explain` and kept with the
/// decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPick {
    pub id: ContentId,
    pub detail: String,
}

/// What [`quarantine_reviewed`] did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReviewReport {
    /// Images newly quarantined: the picks and their near-duplicates.
    pub quarantined: Vec<ContentId>,
    /// Of those, near-duplicates of a pick (same cluster, same label).
    pub via_cluster: u64,
    /// Already quarantined after an earlier review.
    pub already: Vec<ContentId>,
    /// Picks with no curation decision (run `lennonnet curate` first), left alone.
    pub uncurated: Vec<ContentId>,
}

/// Quarantines each pick and the other members of its near-duplicate cluster (copies of the same
/// picture carry the same label), keeping their decision but with status `quarantined` and a
/// `suspect_label` reason. Later curation runs keep them quarantined until
/// [`curate_releasing`] lifts it; the next snapshot leaves them out with reason `suspect_label`.
/// With `dry_run` nothing is written.
pub fn quarantine_reviewed(
    store: &Store,
    picks: &[ReviewPick],
    dry_run: bool,
) -> Result<ReviewReport, CurateError> {
    let mut report = ReviewReport::default();
    let now = Timestamp::now();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pick in picks {
        let Some(d) = store.decision(&pick.id)? else {
            report.uncurated.push(pick.id);
            continue;
        };
        let mut members = store.cluster_members(&d.cluster)?;
        members.retain(|m| *m != pick.id);
        members.insert(0, pick.id);
        for m in members {
            if !seen.insert(m) {
                continue;
            }
            let Some(dm) = store.decision(&m)? else {
                continue;
            };
            if review_reason(&dm).is_some() {
                report.already.push(m);
                continue;
            }
            let via = m != pick.id;
            let mut q = dm.clone();
            q.at = now;
            q.status = CurationStatus::Quarantined;
            q.reasons.push(DecisionReason {
                code: DecisionCode::SuspectLabel,
                detail: if via {
                    format!("near-duplicate of {}: {}", pick.id, pick.detail)
                } else {
                    pick.detail.clone()
                },
            });
            report.via_cluster += u64::from(via);
            report.quarantined.push(m);
            out.push(q);
        }
    }
    if !dry_run && !out.is_empty() {
        store.record_decisions(out).wait()?;
    }
    Ok(report)
}

fn list<T: std::fmt::Display>(xs: impl IntoIterator<Item = T>) -> String {
    xs.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn decide_cluster(
    members: &[u32],
    items: &[Item],
    groups: &Groups,
    policy: &Policy,
    now: Timestamp,
    report: &mut CurateReport,
    out: &mut Vec<Decision>,
) {
    let c = Cluster::new(members, items, groups, policy);
    let size = members.len() as u32;
    if size > 1 {
        report.duplicate_clusters += 1;
        report.images_in_duplicate_clusters += size as u64;
    }
    report.largest_cluster = report.largest_cluster.max(size as u64);
    if c.labels.len() > 1 {
        report.conflicting_clusters += 1;
    }
    for &i in members {
        out.push(c.decide(i, now, report));
    }
}

/// One cluster as [`decide_cluster`] sees it: its members and what they share.
struct Cluster<'a> {
    members: &'a [u32],
    items: &'a [Item],
    groups: &'a Groups,
    policy: &'a Policy,
    /// The representative member.
    rep: u32,
    /// The labels of its members' groups.
    labels: BTreeSet<&'a Label>,
    /// The cluster's label, `None` when its conflict quarantines it.
    resolved: Option<&'a Label>,
    /// A member found in a train group.
    train_member: Option<u32>,
}

impl<'a> Cluster<'a> {
    fn new(members: &'a [u32], items: &'a [Item], groups: &'a Groups, policy: &'a Policy) -> Self {
        let item = |i: u32| &items[i as usize];
        // Representative: most pixels, then smallest content id (members are in id order).
        let rep = *members
            .iter()
            .max_by(|&&a, &&b| {
                item(a)
                    .pixels
                    .cmp(&item(b).pixels)
                    .then(item(b).id.cmp(&item(a).id))
            })
            .expect("clusters are not empty");
        let mut c = Cluster {
            members,
            items,
            groups,
            policy,
            rep,
            labels: BTreeSet::new(),
            resolved: None,
            train_member: None,
        };
        c.labels = members.iter().flat_map(|&i| c.labels_of(i)).collect();
        // Resolve the cluster's label.
        let conflict = c.labels.len() > 1;
        c.resolved = match (&policy.conflict, conflict) {
            (_, false) => c.labels.first().copied(),
            (Conflict::Prefer(p), true) if c.labels.contains(p) => Some(p),
            _ => None,
        };
        c.train_member = members
            .iter()
            .copied()
            .find(|&i| c.has_purpose(i, Purpose::Train));
        c
    }

    fn item(&self, i: u32) -> &'a Item {
        &self.items[i as usize]
    }

    fn labels_of(&self, i: u32) -> BTreeSet<&'a Label> {
        let groups = self.groups;
        self.item(i)
            .groups
            .iter()
            .map(|&g| &groups.labels[g as usize])
            .collect()
    }

    fn has_purpose(&self, i: u32, p: Purpose) -> bool {
        self.item(i)
            .groups
            .iter()
            .any(|&g| self.groups.purposes[g as usize] == p)
    }

    /// The names of member `i`'s groups that pass `keep`.
    fn group_names(&self, i: u32, keep: impl Fn(u32) -> bool) -> Vec<&'a Group> {
        let groups = self.groups;
        self.item(i)
            .groups
            .iter()
            .filter(|&&g| keep(g))
            .map(|&g| &groups.names[g as usize])
            .collect()
    }

    /// An example member per label, for the reasons.
    fn example(&self, label: &Label) -> String {
        let i = self
            .members
            .iter()
            .copied()
            .find(|&i| self.labels_of(i).contains(label))
            .expect("label comes from a member");
        let g = self.group_names(i, |g| &self.groups.labels[g as usize] == label);
        format!("{} in group {}", short(&self.item(i).id), list(g))
    }

    /// The decision on member `i`, its reasons in a fixed order: hash quality, near-duplicate,
    /// label, eval leak.
    fn decide(&self, i: u32, now: Timestamp, report: &mut CurateReport) -> Decision {
        let it = self.item(i);
        let mut reasons = Vec::new();
        reasons.extend(self.quality_reason(i));
        reasons.extend(self.duplicate_reason(i));
        let (label, mut status) = self.label(i, &mut reasons, report);
        if status != CurationStatus::Quarantined {
            status = self.purpose(i, status, &mut reasons, report);
        }
        Decision {
            id: it.id,
            at: now,
            cluster: self.item(self.rep).id,
            cluster_size: self.members.len() as u32,
            label,
            status,
            groups: self
                .group_names(i, |_| true)
                .into_iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            reasons,
        }
    }

    fn quality_reason(&self, i: u32) -> Option<DecisionReason> {
        let it = self.item(i);
        (it.quality < self.policy.min_quality).then(|| DecisionReason {
            code: DecisionCode::LowHashQuality,
            detail: format!(
                "PDQ quality {} is below min_quality = {}: too flat to match against other images",
                it.quality, self.policy.min_quality
            ),
        })
    }

    fn duplicate_reason(&self, i: u32) -> Option<DecisionReason> {
        let size = self.members.len() as u32;
        if size <= 1 {
            return None;
        }
        let it = self.item(i);
        let rep_item = self.item(self.rep);
        Some(if i == self.rep {
            DecisionReason {
                code: DecisionCode::Representative,
                detail: format!(
                    "represents a cluster of {size} near-duplicates (most pixels: {})",
                    it.pixels
                ),
            }
        } else {
            DecisionReason {
                code: DecisionCode::NearDuplicate,
                detail: format!(
                    "near-duplicate in the cluster of {}: pHash distance {}, PDQ distance {} to it",
                    short(&rep_item.id),
                    (it.phash ^ rep_item.phash).count_ones(),
                    it.pdq
                        .iter()
                        .zip(rep_item.pdq.iter())
                        .map(|(a, b)| (a ^ b).count_ones())
                        .sum::<u32>()
                ),
            }
        })
    }

    /// Member `i`'s label, and `train` or, when the cluster's conflict quarantines it,
    /// `quarantined`.
    fn label(
        &self,
        i: u32,
        reasons: &mut Vec<DecisionReason>,
        report: &mut CurateReport,
    ) -> (Label, CurationStatus) {
        let own = self.labels_of(i);
        let own_first = (*own.first().expect("every image has a provenance")).clone();
        match self.resolved {
            Some(l) => {
                if own.iter().any(|o| *o != l) {
                    let others: Vec<&&Label> = own.iter().filter(|o| **o != l).collect();
                    reasons.push(DecisionReason {
                        code: DecisionCode::Relabelled,
                        detail: format!(
                            "found under {} but its cluster was also found under {l} ({}): labelled {l} and removed from {} by conflict_policy = prefer_label",
                            list(&others),
                            self.example(l),
                            list(&others)
                        ),
                    });
                    report.relabelled += 1;
                }
                (l.clone(), CurationStatus::Train)
            }
            None => {
                let policy = self.policy;
                reasons.push(DecisionReason {
                    code: DecisionCode::LabelConflict,
                    detail: format!(
                        "its cluster was found under {} ({}): quarantined by conflict_policy = {}{}",
                        list(&self.labels),
                        list(self.labels.iter().map(|l| self.example(l))),
                        policy.conflict_name(),
                        match &policy.conflict {
                            Conflict::Prefer(p) => format!(" (none of them is {p})"),
                            Conflict::Quarantine => String::new(),
                        }
                    ),
                });
                report.quarantined += 1;
                (own_first, CurationStatus::Quarantined)
            }
        }
    }

    /// The status of a member its label leaves in `status` (`train`): one found in an eval group
    /// is `eval`, unless its cluster holds a train member; then it gets an `eval_leak` reason
    /// and is `excluded`, or stays in `status` when it is also in a train group.
    fn purpose(
        &self,
        i: u32,
        mut status: CurationStatus,
        reasons: &mut Vec<DecisionReason>,
        report: &mut CurateReport,
    ) -> CurationStatus {
        let in_eval = self.has_purpose(i, Purpose::Eval);
        let in_train = self.has_purpose(i, Purpose::Train);
        if in_eval {
            if let Some(t) = self.train_member {
                let purposes = &self.groups.purposes;
                let eval_groups = self.group_names(i, |g| purposes[g as usize] == Purpose::Eval);
                let train_groups = self.group_names(t, |g| purposes[g as usize] == Purpose::Train);
                reasons.push(DecisionReason {
                    code: DecisionCode::EvalLeak,
                    detail: format!(
                        "in eval group {} but its cluster holds training images ({} in group {}): excluded from eval",
                        list(eval_groups),
                        if t == i { "itself".to_string() } else { short(&self.item(t).id) },
                        list(train_groups)
                    ),
                });
                report.eval_excluded += 1;
                if !in_train {
                    status = CurationStatus::Excluded;
                }
            } else {
                status = CurationStatus::Eval;
            }
        }
        status
    }
}

/// The first 12 hex digits of a content id, enough to find it with `--explain`.
pub fn short(id: &ContentId) -> String {
    id.to_hex()[..12].to_string()
}
