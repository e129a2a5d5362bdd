//! Evaluation's view of the store: the search results that led to each image.

use std::collections::{BTreeMap, BTreeSet};

use lennonnet_core::{ContentId, ManifestRow};
use lennonnet_records::eval::Source;
use lennonnet_store::Store;

use crate::error::Result;

/// Every search result that led to each image.
pub type SourceMap = BTreeMap<ContentId, Vec<Source>>;

/// Every search result that led to each image, sorted; and the query texts of the groups
/// labelled `positive` (what the positive class was searched for).
pub fn sources(
    store: &Store,
    rows: &[ManifestRow],
    positive: &str,
) -> Result<(SourceMap, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    let mut queries = BTreeSet::new();
    for r in rows {
        let provenance = store.provenance(&r.id)?;
        for p in &provenance {
            if let (true, Some(q)) = (p.label.as_str() == positive, &p.query_text) {
                queries.insert(q.clone());
            }
        }
        let mut s: Vec<Source> = provenance
            .into_iter()
            .map(|p| Source {
                query: p.query_text.unwrap_or_default(),
                engine: p
                    .engine
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_else(|| "local".into()),
                url: p.image_url,
            })
            .collect();
        s.sort();
        s.dedup();
        out.insert(r.id, s);
    }
    Ok((out, queries))
}
