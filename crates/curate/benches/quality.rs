//! Curation quality against the mirror's ground truth.
//!
//! Reads the output of `lennonnet mirror generate` (LENNONNET_MIRROR_DIR: truth.jsonl and the
//! images), ingests every served picture under the groups whose queries returned it (as a scrape
//! of the config's plan would), curates with the config's policy, and compares with the truth:
//! the share of `not_john` training images that truly show John before and after curation, the
//! near-duplicate clusters found against the true ones (images sharing an original), and the
//! acceptance check that no `not_john` training image shares a cluster with an image found by a
//! John query.
//!
//! `lennonnet mirror generate --out DIR -c config/lennonnet.toml` then
//! `LENNONNET_MIRROR_DIR=DIR cargo bench -p lennonnet-curate --bench quality`
//! (LENNONNET_CONFIG picks another config; its [curate] section is the policy).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use lennonnet_core::{ContentId, NoProgress, Purpose};
use lennonnet_curate::{Policy, curate};
use lennonnet_store::{CurationStatus, Provenance, Rules, Store, Timestamp};

/// Whether any member of `id`'s cluster was found by a query of the positive label.
fn truth_urls_by_positive(store: &Store, id: &ContentId, positive: &lennonnet_core::Label) -> bool {
    let d = store.decision(id).unwrap().unwrap();
    store.cluster_members(&d.cluster).unwrap().iter().any(|m| {
        store
            .provenance(m)
            .unwrap()
            .iter()
            .any(|p| &p.label == positive)
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Ok(dir) = std::env::var("LENNONNET_MIRROR_DIR") else {
        println!(
            "quality: set LENNONNET_MIRROR_DIR to the output of `lennonnet mirror generate`; skipped"
        );
        return;
    };
    let dir = PathBuf::from(dir);
    let config_path = std::env::var("LENNONNET_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/lennonnet.toml")
        });
    let config = lennonnet_config::load(&config_path).unwrap();
    let policy = Policy::from_config(&config);
    let plan = lennonnet_plan::plan(&config);
    let mut by_query: BTreeMap<(String, String), Vec<&lennonnet_core::Query>> = BTreeMap::new();
    for q in &plan {
        by_query
            .entry((q.engine.to_string(), q.text.clone()))
            .or_default()
            .push(q);
    }
    let positive = config.classes[0].name.clone();
    let positive_identity = positive.as_str().to_string();

    let tmp = tempfile::tempdir().unwrap();
    let rules = Rules {
        min_side_px: config.image.min_side_px,
        max_pixels: config.image.max_pixels,
        ..Rules::default()
    };
    let store = Store::open(tmp.path(), rules).unwrap();
    let t = Instant::now();
    let text = std::fs::read_to_string(dir.join("truth.jsonl")).unwrap();
    // content id -> (identities, original)
    let mut truth: BTreeMap<ContentId, (BTreeSet<String>, String)> = BTreeMap::new();
    let (mut urls, mut rejected) = (0, 0);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(file) = v["file"].as_str() else {
            continue;
        };
        let key = (
            v["engine"].as_str().unwrap_or("").to_string(),
            v["query"].as_str().unwrap_or("").to_string(),
        );
        let Some(queries) = by_query.get(&key) else {
            continue;
        };
        let bytes = std::fs::read(dir.join(file)).unwrap();
        for q in queries {
            let c = lennonnet_core::Candidate {
                image_url: v["url"].as_str().unwrap().to_string(),
                thumbnail_url: None,
                page_url: None,
                title: None,
                width: None,
                height: None,
                licence: None,
                engine: q.engine,
                query_id: Some(q.id.clone()),
                rank: v["rank"].as_u64().unwrap_or(0) as u32,
            };
            let o = store
                .ingest(&bytes, Provenance::from_candidate(q, &c, Timestamp::now()))
                .unwrap();
            urls += 1;
            if !o.is_accepted() {
                rejected += 1;
                continue;
            }
            let ids: BTreeSet<String> = v["identities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            truth.insert(o.id, (ids, v["original"].as_str().unwrap().to_string()));
        }
    }
    println!(
        "ingested {urls} (URL, group) pairs: {} distinct images, {rejected} refused, in {:.1} s",
        truth.len(),
        t.elapsed().as_secs_f64()
    );

    // Before curation: the not_john training images are those found by a not_john train query.
    let shows = |id: &ContentId| truth[id].0.contains(&positive_identity);
    let mut before = (0, 0);
    let mut before_ids = BTreeSet::new();
    for e in store.entries() {
        let e = e.unwrap();
        let negative_train = e.provenance.iter().any(|p| {
            let (label, purpose) = policy
                .groups
                .get(&p.group)
                .cloned()
                .unwrap_or((p.label.clone(), p.purpose));
            label != positive && purpose == Purpose::Train
        });
        if negative_train {
            before_ids.insert(e.id);
            before.0 += 1;
            if shows(&e.id) {
                before.1 += 1;
            }
        }
    }
    let t = Instant::now();
    let report = curate(&store, &policy, &NoProgress).unwrap();
    let took = t.elapsed().as_secs_f64();
    let mut after = (0, 0);
    let mut after_ids = BTreeSet::new();
    let mut moved = (0, 0); // relabelled to the positive class: truly positive, not
    let mut wrong_moves = Vec::new();
    let mut violations = 0;
    let mut found_clusters: BTreeMap<ContentId, Vec<ContentId>> = BTreeMap::new();
    for d in store.decisions() {
        let d = d.unwrap();
        found_clusters.entry(d.cluster).or_default().push(d.id);
        if d.status == CurationStatus::Train && d.label != positive {
            after_ids.insert(d.id);
            after.0 += 1;
            if shows(&d.id) {
                after.1 += 1;
            }
            // Acceptance: no member of its cluster was found by a positive query.
            for m in store.cluster_members(&d.cluster).unwrap() {
                if store
                    .provenance(&m)
                    .unwrap()
                    .iter()
                    .any(|p| p.label == positive)
                {
                    violations += 1;
                }
            }
        }
        if d.label == positive
            && d.reasons
                .iter()
                .any(|r| r.code == lennonnet_store::DecisionCode::Relabelled)
        {
            if shows(&d.id) {
                moved.0 += 1;
            } else {
                moved.1 += 1;
                wrong_moves.push(d.id);
            }
        }
    }
    // Clusters against the truth: images sharing an original are true near-duplicates.
    let mut true_clusters: BTreeMap<&str, Vec<ContentId>> = BTreeMap::new();
    for (id, (_, orig)) in &truth {
        true_clusters.entry(orig.as_str()).or_default().push(*id);
    }
    let true_multi = true_clusters.values().filter(|v| v.len() > 1).count();
    let found_multi = found_clusters.values().filter(|v| v.len() > 1).count();
    let pairs =
        |groups: &mut dyn Iterator<Item = &Vec<ContentId>>| -> BTreeSet<(ContentId, ContentId)> {
            let mut out = BTreeSet::new();
            for g in groups {
                for (i, a) in g.iter().enumerate() {
                    for b in &g[i + 1..] {
                        out.insert(if a < b { (*a, *b) } else { (*b, *a) });
                    }
                }
            }
            out
        };
    let tp_pairs = pairs(&mut true_clusters.values());
    let fp_pairs = pairs(&mut found_clusters.values());
    let both = tp_pairs.intersection(&fp_pairs).count();
    let exact = found_clusters
        .values()
        .filter(|v| v.len() > 1)
        .filter(|v| {
            let o = &truth[&v[0]].1;
            v.iter().all(|id| &truth[id].1 == o) && true_clusters[o.as_str()].len() == v.len()
        })
        .count();
    let pct = |(n, k): (u64, u64)| {
        if n == 0 {
            0.0
        } else {
            100.0 * k as f64 / n as f64
        }
    };
    println!("curated in {took:.2} s: {report:?}");
    println!("\n| measure | value |\n| --- | ---: |");
    println!("| distinct images | {} |", truth.len());
    println!(
        "| `{positive}`-showing share of non-`{positive}` training images, before curation | {:.2} % ({} of {}) |",
        pct(before),
        before.1,
        before.0
    );
    println!(
        "| the same after curation | {:.2} % ({} of {}) |",
        pct(after),
        after.1,
        after.0
    );
    println!(
        "{}",
        lennonnet_core::bench::BenchLine::new(
            "curate",
            &format!(
                "`{positive}`-showing share of non-`{positive}` training images after curation, % (lower is better)"
            ),
            pct(after),
            "the same before curation, %",
            Some(pct(before)),
        )
    );
    println!(
        "| images relabelled `{positive}` that truly show {positive} / that do not | {} / {} |",
        moved.0, moved.1
    );
    println!(
        "| non-`{positive}` training images sharing a cluster with a `{positive}`-query image | {violations} |"
    );
    println!("| true near-duplicate groups (≥ 2 distinct images of one original) | {true_multi} |");
    println!(
        "| clusters found (≥ 2 images) / of them exactly a true group | {found_multi} / {exact} |"
    );
    println!(
        "| same-cluster pairs: precision / recall against same-original pairs | {:.3} / {:.3} |",
        if fp_pairs.is_empty() {
            1.0
        } else {
            both as f64 / fp_pairs.len() as f64
        },
        if tp_pairs.is_empty() {
            1.0
        } else {
            both as f64 / tp_pairs.len() as f64
        }
    );
    println!(
        "| eval images excluded as leaks | {} |",
        report.eval_excluded
    );
    let left: Vec<&ContentId> = before_ids.difference(&after_ids).collect();
    let left_john = left.iter().filter(|id| shows(id)).count();
    println!(
        "| images that left non-`{positive}` training: showing {positive} / not | {left_john} / {} |",
        left.len() - left_john
    );
    // The originals that positive queries returned (in any copy).
    let mut positive_originals = BTreeSet::new();
    for (id, (_, orig)) in &truth {
        if store
            .provenance(id)
            .unwrap()
            .iter()
            .any(|p| p.label == positive)
        {
            positive_originals.insert(orig.clone());
        }
    }
    let stayed: Vec<&ContentId> = after_ids.iter().filter(|id| shows(id)).collect();
    let mut unreachable = 0;
    for id in &stayed {
        let found_by_positive = truth_urls_by_positive(&store, id, &positive);
        let (ids, orig) = &truth[*id];
        let copy_of_positive = positive_originals.contains(orig);
        if !found_by_positive && !copy_of_positive {
            unreachable += 1;
        }
        println!(
            "  still non-{positive} training, shows {positive}: {} original {orig} {ids:?}; cluster has a {positive}-query image: {found_by_positive}; a {positive} query returned a copy of its original: {copy_of_positive}",
            lennonnet_curate::short(id)
        );
    }
    println!(
        "| of those left, pictures no `{positive}` query returned in any copy (out of reach of clustering) | {unreachable} of {} |",
        stayed.len()
    );
    for id in &wrong_moves {
        let (ids, orig) = &truth[id];
        let d = store.decision(id).unwrap().unwrap();
        let members = store.cluster_members(&d.cluster).unwrap();
        let same_original = members.iter().all(|m| &truth[m].1 == orig);
        println!(
            "  relabelled {positive} but shows {ids:?}: {} original {orig}; a {positive} query returned this picture itself: {}; cluster of {} all of one original: {same_original}",
            lennonnet_curate::short(id),
            store
                .provenance(id)
                .unwrap()
                .iter()
                .any(|p| p.label == positive),
            members.len()
        );
    }
    assert_eq!(
        violations, 0,
        "a non-positive training image shares a cluster with a positive-query image"
    );
}
