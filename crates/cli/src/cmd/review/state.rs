//! What the review server knows: the run's suspects and classes, the reviews in force (read from
//! the store at start, kept in step with every write), and the undo stack. Every action is a
//! `label_review` record written through the store and waited for before it is answered.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use lennonnet_core::{ContentId, Label};
use lennonnet_records::eval::Suspect;
use lennonnet_store::{LabelReview, ReviewAction, Store, Timestamp};
use serde::Deserialize;

/// An action the page asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Asked {
    Relabel { id: String, label: String },
    Exclude { id: String },
    Confirm { id: String },
}

/// One entry of the undo stack: the image and its review in force before the action.
struct Undo {
    id: ContentId,
    before: Option<LabelReview>,
}

/// The reviews in force and the undo stack, changed only together with the journal.
#[derive(Default)]
struct Book {
    in_force: HashMap<ContentId, LabelReview>,
    undo: Vec<Undo>,
}

pub struct ReviewState {
    store: Store,
    pub classes: Vec<String>,
    pub run_name: String,
    pub reviewer: String,
    /// Suspect id (hex) → the label it carried in the snapshot.
    labels: HashMap<String, Label>,
    /// suspects.jsonl's rows as the page gets them, serialised once.
    pub suspects_json: String,
    book: Mutex<Book>,
}

/// Why an action was not journaled.
#[derive(Debug)]
pub enum Refused {
    /// The request was wrong (an unknown id or class, nothing to undo).
    Bad(String),
    /// The journal could not be written.
    Failed(String),
}

/// What the page gets back after an action or an undo: the image and its review in force.
#[derive(Debug, serde::Serialize)]
pub struct Answer {
    pub id: String,
    pub review: Option<LabelReview>,
}

impl ReviewState {
    /// Reads the reviews in force of every suspect from `store`.
    pub fn new(
        store: Store,
        classes: Vec<String>,
        run_name: String,
        reviewer: String,
        suspects: &[Suspect],
    ) -> anyhow::Result<Self> {
        let mut labels = HashMap::with_capacity(suspects.len());
        let mut book = Book::default();
        for s in suspects {
            let id: ContentId =
                s.id.parse()
                    .map_err(|e| anyhow!("suspect {}: not a content id: {e}", s.rank))?;
            let label = Label::new(&s.label)
                .map_err(|e| anyhow!("suspect {}: bad label `{}`: {e}", s.rank, s.label))?;
            labels.insert(s.id.clone(), label);
            let found = store
                .label_review(&id)
                .with_context(|| format!("cannot read the review of {id}"))?;
            if let Some(r) = found.filter(LabelReview::in_force) {
                book.in_force.insert(id, r);
            }
        }
        Ok(Self {
            store,
            classes,
            run_name,
            reviewer,
            labels,
            suspects_json: serde_json::to_string(suspects)?,
            book: Mutex::new(book),
        })
    }

    /// The reviews in force, by id, as JSON.
    pub fn reviews_json(&self) -> String {
        let book = self.book.lock().expect("review book poisoned");
        let map: HashMap<String, &LabelReview> =
            book.in_force.iter().map(|(k, v)| (k.to_hex(), v)).collect();
        serde_json::to_string(&map).expect("reviews serialise")
    }

    /// Journals `asked` and waits until it is durable. Blocking.
    pub fn apply(&self, asked: Asked) -> Result<Answer, Refused> {
        let (id, action) = match asked {
            Asked::Relabel { id, label } => {
                if !self.classes.contains(&label) {
                    return Err(Refused::Bad(format!(
                        "`{label}` is not a class of this run"
                    )));
                }
                let label = Label::new(&label).map_err(|e| Refused::Bad(e.to_string()))?;
                (id, ReviewAction::Relabel { label })
            }
            Asked::Exclude { id } => (id, ReviewAction::Exclude),
            Asked::Confirm { id } => (id, ReviewAction::Confirm),
        };
        let (cid, old_label) = self.suspect(&id).map_err(Refused::Bad)?;
        let mut book = self.book.lock().expect("review book poisoned");
        let before = book.in_force.get(&cid).cloned();
        let review = self.review(cid, old_label, action);
        self.write(&mut book, review).map_err(Refused::Failed)?;
        book.undo.push(Undo { id: cid, before });
        Ok(self.answer(&book, cid))
    }

    /// Undoes the last action: journals the review that was in force before it (or `Clear`).
    pub fn undo(&self) -> Result<Answer, Refused> {
        let mut book = self.book.lock().expect("review book poisoned");
        let Some(last) = book.undo.pop() else {
            return Err(Refused::Bad("nothing to undo".into()));
        };
        let old_label = self.labels[&last.id.to_hex()].clone();
        let action = last
            .before
            .as_ref()
            .map_or(ReviewAction::Clear, |b| b.action.clone());
        let review = self.review(last.id, old_label, action);
        if let Err(e) = self.write(&mut book, review) {
            book.undo.push(last);
            return Err(Refused::Failed(e));
        }
        Ok(self.answer(&book, last.id))
    }

    fn suspect(&self, id: &str) -> Result<(ContentId, Label), String> {
        let label = self
            .labels
            .get(id)
            .ok_or_else(|| format!("{id} is not one of this run's suspects"))?;
        let cid = id.parse().map_err(|e| format!("{id}: {e}"))?;
        Ok((cid, label.clone()))
    }

    fn review(&self, id: ContentId, old_label: Label, action: ReviewAction) -> LabelReview {
        LabelReview {
            id,
            at: Timestamp::now(),
            old_label,
            action,
            reviewer: self.reviewer.clone(),
            run: Some(self.run_name.clone()),
        }
    }

    /// Writes one review to the journal, waits for it to be durable, then updates the book.
    fn write(&self, book: &mut Book, review: LabelReview) -> Result<(), String> {
        let id = review.id;
        self.store
            .record_label_reviews(vec![review.clone()])
            .wait()
            .map_err(|e| format!("cannot journal the review of {id}: {e}"))?;
        tracing::info!(%id, action = %review.action, reviewer = %review.reviewer, "review journaled");
        if review.in_force() {
            book.in_force.insert(id, review);
        } else {
            book.in_force.remove(&id);
        }
        Ok(())
    }

    fn answer(&self, book: &Book, id: ContentId) -> Answer {
        Answer {
            id: id.to_hex(),
            review: book.in_force.get(&id).cloned(),
        }
    }

    /// Closes the store (its journal flushed, its index marked clean).
    pub fn close(self) -> anyhow::Result<()> {
        self.store.close().context("cannot close the store")
    }
}

/// The reviewer's name: the config's `curate.reviewer`, else `$USER`, else "unknown".
pub fn reviewer(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use lennonnet_core::{Group, Purpose};
    use lennonnet_store::{Provenance, Rules};

    use super::*;

    fn store_with_one_image(dir: &std::path::Path) -> (Store, ContentId) {
        let rules = Rules {
            min_side_px: 16,
            max_pixels: 1_000_000,
            animated: lennonnet_store::Animated::FirstFrame,
        };
        let store = Store::open(dir, rules).unwrap();
        let img =
            image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 9]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let prov = Provenance::local(
            std::path::Path::new("x.png"),
            Group::new("group_a").unwrap(),
            Label::new("a").unwrap(),
            Purpose::Train,
        );
        let id = store.ingest(png.get_ref(), prov).unwrap().id;
        (store, id)
    }

    fn suspect(id: &ContentId) -> Suspect {
        serde_json::from_value(serde_json::json!({
            "rank": 1, "id": id.to_hex(), "split": "train", "group": "group_a", "label": "a",
            "suggested": "b", "p_label": 0.1, "p_suggested": 0.9, "margin": 0.8,
            "truth": null, "sources": [], "thumbnail": null,
        }))
        .unwrap()
    }

    fn state(store: Store, id: &ContentId) -> ReviewState {
        let classes = vec!["a".to_string(), "b".to_string()];
        ReviewState::new(store, classes, "r1".into(), "ada".into(), &[suspect(id)]).unwrap()
    }

    fn action(a: &Answer) -> Option<ReviewAction> {
        a.review.as_ref().map(|r| r.action.clone())
    }

    #[test]
    fn undo_restores_the_review_in_force_before_the_action() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, id) = store_with_one_image(tmp.path());
        let s = state(store, &id);
        let hex = id.to_hex();
        let b = Label::new("b").unwrap();

        let relabel = Asked::Relabel {
            id: hex.clone(),
            label: "b".into(),
        };
        let a = s.apply(relabel).unwrap();
        assert_eq!(action(&a), Some(ReviewAction::Relabel { label: b.clone() }));
        assert_eq!(action(&s.undo().unwrap()), None);
        assert_eq!(
            action(&s.apply(Asked::Exclude { id: hex.clone() }).unwrap()),
            Some(ReviewAction::Exclude)
        );
        assert_eq!(
            action(&s.apply(Asked::Confirm { id: hex.clone() }).unwrap()),
            Some(ReviewAction::Confirm)
        );
        // Undoing the confirmation brings the exclusion back, then nothing.
        assert_eq!(action(&s.undo().unwrap()), Some(ReviewAction::Exclude));
        assert_eq!(action(&s.undo().unwrap()), None);
        assert!(matches!(s.undo(), Err(Refused::Bad(_))));
        // Unknown classes and images are refused and journal nothing.
        let bad = Asked::Relabel {
            id: hex.clone(),
            label: "c".into(),
        };
        assert!(matches!(s.apply(bad), Err(Refused::Bad(_))));
        let other = Asked::Exclude {
            id: ContentId::of(b"other").to_hex(),
        };
        assert!(matches!(s.apply(other), Err(Refused::Bad(_))));
        assert!(s.reviews_json() == "{}");

        let _ = s.apply(Asked::Exclude { id: hex.clone() }).unwrap();
        let store = s.store;
        let history: Vec<String> = store
            .label_review_history(&id)
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!((r.reviewer.as_str(), r.run.as_deref()), ("ada", Some("r1")));
                assert_eq!(r.old_label.as_str(), "a");
                r.action.to_string()
            })
            .collect();
        assert_eq!(
            history,
            [
                "relabel as b",
                "clear",
                "exclude",
                "confirm",
                "exclude",
                "clear",
                "exclude"
            ]
        );
        // A new server reads the review in force back.
        let s = state(store, &id);
        assert!(
            s.reviews_json().contains(r#""action":"exclude""#),
            "{}",
            s.reviews_json()
        );
        s.close().unwrap();
    }
}
