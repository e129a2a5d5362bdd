//! Snapshots on disk: immutability, byte-identical rebuilds, diff, verify and export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lennonnet_core::{ContentId, Group, Label, Purpose, Split};
use lennonnet_split::export::{Format, export};
use lennonnet_split::snapshot::{self, Change};
use lennonnet_split::{Item, Policy, assign};

/// A store-like objects folder with `n` small objects, and their items.
fn world(root: &Path, n: u64) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let bytes = format!("image {i}").into_bytes();
            let id = ContentId::of(&bytes);
            let path = object_path(root, &id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let john = i % 4 == 0;
            Item {
                id,
                label: Label::new(if john { "john" } else { "not_john" }).unwrap(),
                group: Group::new(if john { "john" } else { "person" }).unwrap(),
                purpose: Purpose::Train,
                cluster: id,
                bytes: bytes.len() as u64,
                format: "jpg".into(),
                excluded: None,
                relabelled: None,
            }
        })
        .collect()
}

fn object_path(root: &Path, id: &ContentId) -> PathBuf {
    let hex = id.to_hex();
    root.join("objects").join(&hex[..2]).join(hex)
}

fn policy() -> Policy {
    Policy {
        key: "k".into(),
        val_fraction: 0.1,
        test_per_class: BTreeMap::from([("john".into(), 10), ("not_john".into(), 10)]),
    }
}

#[test]
fn rebuilding_gives_a_byte_identical_manifest_and_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let items = world(dir.path(), 400);
    let snaps = dir.path().join("snapshots");
    let a = snapshot::create(
        &snaps,
        &assign(&items, &policy(), None),
        &policy(),
        None,
        "cfg",
    )
    .unwrap();
    let manifest = std::fs::read(a.dir.join(snapshot::MANIFEST)).unwrap();
    assert_eq!(a.id().0, ContentId::of(&manifest));
    std::fs::remove_dir_all(&snaps).unwrap();
    let b = snapshot::create(
        &snaps,
        &assign(&items, &policy(), None),
        &policy(),
        None,
        "cfg",
    )
    .unwrap();
    assert_eq!(
        std::fs::read(b.dir.join(snapshot::MANIFEST)).unwrap(),
        manifest
    );
    assert_eq!(b.id(), a.id());
    assert_eq!(
        b.meta, a.meta,
        "meta.json holds no time: a rebuild gives the same meta"
    );
    assert_eq!(b.meta.counts.by_class["john"][&Split::Test], 10);
    assert_eq!(snapshot::open(&snaps, "latest").unwrap().id(), b.id());
    assert_eq!(
        snapshot::open(&snaps, &b.id().to_string()[..8])
            .unwrap()
            .id(),
        b.id()
    );
}

#[test]
fn a_changed_snapshot_is_refused_and_caught_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let items = world(dir.path(), 200);
    let snaps = dir.path().join("snapshots");
    let a = assign(&items, &policy(), None);
    let s = snapshot::create(&snaps, &a, &policy(), None, "cfg").unwrap();
    assert!(
        s.verify(|id| object_path(dir.path(), id))
            .unwrap()
            .is_clean()
    );

    // Damage one object and delete another: verify names both.
    let rows = s.rows().unwrap();
    std::fs::write(object_path(dir.path(), &rows[0].id), b"damaged").unwrap();
    std::fs::remove_file(object_path(dir.path(), &rows[1].id)).unwrap();
    let report = s.verify(|id| object_path(dir.path(), id)).unwrap();
    assert_eq!(report.corrupt, vec![rows[0].id]);
    assert_eq!(report.missing, vec![rows[1].id]);
    assert!(!report.is_clean());

    // Editing the manifest in place is caught, and re-creating refuses to paper over it.
    let manifest = s.dir.join(snapshot::MANIFEST);
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replacen("\"train\"", "\"test\"", 1);
    std::fs::write(&manifest, text).unwrap();
    assert!(
        !s.verify(|id| object_path(dir.path(), id))
            .unwrap()
            .manifest_ok
    );
    let err = snapshot::create(&snaps, &a, &policy(), None, "cfg").unwrap_err();
    assert!(
        err.to_string().contains("was changed after it was written"),
        "{err}"
    );
}

#[test]
fn diff_lists_added_removed_and_moved_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = world(dir.path(), 300);
    let snaps = dir.path().join("snapshots");
    let a = snapshot::create(
        &snaps,
        &assign(&items, &policy(), None),
        &policy(),
        None,
        "cfg",
    )
    .unwrap();
    items[5].excluded = Some("quarantined".into());
    items.extend(world(dir.path(), 330).split_off(300));
    let b = snapshot::create(
        &snaps,
        &assign(&items, &policy(), Some(&a.rows().unwrap())),
        &policy(),
        Some(a.id()),
        "cfg",
    )
    .unwrap();
    let changes = snapshot::diff(&a, &b).unwrap();
    let added = changes
        .iter()
        .filter(|c| matches!(c, Change::Added { .. }))
        .count();
    assert_eq!(added, 30);
    assert!(changes.iter().any(|c| matches!(c, Change::Removed { id, reason, .. } if *id == items[5].id && reason == "excluded: quarantined")));
    assert!(
        !changes.iter().any(|c| matches!(c, Change::Moved { .. })),
        "parented snapshot moved images"
    );

    let other = Policy {
        key: "other".into(),
        ..policy()
    };
    let c = snapshot::create(&snaps, &assign(&items, &other, None), &other, None, "cfg").unwrap();
    let moved: Vec<_> = snapshot::diff(&b, &c)
        .unwrap()
        .into_iter()
        .filter(|c| matches!(c, Change::Moved { .. }))
        .collect();
    assert!(!moved.is_empty());
    assert!(
        moved
            .iter()
            .all(|c| matches!(c, Change::Moved { reason, .. } if reason == "split policy changed"))
    );
    assert_eq!(snapshot::list(&snaps).unwrap().len(), 3);
}

#[test]
fn exports_have_the_right_counts_and_shards_list_with_tar() {
    let dir = tempfile::tempdir().unwrap();
    let items = world(dir.path(), 250);
    let snaps = dir.path().join("snapshots");
    let s = snapshot::create(
        &snaps,
        &assign(&items, &policy(), None),
        &policy(),
        None,
        "cfg",
    )
    .unwrap();
    let counts = &s.meta.counts;

    let out = dir.path().join("folder");
    let summary = export(&s, Format::ImageFolder, &out, |id| {
        object_path(dir.path(), id)
    })
    .unwrap();
    assert_eq!(summary.images, 250);
    for (class, per_split) in &counts.by_class {
        for (split, n) in per_split {
            let d = out.join(split.as_str()).join(class);
            assert_eq!(
                std::fs::read_dir(&d).unwrap().count() as u64,
                *n,
                "{}",
                d.display()
            );
        }
    }
    let csv = std::fs::read_to_string(out.join("metadata.csv")).unwrap();
    assert_eq!(csv.lines().count(), 251);
    assert!(
        export(&s, Format::ImageFolder, &out, |id| object_path(
            dir.path(),
            id
        ))
        .is_err(),
        "exported into a non-empty folder"
    );

    let out = dir.path().join("wds");
    export(&s, Format::WebDataset { per_shard: 64 }, &out, |id| {
        object_path(dir.path(), id)
    })
    .unwrap();
    let mut listed = 0;
    let mut shards: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    shards.sort();
    let train_shards = counts.by_split[&Split::Train].div_ceil(64);
    assert_eq!(
        shards
            .iter()
            .filter(|p| p
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("train-"))
            .count() as u64,
        train_shards
    );
    for shard in &shards {
        let out = Command::new("tar").arg("-tf").arg(shard).output().unwrap();
        assert!(
            out.status.success(),
            "tar -t {}: {}",
            shard.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let names = String::from_utf8(out.stdout).unwrap();
        for pair in names.lines().collect::<Vec<_>>().chunks(2) {
            let (img, json) = (pair[0], pair[1]);
            assert!(
                img.ends_with(".jpg") && json.ends_with(".json") && img[..64] == json[..64],
                "{img} {json}"
            );
            listed += 1;
        }
    }
    assert_eq!(listed, 250);
    // Deterministic: a second export gives identical shards.
    let again = dir.path().join("wds2");
    export(&s, Format::WebDataset { per_shard: 64 }, &again, |id| {
        object_path(dir.path(), id)
    })
    .unwrap();
    for shard in &shards {
        let name = shard.file_name().unwrap();
        assert_eq!(
            std::fs::read(shard).unwrap(),
            std::fs::read(again.join(name)).unwrap()
        );
    }
}
