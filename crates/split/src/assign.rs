use std::collections::{BTreeMap, BTreeSet, HashMap};

use lennonnet_core::{ContentId, Group, KeyedHasher, Label, ManifestRow, Purpose, Split};
use serde::{Deserialize, Serialize};

/// Domain-separation contexts of the two split hashes. Changing the scheme means changing these
/// strings: the same key then gives another split, never a silently different one.
const TEST_CONTEXT: &str = "lennonnet split test rank v1";
const VAL_CONTEXT: &str = "lennonnet split val draw v1";

/// How to split: the `[split]` section of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The key of both split hashes.
    pub key: String,
    /// Share of the non-test clusters of each class that go to validation.
    pub val_fraction: f64,
    /// Exact number of test images per class.
    pub test_per_class: BTreeMap<String, u32>,
}

/// One curated image, as the splitter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: ContentId,
    pub label: Label,
    pub group: Group,
    pub purpose: Purpose,
    /// Its near-duplicate cluster (the representative's content id).
    pub cluster: ContentId,
    pub bytes: u64,
    pub format: String,
    /// Set when curation excluded or quarantined the image: the reason.
    pub excluded: Option<String>,
    /// Set when a label review gave the image its label: the review in words, starting with
    /// [`reasons::LABEL_REVIEW`] (who and when). With a parent whose label for the image
    /// differs, `moved.jsonl` gives it as the reason of the change.
    pub relabelled: Option<String>,
}

/// An image kept out of the snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Exclusion {
    pub id: ContentId,
    pub reason: String,
}

/// An image of the parent snapshot whose split or label changed, and why. A relabelled image
/// keeps its split (`from` = `to`) unless its cluster moved too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub id: ContentId,
    pub from: Split,
    pub to: Split,
    pub reason: String,
    /// The parent's label for the image, when a label review changed it (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_label: Option<Label>,
    /// The label it carries now, when a label review changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_label: Option<Label>,
}

/// What [`assign`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// Sorted by content id.
    pub rows: Vec<ManifestRow>,
    /// Sorted by content id.
    pub excluded: Vec<Exclusion>,
    pub moved: Vec<Moved>,
    /// Classes whose test holdout could not be filled exactly: (class, wanted, got).
    pub shortfalls: Vec<(String, u32, u32)>,
}

/// Exclusion reasons the splitter itself gives (curation gives its own).
pub mod reasons {
    /// An eval-set image in the same near-duplicate cluster as a training image.
    pub const EVAL_OVERLAPS_TRAIN: &str = "eval_overlaps_train";
    /// A cluster whose training images carry more than one label (curation should have resolved it).
    pub const LABEL_CONFLICT: &str = "label_conflict";
    /// A new image in the same cluster as a frozen test image of the parent snapshot: taking it
    /// would change a frozen holdout, and putting it elsewhere would let the cluster straddle splits.
    pub const HOLDOUT_FROZEN: &str = "holdout_frozen";
    /// A parent image whose cluster now spans splits: it goes to the strictest one.
    pub const CLUSTER_MERGED: &str = "cluster_merged";
    /// A person's label review: a relabelled parent image (in `moved.jsonl`), or an image the
    /// reviewer excluded (in `excluded.jsonl`).
    pub const LABEL_REVIEW: &str = "label_review";
}

/// A cluster of the items to split, with its split key.
struct Cluster<'a> {
    /// The smallest content id among its members: a function of membership only, unlike the
    /// representative, which depends on curation's choice.
    key: ContentId,
    members: Vec<&'a Item>,
    label: &'a Label,
}

/// Splits `items` by `policy`. With a `parent` manifest, every image already in the parent keeps
/// its split (and the test holdout is frozen, its labels corrected by label reviews); only new
/// images are assigned, and holdout shortfalls filled. Parent images that a review relabelled
/// are listed in `moved` with both labels, whether or not their split changed.
pub fn assign(items: &[Item], policy: &Policy, parent: Option<&[ManifestRow]>) -> Assignment {
    let test_hasher = KeyedHasher::new(TEST_CONTEXT, policy.key.as_bytes());
    let val_hasher = KeyedHasher::new(VAL_CONTEXT, policy.key.as_bytes());
    let parent_split: HashMap<ContentId, Split> = parent
        .unwrap_or_default()
        .iter()
        .map(|r| (r.id, r.split))
        .collect();

    let mut ledger = Ledger {
        rows: Vec::with_capacity(items.len()),
        excluded: Vec::new(),
        moved: Vec::new(),
    };
    let clusters = clusters(items, &mut ledger);
    let frozen = place_frozen(&clusters, &parent_split, &mut ledger);
    let holdout = pick_test(&frozen.open, &frozen.test_count, policy, &test_hasher);
    place_open(
        frozen.open,
        &holdout.in_test,
        policy,
        &val_hasher,
        &mut ledger,
    );
    if let Some(parent) = parent {
        note_relabels(items, parent, &mut ledger);
    }

    let Ledger {
        mut rows,
        mut excluded,
        mut moved,
    } = ledger;
    rows.sort_unstable_by_key(|r| r.id);
    excluded.sort_unstable();
    moved.sort_unstable_by_key(|m| m.id);
    Assignment {
        rows,
        excluded,
        moved,
        shortfalls: holdout.shortfalls,
    }
}

/// What the passes of [`assign`] decide, in the order they decide it (sorted at the end).
struct Ledger {
    rows: Vec<ManifestRow>,
    excluded: Vec<Exclusion>,
    moved: Vec<Moved>,
}

impl Ledger {
    fn exclude(&mut self, item: &Item, reason: &str) {
        self.excluded.push(Exclusion {
            id: item.id,
            reason: reason.to_string(),
        })
    }
}

/// Groups the kept items by cluster. A cluster of eval images only goes to eval at once; eval
/// images that share a cluster with training images, and clusters whose training images carry
/// more than one label, are left out. The rest are the clusters to split, in cluster order.
fn clusters<'a>(items: &'a [Item], ledger: &mut Ledger) -> Vec<Cluster<'a>> {
    // Group the kept items by cluster; BTreeMap so that nothing depends on hash order.
    let mut by_cluster: BTreeMap<ContentId, Vec<&Item>> = BTreeMap::new();
    for item in items {
        match &item.excluded {
            Some(reason) => ledger.exclude(item, reason),
            None => by_cluster.entry(item.cluster).or_default().push(item),
        }
    }

    let mut clusters: Vec<Cluster<'_>> = Vec::new();
    for members in by_cluster.into_values() {
        let (train, eval): (Vec<&Item>, Vec<&Item>) = members
            .into_iter()
            .partition(|i| i.purpose == Purpose::Train);
        if train.is_empty() {
            for item in eval {
                ledger.rows.push(row(item, Split::Eval));
            }
            continue;
        }
        for item in eval {
            ledger.exclude(item, reasons::EVAL_OVERLAPS_TRAIN);
        }
        let labels: BTreeSet<&Label> = train.iter().map(|i| &i.label).collect();
        if labels.len() > 1 {
            for item in train {
                ledger.exclude(item, reasons::LABEL_CONFLICT);
            }
            continue;
        }
        let key = train.iter().map(|i| i.id).min().expect("non-empty");
        let label = &train[0].label;
        clusters.push(Cluster {
            key,
            members: train,
            label,
        });
    }
    clusters
}

/// The clusters [`place_frozen`] left open, and the test images each class already has.
struct Frozen<'c, 'a> {
    open: Vec<&'c Cluster<'a>>,
    test_count: BTreeMap<&'a Label, u32>,
}

/// Frozen clusters: those with a member in the parent. They go to the strictest parent split
/// of their members; new members of a frozen test cluster are left out.
fn place_frozen<'c, 'a>(
    clusters: &'c [Cluster<'a>],
    parent_split: &HashMap<ContentId, Split>,
    ledger: &mut Ledger,
) -> Frozen<'c, 'a> {
    let mut open: Vec<&Cluster<'_>> = Vec::new();
    let mut test_count: BTreeMap<&Label, u32> = BTreeMap::new();
    for c in clusters {
        let frozen = c
            .members
            .iter()
            .filter_map(|i| parent_split.get(&i.id))
            .filter(|s| **s != Split::Eval)
            .max_by_key(|s| s.holdout_rank());
        let Some(&split) = frozen else {
            open.push(c);
            continue;
        };
        for item in &c.members {
            match parent_split.get(&item.id) {
                Some(&was) if was != split => {
                    ledger.moved.push(Moved {
                        id: item.id,
                        from: was,
                        to: split,
                        reason: reasons::CLUSTER_MERGED.to_string(),
                        from_label: None,
                        to_label: None,
                    });
                }
                Some(_) => {}
                None if split == Split::Test => {
                    ledger.exclude(item, reasons::HOLDOUT_FROZEN);
                    continue;
                }
                None => {}
            }
            if split == Split::Test {
                *test_count.entry(c.label).or_default() += 1;
            }
            ledger.rows.push(row(item, split));
        }
    }
    Frozen { open, test_count }
}

/// The open clusters chosen for the test holdout, and the classes it could not fill exactly.
struct Holdout {
    in_test: BTreeSet<ContentId>,
    /// (class, wanted, got).
    shortfalls: Vec<(String, u32, u32)>,
}

/// Test holdouts: per class, the lowest-ranked open clusters until the exact count is reached.
/// A cluster that would overshoot is skipped, so the count stays exact while smaller clusters
/// remain.
fn pick_test(
    open: &[&Cluster<'_>],
    test_count: &BTreeMap<&Label, u32>,
    policy: &Policy,
    test_hasher: &KeyedHasher,
) -> Holdout {
    let mut ranked: Vec<([u8; 32], &Cluster<'_>)> = open
        .iter()
        .map(|c| (test_hasher.hash(&[c.key.as_bytes()]), *c))
        .collect();
    ranked.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.key.cmp(&b.1.key)));
    let mut in_test: BTreeSet<ContentId> = BTreeSet::new();
    let mut shortfalls = Vec::new();
    for (class, &wanted) in &policy.test_per_class {
        let have = test_count
            .iter()
            .find(|(l, _)| l.as_str() == class)
            .map_or(0, |(_, n)| *n);
        let mut got = have;
        for (_, c) in ranked.iter().filter(|(_, c)| c.label.as_str() == class) {
            if got >= wanted {
                break;
            }
            let size = c.members.len() as u32;
            if got + size <= wanted {
                got += size;
                in_test.insert(c.key);
            }
        }
        if got != wanted {
            shortfalls.push((class.clone(), wanted, got));
        }
    }
    Holdout {
        in_test,
        shortfalls,
    }
}

/// Everything else: validation by a keyed draw per cluster, train otherwise. The draw depends on
/// the cluster alone, so adding images never moves another cluster.
fn place_open(
    open: Vec<&Cluster<'_>>,
    in_test: &BTreeSet<ContentId>,
    policy: &Policy,
    val_hasher: &KeyedHasher,
    ledger: &mut Ledger,
) {
    for c in open {
        let split = if in_test.contains(&c.key) {
            Split::Test
        } else if unit(&val_hasher.hash(&[c.key.as_bytes()])) < policy.val_fraction {
            Split::Val
        } else {
            Split::Train
        };
        for item in &c.members {
            ledger.rows.push(row(item, split));
        }
    }
}

/// Lists in `moved` every parent image whose label a review changed since the parent: with the
/// split it had and has (a frozen holdout keeps its images), the parent's label and the new one.
fn note_relabels(items: &[Item], parent: &[ManifestRow], ledger: &mut Ledger) {
    let relabelled: HashMap<ContentId, &str> = items
        .iter()
        .filter_map(|i| Some((i.id, i.relabelled.as_deref()?)))
        .collect();
    if relabelled.is_empty() {
        return;
    }
    let parent: HashMap<ContentId, &ManifestRow> = parent.iter().map(|r| (r.id, r)).collect();
    for row in &ledger.rows {
        let (Some(why), Some(was)) = (relabelled.get(&row.id), parent.get(&row.id)) else {
            continue;
        };
        if was.label == row.label {
            continue;
        }
        let (from_label, to_label) = (Some(was.label.clone()), Some(row.label.clone()));
        match ledger.moved.iter_mut().find(|m| m.id == row.id) {
            Some(m) => {
                m.reason = format!("{}; {why}", m.reason);
                m.from_label = from_label;
                m.to_label = to_label;
            }
            None => ledger.moved.push(Moved {
                id: row.id,
                from: was.split,
                to: row.split,
                reason: why.to_string(),
                from_label,
                to_label,
            }),
        }
    }
}

fn row(item: &Item, split: Split) -> ManifestRow {
    ManifestRow {
        id: item.id,
        label: item.label.clone(),
        group: item.group.clone(),
        split,
        cluster: item.cluster,
        bytes: item.bytes,
        format: item.format.clone(),
    }
}

/// A hash as a number in [0, 1): its first 8 bytes over 2^64.
fn unit(hash: &[u8; 32]) -> f64 {
    let n = u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
    (n >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
