use std::collections::{BTreeMap, HashMap};

use lennonnet_core::{ContentId, Group, Label, ManifestRow, Purpose, Split};

use super::*;

fn id(n: u64) -> ContentId {
    ContentId::of(&n.to_le_bytes())
}

/// `n` items: every 5th belongs to the cluster of the item before it; one in 8 is `john`.
fn items(range: std::ops::Range<u64>) -> Vec<Item> {
    range
        .map(|n| {
            let cluster_of = if n % 5 == 4 { n - 1 } else { n };
            let john = cluster_of % 8 == 0;
            Item {
                id: id(n),
                label: Label::new(if john { "john" } else { "not_john" }).unwrap(),
                group: Group::new(if john { "john" } else { "person" }).unwrap(),
                purpose: Purpose::Train,
                cluster: id(cluster_of),
                bytes: 1000 + n,
                format: "jpg".into(),
                excluded: None,
                relabelled: None,
            }
        })
        .collect()
}

fn policy() -> Policy {
    Policy {
        key: "k".into(),
        val_fraction: 0.1,
        test_per_class: BTreeMap::from([("john".into(), 100), ("not_john".into(), 100)]),
    }
}

fn count(rows: &[ManifestRow], label: &str, split: Split) -> usize {
    rows.iter()
        .filter(|r| r.label.as_str() == label && r.split == split)
        .count()
}

#[test]
fn holdouts_are_exact_and_val_is_about_its_fraction() {
    let a = assign(&items(0..10_000), &policy(), None);
    assert_eq!(a.rows.len(), 10_000);
    assert_eq!(count(&a.rows, "john", Split::Test), 100);
    assert_eq!(count(&a.rows, "not_john", Split::Test), 100);
    assert!(a.shortfalls.is_empty());
    for label in ["john", "not_john"] {
        let val = count(&a.rows, label, Split::Val) as f64;
        let rest = val + count(&a.rows, label, Split::Train) as f64;
        let share = val / rest;
        assert!((0.07..0.13).contains(&share), "{label}: val share {share}");
    }
    assert!(
        a.rows.windows(2).all(|w| w[0].id < w[1].id),
        "rows not sorted by id"
    );
}

#[test]
fn clusters_never_straddle_splits() {
    let a = assign(&items(0..5_000), &policy(), None);
    let mut split_of: HashMap<ContentId, Split> = HashMap::new();
    for r in &a.rows {
        let s = *split_of.entry(r.cluster).or_insert(r.split);
        assert_eq!(
            s, r.split,
            "cluster {} spans {s} and {}",
            r.cluster, r.split
        );
    }
}

#[test]
fn input_order_does_not_matter_and_the_key_does() {
    let mut list = items(0..3_000);
    let a = assign(&list, &policy(), None);
    list.reverse();
    list.rotate_left(1234);
    assert_eq!(assign(&list, &policy(), None), a);
    let other = Policy {
        key: "other".into(),
        ..policy()
    };
    let b = assign(&list, &other, None);
    let changed = a
        .rows
        .iter()
        .zip(&b.rows)
        .filter(|(x, y)| x.split != y.split)
        .count();
    assert!(changed > 100, "another key moved only {changed} images");
}

#[test]
fn with_a_parent_no_existing_image_moves_and_holdouts_stay_exact() {
    let base = assign(&items(0..10_000), &policy(), None);
    // 10% more images, some of them joining existing clusters (n % 5 == 4 joins n - 1).
    let grown = items(0..11_000);
    let next = assign(&grown, &policy(), Some(&base.rows));
    let before: HashMap<ContentId, Split> = base.rows.iter().map(|r| (r.id, r.split)).collect();
    for r in &next.rows {
        if let Some(&was) = before.get(&r.id) {
            assert_eq!(was, r.split, "{} moved", r.id);
        }
    }
    assert!(next.moved.is_empty());
    let test_before: Vec<_> = base
        .rows
        .iter()
        .filter(|r| r.split == Split::Test)
        .collect();
    let test_after: Vec<_> = next
        .rows
        .iter()
        .filter(|r| r.split == Split::Test)
        .collect();
    assert_eq!(test_before, test_after, "the frozen test holdout changed");
    // New images land in train and val too, not only in one split.
    let new: Vec<_> = next
        .rows
        .iter()
        .filter(|r| !before.contains_key(&r.id))
        .collect();
    assert!(new.len() > 900);
    assert!(
        new.iter().any(|r| r.split == Split::Val) && new.iter().any(|r| r.split == Split::Train)
    );
}

#[test]
fn a_parent_holdout_shortfall_is_filled() {
    let base = assign(&items(0..10_000), &policy(), None);
    let gone: Vec<ContentId> = base
        .rows
        .iter()
        .filter(|r| r.split == Split::Test && r.label.as_str() == "john")
        .take(3)
        .map(|r| r.id)
        .collect();
    // Shortfalls are filled from new images only: existing ones keep their splits.
    let mut list = items(0..12_000);
    for item in &mut list {
        if gone.contains(&item.id) {
            item.excluded = Some("quarantined".into());
        }
    }
    let next = assign(&list, &policy(), Some(&base.rows));
    assert_eq!(
        count(&next.rows, "john", Split::Test),
        100,
        "{:?}",
        next.shortfalls
    );
    let still = assign(&list[..10_000], &policy(), Some(&base.rows));
    assert_eq!(
        still.shortfalls,
        vec![("john".to_string(), 100, 97)],
        "no new images: the shortfall stays"
    );
    let kept = base
        .rows
        .iter()
        .filter(|r| r.split == Split::Test && !gone.contains(&r.id));
    for r in kept {
        assert!(
            next.rows
                .iter()
                .any(|n| n.id == r.id && n.split == Split::Test)
        );
    }
    assert!(
        next.excluded
            .iter()
            .any(|e| e.id == gone[0] && e.reason == "quarantined")
    );
}

#[test]
fn eval_sets_conflicts_and_exclusions_stay_out_with_reasons() {
    let mut list = items(0..1_000);
    let g = Group::new("eval_paul").unwrap();
    // An eval image alone, and one in a training image's cluster.
    let alone = Item {
        id: id(50_000),
        cluster: id(50_000),
        purpose: Purpose::Eval,
        group: g.clone(),
        ..list[1].clone()
    };
    let overlap = Item {
        id: id(50_001),
        cluster: list[1].cluster,
        purpose: Purpose::Eval,
        group: g,
        ..list[1].clone()
    };
    // A cluster with both labels.
    let conflict = Item {
        id: id(50_002),
        cluster: list[2].cluster,
        label: Label::new("john").unwrap(),
        ..list[2].clone()
    };
    list[3].excluded = Some("near_duplicate".into());
    list.extend([alone.clone(), overlap.clone(), conflict.clone()]);
    let a = assign(
        &list,
        &Policy {
            test_per_class: BTreeMap::new(),
            ..policy()
        },
        None,
    );
    let reason = |i: ContentId| {
        a.excluded
            .iter()
            .find(|e| e.id == i)
            .map(|e| e.reason.as_str())
    };
    assert_eq!(
        a.rows.iter().find(|r| r.id == alone.id).map(|r| r.split),
        Some(Split::Eval)
    );
    assert_eq!(reason(overlap.id), Some(reasons::EVAL_OVERLAPS_TRAIN));
    assert_eq!(reason(conflict.id), Some(reasons::LABEL_CONFLICT));
    assert_eq!(reason(list[2].id), Some(reasons::LABEL_CONFLICT));
    assert_eq!(reason(list[3].id), Some("near_duplicate"));
    assert!(
        a.rows
            .iter()
            .all(|r| r.split != Split::Eval || r.id == alone.id)
    );
}

#[test]
fn new_copies_of_frozen_test_images_are_left_out() {
    let base = assign(&items(0..2_000), &policy(), None);
    let test = base.rows.iter().find(|r| r.split == Split::Test).unwrap();
    let mut list = items(0..2_000);
    let copy = Item {
        id: id(90_000),
        cluster: test.cluster,
        ..list[0].clone()
    };
    let copy = Item {
        label: test.label.clone(),
        ..copy
    };
    list.push(copy.clone());
    let next = assign(&list, &policy(), Some(&base.rows));
    assert!(
        next.excluded
            .iter()
            .any(|e| e.id == copy.id && e.reason == reasons::HOLDOUT_FROZEN)
    );
    assert_eq!(count(&next.rows, "john", Split::Test), 100);
}

#[test]
fn too_few_images_is_a_reported_shortfall() {
    let a = assign(&items(0..300), &policy(), None);
    assert!(
        a.shortfalls
            .iter()
            .any(|(c, w, g)| c == "john" && *w == 100 && *g < 100),
        "{:?}",
        a.shortfalls
    );
}

/// Relabels every member of `cluster` in `list` to `label`, as a label review does.
fn relabel(list: &mut [Item], cluster: ContentId, label: &str) {
    for i in list.iter_mut().filter(|i| i.cluster == cluster) {
        i.label = Label::new(label).unwrap();
        i.relabelled = Some(format!("{} by ada at t", reasons::LABEL_REVIEW));
    }
}

#[test]
fn relabelled_parent_images_keep_their_split_and_are_listed_with_both_labels() {
    let base = assign(&items(0..2_000), &policy(), None);
    let pick = |split: Split, label: &str| {
        base.rows
            .iter()
            .find(|r| r.split == split && r.label.as_str() == label)
            .unwrap()
            .clone()
    };
    // A john test image that is not John, and a not_john train image that is.
    let (in_test, in_train) = (pick(Split::Test, "john"), pick(Split::Train, "not_john"));
    let mut list = items(0..2_000);
    relabel(&mut list, in_test.cluster, "not_john");
    relabel(&mut list, in_train.cluster, "john");
    let next = assign(&list, &policy(), Some(&base.rows));

    // Nothing is excluded, and every parent image keeps its split: the frozen test holdout
    // keeps its membership, its labels corrected.
    assert!(next.excluded.is_empty(), "{:?}", next.excluded);
    let after: HashMap<ContentId, &ManifestRow> = next.rows.iter().map(|r| (r.id, r)).collect();
    for r in &base.rows {
        assert_eq!(after[&r.id].split, r.split, "{} moved", r.id);
    }
    for (was, label) in [(&in_test, "not_john"), (&in_train, "john")] {
        assert_eq!(after[&was.id].label.as_str(), label);
    }
    // moved.jsonl lists each relabelled image, its split unchanged, with both labels.
    let mut want: Vec<Moved> = base
        .rows
        .iter()
        .filter(|r| r.cluster == in_test.cluster || r.cluster == in_train.cluster)
        .map(|r| Moved {
            id: r.id,
            from: r.split,
            to: r.split,
            reason: "label_review by ada at t".into(),
            from_label: Some(r.label.clone()),
            to_label: Some(after[&r.id].label.clone()),
        })
        .collect();
    want.sort_by_key(|m| m.id);
    assert_eq!(next.moved, want);
    // The john holdout lost an image to not_john: new john clusters fill it back, and nothing
    // is taken out of the frozen holdout, so not_john's now has one cluster more.
    let test_before: Vec<ContentId> = base
        .rows
        .iter()
        .filter(|r| r.split == Split::Test)
        .map(|r| r.id)
        .collect();
    assert!(test_before.iter().all(|id| after[id].split == Split::Test));

    // Without a parent the relabelled images simply carry their new label.
    let fresh = assign(&list, &policy(), None);
    assert!(fresh.moved.is_empty());
    let row = fresh.rows.iter().find(|r| r.id == in_train.id).unwrap();
    assert_eq!(row.label.as_str(), "john");

    // An older moved.jsonl row (no labels) still reads, and a row without labels writes none.
    let old = r#"{"id":"0000000000000000000000000000000000000000000000000000000000000000","from":"train","to":"test","reason":"cluster_merged"}"#;
    let m: Moved = serde_json::from_str(old).unwrap();
    assert_eq!((&m.from_label, &m.to_label), (&None, &None));
    assert_eq!(serde_json::to_string(&m).unwrap(), old);
}
