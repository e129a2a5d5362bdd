//! Label reviews: journaled, sticky, undone by `clear`, and kept through an index rebuild.

mod common;

use common::{prov, synth};
use lennonnet_core::{ContentId, Label};
use lennonnet_store::{LabelReview, ReviewAction, Rules, Store, Timestamp};

fn l(s: &str) -> Label {
    Label::new(s).unwrap()
}

fn review(id: ContentId, at: i64, action: ReviewAction) -> LabelReview {
    LabelReview {
        id,
        at: Timestamp(at),
        old_label: l("not_john"),
        action,
        reviewer: "ada".into(),
        run: Some("run-1".into()),
    }
}

fn ingest(store: &Store, n: u64) -> Vec<ContentId> {
    (0..n)
        .map(|i| {
            let bytes = synth::jpeg(&synth::scene(100 + i, 120, 90), 85);
            let url = format!("https://h.test/{i}");
            store
                .ingest(&bytes, prov(&url, "paul", "not_john"))
                .unwrap()
                .id
        })
        .collect()
}

/// The actions of every review in force, by id.
fn in_force(store: &Store) -> Vec<(ContentId, ReviewAction)> {
    store
        .label_reviews()
        .map(|r| r.map(|r| (r.id, r.action)).unwrap())
        .collect()
}

#[test]
fn reviews_survive_reopening_and_an_index_rebuilt_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Rules::default()).unwrap();
    let ids = ingest(&store, 4);
    let john = ReviewAction::Relabel { label: l("john") };
    store
        .record_label_reviews(vec![
            review(ids[0], 10, john.clone()),
            review(ids[1], 10, ReviewAction::Exclude),
            review(ids[2], 10, ReviewAction::Confirm),
        ])
        .wait()
        .unwrap();
    // A second look changes the mind about one image.
    store
        .record_label_reviews(vec![review(ids[1], 20, ReviewAction::Confirm)])
        .wait()
        .unwrap();
    let mut want = vec![
        (ids[0], john.clone()),
        (ids[1], ReviewAction::Confirm),
        (ids[2], ReviewAction::Confirm),
    ];
    want.sort_by_key(|(id, _)| *id);
    let check = |store: &Store| {
        assert_eq!(in_force(store), want);
        assert_eq!(
            store.label_review(&ids[0]).unwrap(),
            Some(review(ids[0], 10, john.clone()))
        );
        assert_eq!(store.label_review(&ids[3]).unwrap(), None);
        let history: Vec<_> = store
            .label_review_history(&ids[1])
            .unwrap()
            .into_iter()
            .map(|r| (r.at, r.action))
            .collect();
        assert_eq!(
            history,
            [
                (Timestamp(10), ReviewAction::Exclude),
                (Timestamp(20), ReviewAction::Confirm)
            ]
        );
        assert!(store.label_review_history(&ids[3]).unwrap().is_empty());
    };
    check(&store);
    let before = store.dump_index().unwrap();
    store.close().unwrap();

    let (store, report) = Store::open_with(dir.path(), Rules::default(), false).unwrap();
    assert_eq!(report.rebuilt, None);
    check(&store);
    store.close().unwrap();

    // `store reindex`: the index deleted and rebuilt from the journal alone.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (store, report) = Store::open_with(dir.path(), Rules::default(), true).unwrap();
    assert!(report.rebuilt.is_some());
    check(&store);
    assert_eq!(store.dump_index().unwrap(), before);
    store.close().unwrap();

    // A reader that rebuilds into a temporary index answers alike.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (store, _) = Store::open_read_only(dir.path(), Rules::default()).unwrap();
    check(&store);
}

#[test]
fn a_clear_undoes_the_review_in_force_and_stays_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Rules::default()).unwrap();
    let ids = ingest(&store, 2);
    store
        .record_label_reviews(vec![
            review(ids[0], 10, ReviewAction::Exclude),
            review(ids[1], 10, ReviewAction::Exclude),
        ])
        .wait()
        .unwrap();
    store
        .record_label_reviews(vec![review(ids[0], 20, ReviewAction::Clear)])
        .wait()
        .unwrap();
    assert_eq!(store.label_review(&ids[0]).unwrap(), None);
    assert_eq!(in_force(&store), [(ids[1], ReviewAction::Exclude)]);
    let actions: Vec<_> = store
        .label_review_history(&ids[0])
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, [ReviewAction::Exclude, ReviewAction::Clear]);
    // A new review after the undo is in force again, also after a rebuild.
    store
        .record_label_reviews(vec![review(ids[0], 30, ReviewAction::Confirm)])
        .wait()
        .unwrap();
    store.close().unwrap();
    let (store, _) = Store::open_with(dir.path(), Rules::default(), true).unwrap();
    assert_eq!(
        store.label_review(&ids[0]).unwrap().map(|r| r.action),
        Some(ReviewAction::Confirm)
    );
    assert_eq!(store.label_review_history(&ids[0]).unwrap().len(), 3);
}
