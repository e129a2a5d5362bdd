//! The splitter's view of the curated store.

use std::collections::BTreeMap;

use lennonnet_config::Config;
use lennonnet_core::{ContentId, Group, Purpose};
use lennonnet_split::{Item, Policy, reasons};
use lennonnet_store::{CurationStatus, DecisionCode, LabelReview, ReviewAction, Store};

use crate::error::{DatasetError, Result};

/// The config's split policy (`[split]`).
pub fn policy(config: &Config) -> Policy {
    Policy {
        key: config.split.key.clone(),
        val_fraction: config.split.val_fraction,
        test_per_class: config.split.test_per_class.clone(),
    }
}

/// The splitter's view of the curated store: one item per accepted image, from its current
/// curation decision and the label reviews in force ([`apply_reviews`]).
pub fn items(config: &Config, store: &Store) -> Result<Vec<Item>> {
    let purpose_of: BTreeMap<&str, Purpose> = config
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.purpose))
        .collect();
    let mut items = Vec::new();
    let mut uncurated = 0u64;
    let mut no_provenance = 0u64;
    for entry in store.images() {
        let (id, meta) = entry?;
        let Some(d) = store.decision(&id)? else {
            // Curation leaves out images that no provenance names (it has no label for them).
            if store.has_provenance(&id)? {
                uncurated += 1;
            } else {
                no_provenance += 1;
            }
            continue;
        };
        let purpose = match d.status {
            CurationStatus::Eval => Purpose::Eval,
            _ => Purpose::Train,
        };
        // The image's group: the first of its groups with the decision's purpose (word groups
        // are train groups), else its first group.
        let group_purpose = |g: &Group| {
            purpose_of
                .get(g.as_str())
                .copied()
                .unwrap_or(Purpose::Train)
        };
        let group = d
            .groups
            .iter()
            .find(|g| group_purpose(g) == purpose)
            .or(d.groups.first())
            .cloned()
            .ok_or_else(|| DatasetError::NoGroup { id: id.to_string() })?;
        let excluded = match d.status {
            CurationStatus::Train | CurationStatus::Eval => None,
            // The reason that explains the status (a label conflict, an eval leak), not the
            // cluster role that comes first in the list.
            CurationStatus::Quarantined | CurationStatus::Excluded => Some(
                d.reasons
                    .iter()
                    .find(|r| {
                        matches!(
                            r.code,
                            DecisionCode::LabelConflict
                                | DecisionCode::EvalLeak
                                | DecisionCode::SuspectLabel
                        )
                    })
                    .map(|r| r.code.as_str().to_string())
                    .unwrap_or_else(|| d.status.as_str().to_string()),
            ),
        };
        items.push(Item {
            id,
            label: d.label.clone(),
            group,
            purpose,
            cluster: d.cluster,
            bytes: meta.bytes,
            format: meta.format.as_str().to_string(),
            excluded,
            relabelled: None,
        });
    }
    if no_provenance > 0 {
        tracing::warn!(
            images = no_provenance,
            "left out: no provenance names them (an interrupted scrape or `store add`: rerun it, then curate)"
        );
    }
    if uncurated > 0 {
        return Err(DatasetError::Uncurated { uncurated });
    }
    let reviews = store
        .label_reviews()
        .collect::<lennonnet_store::Result<Vec<_>>>()?;
    apply_reviews(&mut items, &reviews);
    Ok(items)
}

/// Applies the label reviews in force to the items, per near-duplicate cluster: a review of any
/// member applies to the whole cluster, and the latest review among its members (by time, then
/// content id) wins. `relabel` gives every member the review's label (noting the review in
/// [`Item::relabelled`] where the label changes), `exclude` leaves them out with reason
/// `label_review`, `confirm` changes nothing. An image curation already leaves out (quarantined,
/// excluded) stays out with curation's reason: only `curate --release` lifts a quarantine.
/// Depends only on the items and the reviews, never on their order.
pub fn apply_reviews(items: &mut [Item], reviews: &[LabelReview]) {
    let by_id: BTreeMap<ContentId, &LabelReview> = reviews
        .iter()
        .filter(|r| r.in_force())
        .map(|r| (r.id, r))
        .collect();
    let mut by_cluster: BTreeMap<ContentId, &LabelReview> = BTreeMap::new();
    for item in items.iter() {
        let Some(&r) = by_id.get(&item.id) else {
            continue;
        };
        let latest = by_cluster.entry(item.cluster).or_insert(r);
        if (r.at, r.id) > (latest.at, latest.id) {
            *latest = r;
        }
    }
    for item in items.iter_mut() {
        let Some(r) = by_cluster.get(&item.cluster) else {
            continue;
        };
        if item.excluded.is_some() {
            continue;
        }
        match &r.action {
            ReviewAction::Relabel { label } if *label != item.label => {
                item.label = label.clone();
                item.relabelled = Some(review_note(r, &item.id));
            }
            ReviewAction::Exclude => item.excluded = Some(reasons::LABEL_REVIEW.to_string()),
            ReviewAction::Relabel { .. } | ReviewAction::Confirm | ReviewAction::Clear => {}
        }
    }
}

/// A review in words, for `moved.jsonl`: `label_review by ada at 2025-…Z (run r1)`, naming the
/// reviewed image when it is another member of the item's cluster.
fn review_note(r: &LabelReview, item: &ContentId) -> String {
    let mut s = format!("{} by {} at {}", reasons::LABEL_REVIEW, r.reviewer, r.at);
    if let Some(run) = &r.run {
        s += &format!(" (run {run})");
    }
    if r.id != *item {
        s += &format!(" of near-duplicate {}", r.id);
    }
    s
}

/// How many items the label reviews relabelled and excluded (for the snapshot's summary).
pub fn reviewed(items: &[Item]) -> (u64, u64) {
    let relabelled = items.iter().filter(|i| i.relabelled.is_some()).count();
    let excluded = items
        .iter()
        .filter(|i| i.excluded.as_deref() == Some(reasons::LABEL_REVIEW))
        .count();
    (relabelled as u64, excluded as u64)
}

#[cfg(test)]
mod tests;
