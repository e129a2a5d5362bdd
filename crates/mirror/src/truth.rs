//! The mirror's truth in evaluation's terms: which class each scored image truly belongs to.

use std::collections::{BTreeMap, BTreeSet};

use lennonnet_core::{ContentId, ManifestRow};
use lennonnet_records::eval::{Source, Truth};

use crate::world::{QuerySubject, World};

/// The truth of each image whose URLs carry this world's tokens. The positive class's identities
/// are the mirror subjects that the positive groups' queries resolve to (John for "John Lennon
/// portrait"); an image is truly positive when one of them is in the picture, else truly the
/// other class. Only for two-class runs.
pub fn eval_truth(
    world: &World,
    rows: &[ManifestRow],
    sources: &BTreeMap<ContentId, Vec<Source>>,
    positive_queries: &BTreeSet<String>,
    classes: &[String],
) -> BTreeMap<ContentId, Truth> {
    let mut out = BTreeMap::new();
    if classes.len() != 2 {
        tracing::warn!(
            classes = classes.len(),
            "ground truth is only mapped to classes for two-class runs: skipped"
        );
        return out;
    }
    let mut positive: BTreeSet<String> = BTreeSet::new();
    for q in positive_queries {
        match world.resolve(q) {
            QuerySubject::Beatle(b) => {
                positive.insert(b.as_str().to_string());
            }
            QuerySubject::Corpus(g) => {
                if let Some(c) = &world.corpus {
                    positive.insert(c.groups[g as usize].name.clone());
                }
            }
            _ => {}
        }
    }
    tracing::debug!(?positive, "identities of the positive class");
    for r in rows {
        let Some(t) = sources
            .get(&r.id)
            .into_iter()
            .flatten()
            .find_map(|s| crate::server::truth_of_url(world, &s.url))
        else {
            continue;
        };
        let is_pos = t.identities.iter().any(|i| positive.contains(i));
        out.insert(
            r.id,
            Truth {
                class: classes[usize::from(!is_pos)].clone(),
                name: t.name,
                identities: t.identities,
            },
        );
    }
    out
}
