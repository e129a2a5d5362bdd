//! Label reviews: a person's relabel, exclusion, confirmation or undo of one image's label,
//! journaled as `label_review` records beside curation's decisions (and never replaced by them).

use super::*;
use crate::record::LabelReview;

impl Store {
    /// Records label reviews as one batch: durable once the [`Ack`] resolves. The latest review
    /// of an id is in force; write [`crate::ReviewAction::Clear`] to undo a review when the
    /// image had none before it.
    pub fn record_label_reviews(&self, reviews: Vec<LabelReview>) -> Ack {
        let records = reviews
            .into_iter()
            .map(|review| Record::LabelReview {
                v: RECORD_VERSION,
                review,
            })
            .collect();
        self.journal.append(records, Vec::new())
    }

    /// The review of `id` in force: `None` when it has none, or its latest is a `clear`.
    pub fn label_review(&self, id: &ContentId) -> Result<Option<LabelReview>> {
        self.index.label_review(id)
    }

    /// Every review of `id` (clears included), oldest first.
    pub fn label_review_history(&self, id: &ContentId) -> Result<Vec<LabelReview>> {
        Ok(self
            .index
            .review_log(id)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Every review in force (never a `clear`), by content id.
    pub fn label_reviews(&self) -> impl Iterator<Item = Result<LabelReview>> + '_ {
        self.index.review.iter().map(move |kv| {
            let (k, v) = kv.map_err(|e| self.index.sled_err(e))?;
            let id = id_from(&k).unwrap_or(ContentId::from_bytes([0; 32]));
            decode(&v, "review", &id)
        })
    }
}
