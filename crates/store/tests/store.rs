//! The store's behaviour, through its public API.

mod common;

use std::sync::Arc;

use common::files::{self, Expect};
use common::{prov, synth};
use lennonnet_core::{ContentId, FailureReason, Group, Label, NoProgress};
use lennonnet_store::{
    Animated, CurationStatus, Decision, DecisionCode, DecisionReason, FetchOutcome, Ingested,
    Rules, Store, Timestamp,
};

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, Rules::default()).unwrap()
}

/// Ingests one case and compares the outcome with its expectation.
fn check(store: &Store, case: &files::Case) -> Ingested {
    let outcome = store
        .ingest(
            &case.bytes,
            prov(&format!("https://h.test/{}", case.name), "g", "a"),
        )
        .unwrap_or_else(|e| panic!("{}: store error {e}", case.name));
    let got = match &outcome.result {
        Ingested::Accepted { meta, .. } => Expect::Accepted {
            format: meta.format,
            oriented: (meta.oriented_width, meta.oriented_height),
            orientation: meta.orientation,
            animated: meta.animated,
            color: Box::leak(meta.color.clone().into_boxed_str()),
        },
        Ingested::Rejected { reason, .. } => Expect::Rejected(*reason),
    };
    assert_eq!(got, case.expect, "{}: {:?}", case.name, outcome.result);
    outcome.result
}

#[test]
fn malformed_and_unusual_images_get_their_documented_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for case in files::cases() {
        let result = check(&store, &case);
        // Rejections are recorded, with the same reason.
        let id = ContentId::of(&case.bytes);
        match result {
            Ingested::Rejected { reason, .. } => {
                assert_eq!(
                    store.rejection(&id).unwrap().unwrap().reason,
                    reason,
                    "{}",
                    case.name
                );
                assert!(
                    !store.object_path(&id).exists(),
                    "{}: rejected bytes stored",
                    case.name
                );
            }
            Ingested::Accepted { .. } => {
                assert!(store.object_path(&id).exists(), "{}", case.name);
                assert_eq!(std::fs::read(store.object_path(&id)).unwrap(), case.bytes);
            }
        }
        assert_eq!(store.provenance(&id).unwrap().len(), 1, "{}", case.name);
    }
}

#[test]
fn every_orientation_hashes_like_the_upright_picture() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let pic = synth::scene(7, 160, 96);
    let upright_png = store
        .ingest(
            &synth::png(&image::DynamicImage::ImageRgb8(pic.clone())),
            prov("u:png", "g", "a"),
        )
        .unwrap();
    let upright_jpeg = store
        .ingest(&files::jpeg_with_exif(&pic, 1), prov("u:jpg", "g", "a"))
        .unwrap();
    let meta = |o: &lennonnet_store::IngestOutcome| match &o.result {
        Ingested::Accepted { meta, .. } => (**meta).clone(),
        r => panic!("{r:?}"),
    };
    let (up_png, up_jpeg) = (meta(&upright_png), meta(&upright_jpeg));
    for n in 1..=8u8 {
        let stored = files::stored_for(&pic, n);
        assert_eq!(
            stored.dimensions(),
            if n >= 5 { (96, 160) } else { (160, 96) }
        );
        let png = meta(
            &store
                .ingest(
                    &files::png_with_exif(&stored, n),
                    prov(&format!("p{n}"), "g", "a"),
                )
                .unwrap(),
        );
        assert_eq!(
            (png.width, png.height),
            stored.dimensions(),
            "orientation {n}"
        );
        assert_eq!(
            (png.oriented_width, png.oriented_height),
            (160, 96),
            "orientation {n}"
        );
        // Lossless: the upright pixels are exactly the original ones, so are the hashes.
        assert_eq!(
            (png.pdq, png.phash),
            (up_png.pdq, up_png.phash),
            "png orientation {n}"
        );
        let jpeg = meta(
            &store
                .ingest(
                    &files::jpeg_with_exif(&stored, n),
                    prov(&format!("j{n}"), "g", "a"),
                )
                .unwrap(),
        );
        assert_eq!(
            (jpeg.oriented_width, jpeg.oriented_height),
            (160, 96),
            "orientation {n}"
        );
        // Lossy: the JPEG blocks fall differently once rotated; the hashes stay near.
        let (d256, d64) = (
            jpeg.pdq.distance(&up_jpeg.pdq),
            jpeg.phash.distance(&up_jpeg.phash),
        );
        assert!(
            d256 <= 16 && d64 <= 4,
            "jpeg orientation {n}: pdq {d256}, phash {d64}"
        );
    }
}

#[test]
fn animations_are_refused_when_the_config_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let rules = Rules {
        animated: Animated::Reject,
        ..Rules::default()
    };
    let store = Store::open(dir.path(), rules).unwrap();
    for case in files::cases() {
        let expect = match case.expect {
            Expect::Accepted { animated: true, .. } => {
                Expect::Rejected(lennonnet_store::RejectReason::Animated)
            }
            e => e,
        };
        check(&store, &files::Case { expect, ..case });
    }
}

#[test]
fn the_same_bytes_twice_make_one_object_and_two_provenances() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let bytes = synth::jpeg(&synth::scene(1, 200, 150), 80);
    let a = store
        .ingest(&bytes, prov("https://a.test/1.jpg", "john", "john"))
        .unwrap();
    let b = store
        .ingest(&bytes, prov("https://b.test/2.jpg", "paul", "not_john"))
        .unwrap();
    assert_eq!(a.id, b.id);
    assert!(matches!(a.result, Ingested::Accepted { new: true, .. }));
    assert!(matches!(b.result, Ingested::Accepted { new: false, .. }));
    let objects = store.objects().list().unwrap();
    assert_eq!(objects.len(), 1);
    let provs = store.provenance(&a.id).unwrap();
    let urls: Vec<_> = provs.iter().map(|p| p.image_url.as_str()).collect();
    assert_eq!(urls, ["https://a.test/1.jpg", "https://b.test/2.jpg"]);
    assert_eq!(store.url_id("https://b.test/2.jpg").unwrap(), Some(a.id));
    let stats = store.stats().unwrap();
    assert_eq!((stats.images, stats.provenance_records), (1, 2));
    assert_eq!(stats.by_label["john"].accepted, 1);
    assert_eq!(stats.by_label["not_john"].accepted, 1);
}

#[test]
fn url_state_tracks_fetch_and_ingest_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fetch = |url: &str, reason: Option<FailureReason>| FetchOutcome {
        url: url.into(),
        final_url: None,
        query_id: None,
        status: Some(if reason.is_some() { 404 } else { 200 }),
        reason,
        bytes: Some(10),
        duration_ms: 5,
        at: Timestamp(1),
    };
    store
        .record_fetch(fetch("https://h.test/dead", Some(FailureReason::Http404)))
        .wait()
        .unwrap();
    store
        .record_fetch(fetch("https://h.test/ok", None))
        .wait()
        .unwrap();
    store
        .ingest(b"<html>", prov("https://h.test/ok", "g", "a"))
        .unwrap();
    let dead = store.url_state("https://h.test/dead").unwrap().unwrap();
    assert_eq!(dead.fetch.unwrap().reason, Some(FailureReason::Http404));
    assert!(dead.ingest.is_none());
    let ok = store.url_state("https://h.test/ok").unwrap().unwrap();
    assert!(ok.fetch.unwrap().is_success());
    assert_eq!(
        ok.ingest.unwrap().rejected,
        Some(lennonnet_store::RejectReason::NotAnImage)
    );
    assert!(store.url_state("https://h.test/never").unwrap().is_none());
    let stats = store.stats().unwrap();
    assert_eq!(stats.fetch_by_outcome.get("http_404"), Some(&1));
    assert_eq!(stats.fetch_by_outcome.get("ok"), Some(&1));
    assert_eq!(stats.rejected_by_reason.get("not_an_image"), Some(&1));
}

/// Fills a store with images, duplicates, rejections, fetch outcomes and decisions.
fn populate(store: &Store) -> Vec<ContentId> {
    let mut ids = Vec::new();
    for i in 0..12u64 {
        let bytes = synth::jpeg(&synth::scene(i, 120, 90), 85);
        let label = if i % 3 == 0 { "john" } else { "not_john" };
        let o = store
            .ingest(&bytes, prov(&format!("https://h.test/{i}"), label, label))
            .unwrap();
        ids.push(o.id);
        if i % 4 == 0 {
            store
                .ingest(
                    &bytes,
                    prov(&format!("https://mirror.test/{i}"), "paul", "not_john"),
                )
                .unwrap();
        }
    }
    for case in files::cases().into_iter().take(8) {
        store
            .ingest(
                &case.bytes,
                prov(&format!("https://bad.test/{}", case.name), "g", "not_john"),
            )
            .unwrap();
    }
    store
        .record_fetch(FetchOutcome {
            url: "https://h.test/gone".into(),
            final_url: None,
            query_id: None,
            status: Some(410),
            reason: Some(FailureReason::Http4xx),
            bytes: None,
            duration_ms: 3,
            at: Timestamp(5),
        })
        .wait()
        .unwrap();
    let decisions: Vec<Decision> = ids
        .iter()
        .map(|id| Decision {
            id: *id,
            at: Timestamp(9),
            cluster: ids[0],
            cluster_size: 12,
            label: Label::new("john").unwrap(),
            status: CurationStatus::Train,
            groups: vec![Group::new("john").unwrap()],
            reasons: vec![DecisionReason {
                code: DecisionCode::NearDuplicate,
                detail: "test".into(),
            }],
        })
        .collect();
    store.record_decisions(decisions.clone()).wait().unwrap();
    // A second round moves one image to another cluster.
    let mut moved = decisions[3].clone();
    moved.cluster = ids[3];
    moved.cluster_size = 1;
    store.record_decisions(vec![moved]).wait().unwrap();
    ids
}

#[test]
fn deleting_the_index_and_reindexing_changes_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = populate(&store);
    let before = store.dump_index().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(store.cluster_members(&ids[0]).unwrap().len(), 11);
    assert_eq!(store.decision_history(&ids[3]).unwrap().len(), 2);
    store.close().unwrap();

    // Reopening a cleanly closed store reuses the index.
    let (store, report) = Store::open_with(dir.path(), Rules::default(), false).unwrap();
    assert_eq!(report.rebuilt, None);
    assert_eq!(store.dump_index().unwrap(), before);
    store.close().unwrap();

    // `store reindex`: deleted and rebuilt from journal and objects alone.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (store, report) = Store::open_with(dir.path(), Rules::default(), true).unwrap();
    assert!(report.rebuilt.is_some());
    assert_eq!(report.missing_objects, 0);
    assert_eq!(store.dump_index().unwrap(), before);
    assert_eq!(store.stats().unwrap(), stats);
    assert_eq!(store.cluster_members(&ids[0]).unwrap().len(), 11);
    assert_eq!(store.cluster_members(&ids[3]).unwrap(), vec![ids[3]]);
}

#[test]
fn a_second_process_cannot_open_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    let err = Store::open(dir.path(), Rules::default()).unwrap_err();
    assert!(
        matches!(err, lennonnet_store::StoreError::Locked { .. }),
        "{err}"
    );
}

#[test]
fn verify_reports_corrupt_missing_and_orphan_objects_and_gc_removes_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = populate(&store);
    let report = store.verify(&NoProgress).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.objects, 12);

    // Corrupt one, delete one, add an orphan and a stray file.
    std::fs::write(store.object_path(&ids[1]), b"bit rot").unwrap();
    std::fs::remove_file(store.object_path(&ids[2])).unwrap();
    let orphan = synth::jpeg(&synth::scene(99, 80, 80), 80);
    let orphan_id = ContentId::of(&orphan);
    store.objects().write(&orphan_id, &orphan).unwrap();
    let stray = dir.path().join("objects").join("stray.txt");
    std::fs::write(&stray, b"?").unwrap();

    let report = store.verify(&NoProgress).unwrap();
    assert!(!report.is_clean() && report.is_damaged());
    assert_eq!(report.corrupt, vec![(ids[1], ContentId::of(b"bit rot"))]);
    assert_eq!(report.missing, vec![ids[2]]);
    assert_eq!(report.orphans, vec![store.object_path(&orphan_id)]);
    assert_eq!(report.strays, vec![stray.clone()]);

    let dry = store.gc(false, false).unwrap();
    assert!(dry.dry_run && dry.refused.is_none());
    assert_eq!(dry.files().count(), 2);
    assert!(stray.exists());
    // An orphan object is an image whose records are lost: gc refuses without --force.
    let refused = store.gc(true, false).unwrap();
    assert!(refused.dry_run && refused.refused.is_some(), "{refused:?}");
    assert_eq!(refused.orphans, dry.orphans);
    assert!(stray.exists() && store.object_path(&orphan_id).exists());
    let done = store.gc(true, true).unwrap();
    assert!(!done.dry_run);
    assert_eq!(done.orphans, dry.orphans);
    assert_eq!(done.strays, dry.strays);
    assert!(!stray.exists() && !store.object_path(&orphan_id).exists());
    assert!(
        store.object_path(&ids[1]).exists(),
        "gc never removes referenced objects"
    );
    // Re-ingesting the missing image's bytes brings its object back.
    let bytes = synth::jpeg(&synth::scene(2, 120, 90), 85);
    store
        .ingest(&bytes, prov("https://h.test/again", "g", "not_john"))
        .unwrap();
    let report = store.verify(&NoProgress).unwrap();
    assert!(report.missing.is_empty() && report.orphans.is_empty());
}

#[test]
fn a_torn_last_journal_line_is_ignored_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = populate(&store);
    let before = store.dump_index().unwrap();
    store.close().unwrap();
    let seg = dir.path().join("journal").join("00000001.jsonl");
    let good_len = std::fs::metadata(&seg).unwrap().len();
    for tail in [
        &b"{\"type\":\"provenance\",\"v\":1,\"id\":\"ab"[..],
        b"\0\0\0\0\0\0",
        b"{\"type\":\"fetch\"}",
    ] {
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, tail).unwrap();
        drop(f);
        let (store, report) = Store::open_with(dir.path(), Rules::default(), true).unwrap();
        assert!(report.rebuilt.is_some());
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len(),
            good_len,
            "tail {tail:?} not truncated"
        );
        assert_eq!(store.dump_index().unwrap(), before);
        assert!(store.meta(&ids[0]).unwrap().is_some());
        store.close().unwrap();
    }
    // A damaged line in the middle is an error, not silently skipped.
    let text = std::fs::read_to_string(&seg).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"type\":\"ingest\",\"v\":1,\"id\":";
    std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
    let err = Store::open_with(dir.path(), Rules::default(), true).unwrap_err();
    assert!(
        matches!(
            err,
            lennonnet_store::StoreError::JournalCorrupt { line: 3, .. }
        ),
        "{err}"
    );
    // A record from a newer version is refused by name.
    lines[2] = "{\"type\":\"ingest\",\"v\":2,\"id\":\"x\"}";
    std::fs::write(&seg, lines.join("\n") + "\n").unwrap();
    let err = Store::open_with(dir.path(), Rules::default(), true).unwrap_err();
    assert!(
        matches!(
            err,
            lennonnet_store::StoreError::RecordVersion { found: 2, .. }
        ),
        "{err}"
    );
}

#[test]
fn concurrent_ingests_from_many_threads_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..10u64)
                    .map(|i| {
                        let bytes = synth::jpeg(&synth::scene(t * 100 + i, 96, 72), 80);
                        store
                            .ingest(&bytes, prov(&format!("https://t{t}.test/{i}"), "g", "a"))
                            .unwrap()
                            .id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<ContentId> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    for id in &ids {
        assert!(store.meta(id).unwrap().is_some());
    }
    assert_eq!(store.stats().unwrap().images, 40);
}

#[test]
fn an_ack_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let bytes = synth::jpeg(&synth::scene(5, 100, 100), 80);
    let (outcome, ack) = store
        .ingest_nowait(&bytes, prov("https://h.test/a", "g", "a"))
        .unwrap();
    block_on(ack).unwrap();
    assert!(store.meta(&outcome.id).unwrap().is_some());
}

/// Checking ahead and storing later gives what one ingest gives; a check made under other
/// rules is not trusted (the bytes are validated again under the store's own).
#[test]
fn checked_bytes_store_like_an_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let bytes = synth::jpeg(&synth::scene(6, 120, 90), 80);
    let checked = store.check(bytes.clone()).unwrap();
    assert_eq!(checked.id(), ContentId::of(&bytes));
    assert_eq!(checked.valid(), Some(true));
    let (outcome, ack) = store
        .ingest_checked(checked, prov("https://h.test/a", "g", "a"))
        .unwrap();
    ack.wait().unwrap();
    let Ingested::Accepted { new, meta } = &outcome.result else {
        panic!("{outcome:?}")
    };
    assert!(new);
    assert_eq!(
        store.meta(&outcome.id).unwrap().as_ref(),
        Some(meta.as_ref())
    );
    assert_eq!(store.objects().read(&outcome.id).unwrap(), bytes);
    // Known bytes need no validation; storing them adds only the provenance.
    let again = store.check(&bytes[..]).unwrap();
    assert_eq!(again.valid(), None);
    let (outcome, ack) = store
        .ingest_checked(again, prov("https://h.test/b", "g", "b"))
        .unwrap();
    ack.wait().unwrap();
    assert!(matches!(
        outcome.result,
        Ingested::Accepted { new: false, .. }
    ));
    assert_eq!(store.provenance(&outcome.id).unwrap().len(), 2);
    drop(store);

    // Checked by a store that accepts 90 px, stored by one that wants 100 px: refused.
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = Store::open(
        strict_dir.path(),
        Rules {
            min_side_px: 100,
            ..Rules::default()
        },
    )
    .unwrap();
    let lenient = open(dir.path());
    let other = synth::jpeg(&synth::scene(7, 120, 90), 80);
    let fresh = lenient.check(other).unwrap();
    assert_eq!(fresh.valid(), Some(true));
    let (outcome, ack) = strict
        .ingest_checked(fresh, prov("https://h.test/c", "g", "c"))
        .unwrap();
    ack.wait().unwrap();
    assert!(
        matches!(outcome.result, Ingested::Rejected { .. }),
        "{outcome:?}"
    );
}

/// A minimal executor: polls a future, parking the thread between wake-ups.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn prefixes_resolve_to_one_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = populate(&store);
    let hex = ids[0].to_hex();
    assert_eq!(store.resolve(&hex[..12]).unwrap(), ids[0]);
    assert_eq!(store.resolve(&hex).unwrap(), ids[0]);
    assert!(matches!(
        store.resolve("zz"),
        Err(lennonnet_store::StoreError::BadPrefix { .. })
    ));
    let unknown = if hex.starts_with("ffff") {
        "0000"
    } else {
        "ffff"
    };
    let _ = store.resolve(unknown);
}

/// The journal's lines, and the byte offset where each starts.
fn journal_lines(dir: &std::path::Path) -> (std::path::PathBuf, Vec<(u64, String)>) {
    let seg = dir.join("journal").join("00000001.jsonl");
    let text = std::fs::read_to_string(&seg).unwrap();
    let mut at = 0u64;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        out.push((at, line.to_string()));
        at += line.len() as u64;
    }
    (seg, out)
}

#[test]
fn a_journal_cut_between_an_images_ingest_and_provenance_records_is_reported_and_rerun_restores_it()
{
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = synth::jpeg(&synth::scene(1, 120, 90), 85);
    let b = synth::jpeg(&synth::scene(2, 120, 90), 85);
    store
        .ingest(&a, prov("https://h.test/a", "g", "a"))
        .unwrap();
    let ob = store
        .ingest(&b, prov("https://h.test/b", "g", "a"))
        .unwrap();
    store.close().unwrap();
    // Cut the journal after b's `ingest` record, before its `provenance` record (a crash).
    let (seg, lines) = journal_lines(dir.path());
    assert_eq!(lines.len(), 4);
    assert!(lines[2].1.contains("\"type\":\"ingest\""));
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(lines[3].0).unwrap();
    drop(f);

    for read_only in [true, false] {
        let (store, _) = if read_only {
            Store::open_read_only(dir.path(), Rules::default()).unwrap()
        } else {
            Store::open_with(dir.path(), Rules::default(), false).unwrap()
        };
        let stats = store.stats().unwrap();
        assert_eq!((stats.images, stats.no_provenance), (2, 1), "{stats:?}");
        assert_eq!(stats.by_label["a"].accepted, 1, "{stats:?}");
        let report = store.verify(&NoProgress).unwrap();
        assert_eq!(report.no_provenance, vec![ob.id]);
        assert!(!report.is_damaged() && !report.is_clean(), "{report:?}");
        assert!(!store.has_provenance(&ob.id).unwrap());
        store.close().unwrap();
    }
    // Rerunning the interrupted work records the provenance again.
    let store = open(dir.path());
    let again = store
        .ingest(&b, prov("https://h.test/b", "g", "a"))
        .unwrap();
    assert_eq!(again.id, ob.id);
    let stats = store.stats().unwrap();
    assert_eq!((stats.images, stats.no_provenance), (2, 0), "{stats:?}");
    assert_eq!(stats.by_label["a"].accepted, 2);
    assert!(store.verify(&NoProgress).unwrap().is_clean());
}

#[test]
fn a_deleted_journal_is_refused_and_not_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    populate(&store);
    store.close().unwrap();
    std::fs::remove_dir_all(dir.path().join("journal")).unwrap();
    for err in [
        Store::open(dir.path(), Rules::default()).unwrap_err(),
        Store::open_read_only(dir.path(), Rules::default()).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                lennonnet_store::StoreError::JournalMissing { objects: 12, .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("store repair"), "{err}");
    }
    assert!(
        !dir.path().join("journal").exists(),
        "no empty journal is started in place of the lost one"
    );
    // A store whose journal lost every segment is refused the same way.
    std::fs::create_dir(dir.path().join("journal")).unwrap();
    let err = Store::open(dir.path(), Rules::default()).unwrap_err();
    assert!(
        matches!(err, lennonnet_store::StoreError::JournalMissing { .. }),
        "{err}"
    );
}

#[test]
fn a_read_only_store_can_be_read_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = populate(&store);
    let stats = store.stats().unwrap();
    store.close().unwrap();
    let listing = |p: &std::path::Path| {
        let mut v = Vec::new();
        let mut stack = vec![p.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    v.push((e.path(), m.len(), m.modified().unwrap()));
                }
            }
        }
        v.sort();
        v
    };
    // An unclean index (as after a crash) is rebuilt in a temporary index, not in place.
    let before = listing(dir.path());
    for remove_index in [false, true] {
        if remove_index {
            std::fs::remove_dir_all(dir.path().join("index")).unwrap();
        }
        let before = listing(dir.path());
        let (store, _) = Store::open_read_only(dir.path(), Rules::default()).unwrap();
        assert_eq!(store.stats().unwrap(), stats);
        assert!(store.verify(&NoProgress).unwrap().is_clean());
        let err = store
            .ingest(b"x", prov("https://h.test/x", "g", "a"))
            .unwrap_err();
        assert!(
            matches!(err, lennonnet_store::StoreError::ReadOnly),
            "{err}"
        );
        store.close().unwrap();
        if remove_index {
            assert_eq!(listing(dir.path()), before, "reading wrote to the dataset");
        }
    }
    let _ = before;
    assert!(open(dir.path()).meta(&ids[0]).unwrap().is_some());
}

#[test]
fn webp_exif_orientation_with_the_exif_prefix_hashes_like_the_upright_picture() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let pic = synth::scene(7, 160, 96);
    let rgba = |i: &image::RgbImage| image::DynamicImage::ImageRgb8(i.clone()).to_rgba8();
    let meta = |o: lennonnet_store::IngestOutcome| match o.result {
        Ingested::Accepted { meta, .. } => *meta,
        r => panic!("{r:?}"),
    };
    let up = meta(
        store
            .ingest(&files::webp_lossless(&rgba(&pic)), prov("u", "g", "a"))
            .unwrap(),
    );
    for n in 2..=8u8 {
        let stored = files::stored_for(&pic, n);
        let m = meta(
            store
                .ingest(
                    &files::webp_with_exif(&rgba(&stored), n, true),
                    prov(&format!("w{n}"), "g", "a"),
                )
                .unwrap(),
        );
        assert_eq!(m.orientation, n);
        assert_eq!((m.pdq, m.phash), (up.pdq, up.phash), "orientation {n}");
    }
}

#[test]
fn repair_quarantines_a_bad_line_adopts_orphans_and_restores_lost_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let files_dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ids = populate(&store);
    // A local file as the provenance of one image, so that repair can read its bytes back.
    let local_bytes = synth::jpeg(&synth::scene(40, 120, 90), 85);
    let local = files_dir.path().join("local.jpg");
    std::fs::write(&local, &local_bytes).unwrap();
    let local_id = store
        .ingest(
            &local_bytes,
            lennonnet_store::Provenance::local(
                &local,
                Group::new("g").unwrap(),
                Label::new("a").unwrap(),
                lennonnet_core::Purpose::Train,
            ),
        )
        .unwrap()
        .id;
    let stats = store.stats().unwrap();
    store.close().unwrap();

    // A bad line in the middle; an orphan object; a corrupt object (same length, so re-adding
    // alone used to leave it corrupt); a missing one with only a local provenance.
    let (seg, lines) = journal_lines(dir.path());
    let mut text: Vec<String> = lines.iter().map(|l| l.1.clone()).collect();
    text.insert(5, "{\"type\":\"ingest\",\"v\":1,\"id\":\n".to_string());
    std::fs::write(&seg, text.concat()).unwrap();
    let err = Store::open(dir.path(), Rules::default()).unwrap_err();
    assert!(err.to_string().contains("store repair"), "{err}");
    let orphan = synth::jpeg(&synth::scene(77, 100, 80), 80);
    let orphan_id = ContentId::of(&orphan);
    let orphan_path = dir.path().join("objects").join(&orphan_id.to_hex()[..2]);
    std::fs::create_dir_all(&orphan_path).unwrap();
    std::fs::write(orphan_path.join(orphan_id.to_hex()), &orphan).unwrap();
    let corrupt_path = dir
        .path()
        .join("objects")
        .join(&ids[1].to_hex()[..2])
        .join(ids[1].to_hex());
    let original = std::fs::read(&corrupt_path).unwrap();
    let mut rotten = original.clone();
    rotten[100] ^= 0xff;
    std::fs::write(&corrupt_path, &rotten).unwrap();
    let given = files_dir.path().join("backup.jpg");
    std::fs::write(&given, &original).unwrap();
    let local_path = dir
        .path()
        .join("objects")
        .join(&local_id.to_hex()[..2])
        .join(local_id.to_hex());
    std::fs::remove_file(&local_path).unwrap();

    let fetched = std::sync::Mutex::new(Vec::new());
    let report = lennonnet_store::repair(
        dir.path(),
        Rules::default(),
        std::slice::from_ref(&given),
        &|url| {
            fetched.lock().unwrap().push(url.to_string());
            None
        },
    )
    .unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    assert_eq!(report.quarantined[0].line, 6);
    assert_eq!(
        std::fs::read(&report.quarantined[0].saved_as).unwrap(),
        b"{\"type\":\"ingest\",\"v\":1,\"id\":\n"
    );
    assert!(dir.path().join("journal-quarantine/report.jsonl").is_file());
    assert_eq!(report.adopted, vec![orphan_id]);
    let mut restored: Vec<ContentId> = report.restored.iter().map(|r| r.0).collect();
    restored.sort();
    let mut expected = vec![ids[1], local_id];
    expected.sort();
    assert_eq!(restored, expected, "{report:?}");
    assert!(report.unrestored.is_empty() && !report.incomplete());
    assert!(
        fetched.lock().unwrap().is_empty(),
        "the given file and the local path sufficed"
    );

    let store = open(dir.path());
    let after = store.stats().unwrap();
    assert_eq!(after.images, stats.images + 1);
    assert_eq!(
        after.no_provenance, 1,
        "the re-adopted image has no provenance"
    );
    let v = store.verify(&NoProgress).unwrap();
    assert!(!v.is_damaged() && v.orphans.is_empty(), "{v:?}");
    assert_eq!(v.no_provenance, vec![orphan_id]);
}

#[test]
fn re_adding_the_original_bytes_repairs_a_corrupt_object_of_the_same_length() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let bytes = synth::jpeg(&synth::scene(3, 120, 90), 85);
    let id = store
        .ingest(&bytes, prov("https://h.test/a", "g", "a"))
        .unwrap()
        .id;
    let mut rotten = bytes.clone();
    rotten[50] ^= 1;
    std::fs::write(store.object_path(&id), &rotten).unwrap();
    assert_eq!(store.verify(&NoProgress).unwrap().corrupt.len(), 1);
    store
        .ingest(&bytes, prov("https://h.test/b", "g", "a"))
        .unwrap();
    assert!(store.verify(&NoProgress).unwrap().is_clean());
}
