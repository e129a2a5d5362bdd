//! Curation over a real store holding synthetic pictures and their copies.

#[path = "../../store/tests/common/synth.rs"]
mod synth;

use std::collections::BTreeMap;

use lennonnet_core::{ContentId, Group, Label, NoProgress, Purpose};
use lennonnet_curate::{Conflict, Policy, curate, explain};
use lennonnet_store::{
    CurationStatus, DecisionCode, LabelReview, Provenance, ReviewAction, Rules, Store, Timestamp,
};

fn g(s: &str) -> Group {
    Group::new(s).unwrap()
}

fn l(s: &str) -> Label {
    Label::new(s).unwrap()
}

fn policy(conflict: Conflict) -> Policy {
    let mut groups = BTreeMap::new();
    groups.insert(g("john"), (l("john"), Purpose::Train));
    groups.insert(g("paul"), (l("not_john"), Purpose::Train));
    groups.insert(g("eval_paul"), (l("not_john"), Purpose::Eval));
    let d = lennonnet_config::CurateConfig::default();
    Policy {
        phash_max_distance: d.phash_max_distance,
        pdq_max_distance: d.pdq_max_distance,
        min_quality: d.min_quality,
        conflict,
        groups,
        words: None,
    }
}

fn prov(group: &str, url: &str) -> Provenance {
    let label = if group == "john" { "john" } else { "not_john" };
    Provenance {
        group: g(group),
        label: l(label),
        purpose: if group.starts_with("eval") {
            Purpose::Eval
        } else {
            Purpose::Train
        },
        image_url: url.to_string(),
        query_id: None,
        query_text: Some(format!("{group} query")),
        engine: None,
        rank: Some(1),
        page_url: None,
        title: None,
        licence: None,
        thumbnail_of: None,
        fetched_at: Timestamp(0),
    }
}

/// The world: pictures a, c, d, e and copies of them found under other groups.
struct World {
    store: Store,
    ids: BTreeMap<&'static str, ContentId>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Rules::default()).unwrap();
    let pic = |seed| synth::scene(seed, 320, 240);
    let (a, c, d, e) = (pic(11), pic(12), pic(13), pic(14));
    let files: Vec<(&'static str, &str, Vec<u8>)> = vec![
        ("a", "john", synth::jpeg(&a, 90)),
        ("a_small", "paul", synth::Copy::Resize(50).apply(&a, 1)),
        ("a_q50", "eval_paul", synth::Copy::Resize(75).apply(&a, 2)),
        ("b", "john", synth::jpeg(&pic(15), 90)),
        ("c", "paul", synth::jpeg(&c, 90)),
        (
            "c_copy",
            "eval_paul",
            synth::Copy::Reencode(60).apply(&c, 3),
        ),
        ("d", "eval_paul", synth::jpeg(&d, 90)),
        ("e", "paul", synth::jpeg(&e, 90)),
        ("e_marked", "paul", synth::Copy::Watermark.apply(&e, 4)),
    ];
    let mut ids = BTreeMap::new();
    for (name, group, bytes) in files {
        let o = store
            .ingest(&bytes, prov(group, &format!("https://h.test/{name}")))
            .unwrap();
        assert!(o.is_accepted(), "{name}");
        ids.insert(name, o.id);
    }
    World {
        store,
        ids,
        _dir: dir,
    }
}

/// Checks each named image's (status, label, reason codes).
fn check(w: &World, expected: &[(&str, CurationStatus, &str, &[DecisionCode])]) {
    for (name, status, label, codes) in expected {
        let d = w
            .store
            .decision(&w.ids[name])
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no decision"));
        let got_codes: Vec<DecisionCode> = d.reasons.iter().map(|r| r.code).collect();
        assert_eq!(
            (d.status, d.label.as_str(), got_codes.as_slice()),
            (*status, *label, *codes),
            "{name}: {:#?}",
            d.reasons
        );
    }
}

use CurationStatus::{Eval, Excluded, Quarantined, Train};
use DecisionCode::{EvalLeak, LabelConflict, NearDuplicate, Relabelled, Representative};

#[test]
fn conflicts_are_relabelled_and_eval_leaks_excluded() {
    let w = world();
    let report = curate(&w.store, &policy(Conflict::Prefer(l("john"))), &NoProgress).unwrap();
    assert_eq!(report.images, 9);
    assert_eq!(report.duplicate_clusters, 3, "{report:#?}");
    assert_eq!(report.conflicting_clusters, 1);
    check(
        &w,
        &[
            ("a", Train, "john", &[Representative]),
            ("a_small", Train, "john", &[NearDuplicate, Relabelled]),
            (
                "a_q50",
                Excluded,
                "john",
                &[NearDuplicate, Relabelled, EvalLeak],
            ),
            ("b", Train, "john", &[]),
            ("c", Train, "not_john", &[Representative]),
            ("c_copy", Excluded, "not_john", &[NearDuplicate, EvalLeak]),
            ("d", Eval, "not_john", &[]),
            ("e", Train, "not_john", &[Representative]),
            ("e_marked", Train, "not_john", &[NearDuplicate]),
        ],
    );
    // The representative is the largest picture; the cluster is recorded in the index.
    let a = w.store.decision(&w.ids["a"]).unwrap().unwrap();
    assert_eq!(a.cluster, w.ids["a"]);
    assert_eq!(a.cluster_size, 3);
    let mut members = w.store.cluster_members(&w.ids["a"]).unwrap();
    members.sort();
    let mut want = vec![w.ids["a"], w.ids["a_small"], w.ids["a_q50"]];
    want.sort();
    assert_eq!(members, want);
    // No not_john image is left whose cluster also holds an image found by a john query.
    for d in w.store.decisions() {
        let d = d.unwrap();
        if d.label.as_str() == "not_john" && d.status == Train {
            for m in w.store.cluster_members(&d.cluster).unwrap() {
                let found_by_john = w
                    .store
                    .provenance(&m)
                    .unwrap()
                    .iter()
                    .any(|p| p.label.as_str() == "john");
                assert!(
                    !found_by_john,
                    "{} shares a cluster with john image {m}",
                    d.id
                );
            }
        }
    }

    // A rerun decides the same and writes nothing.
    let again = curate(&w.store, &policy(Conflict::Prefer(l("john"))), &NoProgress).unwrap();
    assert_eq!(again.decisions_written, 0);
    assert_eq!(again.by_status_label, report.by_status_label);
}

#[test]
fn the_quarantine_policy_quarantines_conflicting_clusters() {
    let w = world();
    curate(&w.store, &policy(Conflict::Quarantine), &NoProgress).unwrap();
    check(
        &w,
        &[
            ("a", Quarantined, "john", &[Representative, LabelConflict]),
            (
                "a_small",
                Quarantined,
                "not_john",
                &[NearDuplicate, LabelConflict],
            ),
            (
                "a_q50",
                Quarantined,
                "not_john",
                &[NearDuplicate, LabelConflict],
            ),
            ("c", Train, "not_john", &[Representative]),
        ],
    );
    // Switching the policy changes the decisions, and the history keeps both.
    curate(&w.store, &policy(Conflict::Prefer(l("john"))), &NoProgress).unwrap();
    let history = w.store.decision_history(&w.ids["a_small"]).unwrap();
    let statuses: Vec<_> = history.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [Quarantined, Train]);
}

#[test]
fn explain_tells_the_story_of_one_image() {
    let w = world();
    curate(&w.store, &policy(Conflict::Prefer(l("john"))), &NoProgress).unwrap();
    let e = explain(&w.store, &w.ids["a_small"]).unwrap();
    assert_eq!(e.cluster.len(), 2);
    let text = e.render();
    for needle in [
        "accepted jpeg 160x120 stored",
        "group paul (label not_john, train)",
        "image https://h.test/a_small",
        "curation: train as john",
        "- relabelled: found under not_john but its cluster was also found under john",
        "by conflict_policy = prefer_label",
        " of 3 image(s)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    // Label reviews come after the decisions: who, when, what, and which is in force.
    assert!(!text.contains("label reviews"), "no review yet:\n{text}");
    let review = |at, action| LabelReview {
        id: w.ids["a_small"],
        at: Timestamp(at),
        old_label: l("john"),
        action,
        reviewer: "ada".into(),
        run: Some("r1".into()),
    };
    w.store
        .record_label_reviews(vec![
            review(
                1_000,
                ReviewAction::Relabel {
                    label: l("not_john"),
                },
            ),
            review(2_000, ReviewAction::Clear),
        ])
        .wait()
        .unwrap();
    let text = explain(&w.store, &w.ids["a_small"]).unwrap().render();
    let reviews = text.find("label reviews: 2 (none in force)").expect(&text);
    assert!(reviews > text.find("curation: train as john").unwrap());
    for needle in [
        "  1970-01-01T00:00:01.000Z  ada: relabel as not_john (label was john), suspects of run r1",
        "  1970-01-01T00:00:02.000Z  ada: clear (label was john), suspects of run r1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    // Curating again keeps the reviews (they are records of their own).
    curate(&w.store, &policy(Conflict::Prefer(l("john"))), &NoProgress).unwrap();
    assert_eq!(
        w.store
            .label_review_history(&w.ids["a_small"])
            .unwrap()
            .len(),
        2
    );

    // An unknown id explains itself as never ingested.
    let unknown = explain(&w.store, &ContentId::of(b"nothing")).unwrap();
    assert!(unknown.render().contains("never ingested"));
}
