//! The splitter's view of the curated store.

use std::collections::BTreeMap;

use lennonnet_config::Config;
use lennonnet_core::{Group, Purpose};
use lennonnet_split::{Item, Policy};
use lennonnet_store::{CurationStatus, DecisionCode, Store};

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
/// curation decision.
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
    Ok(items)
}
