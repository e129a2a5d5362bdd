//! Label reviews applied to the splitter's items: per cluster, sticky through curation, and the
//! same store state giving the same manifest.

#[path = "../../../store/tests/common/synth.rs"]
mod synth;

use std::collections::BTreeMap;
use std::path::Path;

use lennonnet_core::{Label, NoProgress, Purpose, Split};
use lennonnet_split::snapshot::manifest_bytes;
use lennonnet_split::{Item, assign};
use lennonnet_store::{Rules, Timestamp};

use super::*;

fn l(s: &str) -> Label {
    Label::new(s).unwrap()
}

const CONFIG: &str = r#"[dataset]
name = "t"

[[class]]
name = "john"

[[class]]
name = "not_john"

[[group]]
name = "john"
label = "john"
wanted = 10
queries = ["john"]

[[group]]
name = "paul"
label = "not_john"
wanted = 10
queries = ["paul"]

[split]
key = "k"
val_fraction = 0.3
"#;

fn review(id: ContentId, at: i64, action: ReviewAction) -> LabelReview {
    LabelReview {
        id,
        at: Timestamp(at),
        old_label: l("john"),
        action,
        reviewer: "ada".into(),
        run: Some("r1".into()),
    }
}

fn prov(group: &str, url: &str) -> lennonnet_store::Provenance {
    let label = if group == "john" { "john" } else { "not_john" };
    lennonnet_store::Provenance {
        group: Group::new(group).unwrap(),
        label: l(label),
        purpose: Purpose::Train,
        image_url: url.to_string(),
        query_id: None,
        query_text: None,
        engine: None,
        rank: None,
        page_url: None,
        title: None,
        licence: None,
        thumbnail_of: None,
        fetched_at: Timestamp(0),
    }
}

/// (label, excluded, relabelled) of each named item.
fn view<'a>(
    items: &[Item],
    ids: &BTreeMap<&'a str, ContentId>,
) -> BTreeMap<&'a str, (String, Option<String>, bool)> {
    ids.iter()
        .map(|(name, id)| {
            let i = items.iter().find(|i| i.id == *id).unwrap();
            (
                *name,
                (
                    i.label.to_string(),
                    i.excluded.clone(),
                    i.relabelled.is_some(),
                ),
            )
        })
        .collect()
}

#[test]
fn reviews_apply_per_cluster_survive_curation_and_give_the_same_manifest() {
    let config = lennonnet_config::parse(CONFIG, Path::new("t.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Rules::default()).unwrap();
    let pic = |seed| synth::scene(seed, 320, 240);
    let a = pic(21);
    let files = [
        ("a", "john", synth::jpeg(&a, 90)),
        ("a_copy", "john", synth::Copy::Resize(50).apply(&a, 1)),
        ("b", "paul", synth::jpeg(&pic(22), 90)),
        ("c", "paul", synth::jpeg(&pic(23), 90)),
        ("d", "john", synth::jpeg(&pic(24), 90)),
        ("e", "john", synth::jpeg(&pic(25), 90)),
    ];
    let mut ids = BTreeMap::new();
    for (name, group, bytes) in files {
        let o = store
            .ingest(&bytes, prov(group, &format!("https://h.test/{name}")))
            .unwrap();
        ids.insert(name, o.id);
    }
    let policy = lennonnet_curate::Policy::from_config(&config);
    lennonnet_curate::curate(&store, &policy, &NoProgress).unwrap();
    let a_decision = store.decision(&ids["a_copy"]).unwrap().unwrap();
    assert_eq!(a_decision.cluster_size, 2, "a and a_copy are one cluster");
    let before = items(&config, &store).unwrap();

    // a_copy is not John (and so neither is a, its near-duplicate); b is; c is nobody; d's
    // label is right; e was relabelled, then the relabel undone.
    let john = ReviewAction::Relabel { label: l("john") };
    let not_john = ReviewAction::Relabel {
        label: l("not_john"),
    };
    store
        .record_label_reviews(vec![
            review(ids["a_copy"], 10, not_john.clone()),
            review(ids["b"], 10, john),
            review(ids["c"], 10, ReviewAction::Exclude),
            review(ids["d"], 10, ReviewAction::Confirm),
            review(ids["e"], 10, not_john),
        ])
        .wait()
        .unwrap();
    store
        .record_label_reviews(vec![review(ids["e"], 20, ReviewAction::Clear)])
        .wait()
        .unwrap();
    let want: BTreeMap<&str, (String, Option<String>, bool)> = [
        ("a", ("not_john", None, true)),
        ("a_copy", ("not_john", None, true)),
        ("b", ("john", None, true)),
        ("c", ("not_john", Some("label_review"), false)),
        ("d", ("john", None, false)),
        ("e", ("john", None, false)),
    ]
    .into_iter()
    .map(|(n, (label, ex, re))| (n, (label.to_string(), ex.map(String::from), re)))
    .collect();
    let reviewed_items = items(&config, &store).unwrap();
    assert_eq!(view(&reviewed_items, &ids), want);
    assert_eq!(reviewed(&reviewed_items), (3, 1));
    let a_item = reviewed_items.iter().find(|i| i.id == ids["a"]).unwrap();
    assert_eq!(
        a_item.relabelled.as_deref(),
        Some(
            format!(
                "label_review by ada at 1970-01-01T00:00:00.010Z (run r1) of near-duplicate {}",
                ids["a_copy"]
            )
            .as_str()
        )
    );

    // Curating again writes nothing and undoes no review.
    let again = lennonnet_curate::curate(&store, &policy, &NoProgress).unwrap();
    assert_eq!(again.decisions_written, 0);
    assert_eq!(items(&config, &store).unwrap(), reviewed_items);

    // The same store state gives a byte-identical manifest, also from a rebuilt index; the
    // parent made before the reviews lists the relabelled images with both labels.
    let split_policy = super::policy(&config);
    let manifest = |items: &[Item]| manifest_bytes(&assign(items, &split_policy, None).rows);
    let parent = assign(&before, &split_policy, None);
    let next = assign(&reviewed_items, &split_policy, Some(&parent.rows));
    let moved: Vec<_> = next
        .moved
        .iter()
        .map(|m| (m.id, m.from_label.clone(), m.to_label.clone()))
        .collect();
    let mut want_moved = vec![
        (ids["a"], Some(l("john")), Some(l("not_john"))),
        (ids["a_copy"], Some(l("john")), Some(l("not_john"))),
        (ids["b"], Some(l("not_john")), Some(l("john"))),
    ];
    want_moved.sort();
    assert_eq!(moved, want_moved);
    assert!(
        next.moved
            .iter()
            .all(|m| m.from == m.to && m.to != Split::Eval)
    );
    let first = manifest(&reviewed_items);
    store.close().unwrap();
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (store, _) = Store::open_with(dir.path(), Rules::default(), true).unwrap();
    assert_eq!(manifest(&items(&config, &store).unwrap()), first);
}

fn item(n: u8, cluster: u8, label: &str, excluded: Option<&str>) -> Item {
    Item {
        id: ContentId::from_bytes([n; 32]),
        label: l(label),
        group: Group::new("g").unwrap(),
        purpose: Purpose::Train,
        cluster: ContentId::from_bytes([cluster; 32]),
        bytes: 1,
        format: "jpeg".into(),
        excluded: excluded.map(String::from),
        relabelled: None,
    }
}

#[test]
fn the_latest_review_of_a_cluster_wins_and_curation_quarantines_stay() {
    let id = |n: u8| ContentId::from_bytes([n; 32]);
    let mut items = vec![
        item(1, 1, "john", None),
        item(2, 1, "john", None),
        item(3, 3, "john", Some("suspect_label")),
        item(4, 4, "john", Some("label_conflict")),
    ];
    let reviews = [
        // Cluster 1: an exclusion of 1, then a relabel of 2: the relabel wins for both.
        review(id(1), 10, ReviewAction::Exclude),
        review(
            id(2),
            20,
            ReviewAction::Relabel {
                label: l("not_john"),
            },
        ),
        // Quarantined by curation: a relabel or a confirmation does not let them in.
        review(
            id(3),
            10,
            ReviewAction::Relabel {
                label: l("not_john"),
            },
        ),
        review(id(4), 10, ReviewAction::Confirm),
    ];
    let mut reversed = items.clone();
    let mut backwards = reviews.to_vec();
    backwards.reverse();
    apply_reviews(&mut items, &reviews);
    apply_reviews(&mut reversed, &backwards);
    assert_eq!(items, reversed, "the order of the reviews matters");
    let got: Vec<_> = items
        .iter()
        .map(|i| (i.label.as_str(), i.excluded.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("not_john", None),
            ("not_john", None),
            ("john", Some("suspect_label")),
            ("john", Some("label_conflict")),
        ]
    );
    // The exclusion at the same time as the relabel, but of the larger id, wins the tie.
    let mut tied = vec![item(1, 1, "john", None), item(2, 1, "john", None)];
    let tie = [
        review(id(1), 20, ReviewAction::Relabel { label: l("x") }),
        review(id(2), 20, ReviewAction::Exclude),
    ];
    apply_reviews(&mut tied, &tie);
    assert!(
        tied.iter()
            .all(|i| i.excluded.as_deref() == Some("label_review"))
    );
}
