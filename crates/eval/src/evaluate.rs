//! `evaluate`: score a snapshot with a run's best model and write `<run>/eval/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lennonnet_core::{ContentId, ManifestRow, Progress, Split};
use lennonnet_records::run::RunRecord;
use lennonnet_split::snapshot::Snapshot;

use crate::error::{EvalError, Result};
use crate::metrics::*;
use crate::score::{FeatureResult, Scorer};
use crate::stats::{self, Scored};

/// How to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Images per forward pass.
    pub batch_size: usize,
    /// Decoding and preprocessing threads.
    pub threads: usize,
    /// Groups whose name starts with this are word groups (the `words` aggregate).
    pub words_prefix: String,
    /// Misclassified images in the gallery, at most.
    pub gallery_errors: usize,
    /// Suspects in the gallery, at most.
    pub gallery_suspects: usize,
    /// Longer side of a gallery thumbnail.
    pub thumb_px: u32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            words_prefix: "word_".into(),
            gallery_errors: 48,
            gallery_suspects: 48,
            thumb_px: 160,
        }
    }
}

/// What the caller knows about each image besides the snapshot: where it came from (the
/// store's provenance) and, on a mirror world, its truth.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    /// Sorted search results per image (missing: none known).
    pub sources: BTreeMap<ContentId, Vec<Source>>,
    pub truth: BTreeMap<ContentId, Truth>,
    /// `mirror` or `none`.
    pub truth_source: String,
}

/// One scored image.
struct Item<'a> {
    row: &'a ManifestRow,
    probs: Vec<f32>,
    /// The pooled features the head saw.
    features: Vec<f32>,
    label: usize,
    predicted: usize,
    /// The true class index, when known and one of the run's classes.
    truth: Option<usize>,
}

/// What [`evaluate`] wrote.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    pub dir: PathBuf,
    pub metrics: EvalMetrics,
}

const SPLIT_ORDER: [Split; 4] = [Split::Test, Split::Val, Split::Eval, Split::Train];

/// Scores every image of `snapshot` with `scorer`'s model and writes `<run_dir>/eval/`
/// (replacing an earlier evaluation). `load_secs` is the model's load time, for `timing`.
pub fn evaluate(
    run_dir: &Path,
    scorer: &Scorer,
    snapshot: &Snapshot,
    ann: &Annotations,
    opts: &EvalOptions,
    progress: &dyn Progress,
    load_secs: f64,
) -> Result<EvalOutput> {
    let started = Instant::now();
    let rec = &scorer.record;
    let (threshold, threshold_source) = match rec.threshold {
        Some(t) => (t, "validation"),
        None => (0.5, "default"),
    };
    let rows = snapshot.rows()?;
    for r in &rows {
        class_index(rec, r.label.as_str(), &r.id)?;
    }
    let dataset = lennonnet_dataset::Dataset::of_snapshot(snapshot);
    let cx = Ctx {
        rec,
        classes: &rec.classes,
        ann,
        opts,
        threshold,
        objects: dataset.objects_dir(),
    };

    // The pooled features: the suspects' out-of-fold heads and neighbours, features.safetensors.
    let (results, score_secs) = score(scorer, &rows, &cx.objects, opts, progress)?;
    let (items, failed) = cx.items(&rows, results)?;
    let mut scored = BTreeMap::new();
    for s in Split::ALL {
        scored.insert(s.to_string(), of_split(&items, s).len());
    }
    let truth = cx.truth_summary(&items);
    let test = cx.split_scores(&items, Split::Test);
    let val = cx.split_scores(&items, Split::Val);
    let groups = cx.per_group(&items);
    let eval_sets = cx.eval_sets(&items);
    let dynamics = lennonnet_records::run::read_dynamics(run_dir)?;
    let mut found = cx.suspects(&items, dynamics.as_deref());

    // Write into a fresh folder, then swap it in.
    let out_dir = run_dir.join(EVAL_DIR);
    let tmp = fresh_dir(run_dir)?;
    let gallery = cx.write_gallery(&tmp, &items, &mut found)?;
    cx.write_predictions(&tmp, &items, &found)?;
    write_jsonl(&tmp.join(SUSPECTS_JSONL), &found.suspects)?;
    write_features(&tmp.join(FEATURES), &items, &found.ev.features)?;

    let metrics = EvalMetrics {
        format_version: FORMAT_VERSION,
        run: cx.run_info(threshold_source),
        snapshot: snapshot.id().to_string(),
        scored,
        failed,
        truth,
        test,
        val,
        groups,
        eval_sets,
        suspects: cx.suspect_summary(&items, &found),
        gallery,
        timing: Timing {
            total_secs: load_secs + started.elapsed().as_secs_f64(),
            load_secs,
            score_secs,
            images: items.len(),
            images_per_sec: if score_secs > 0.0 {
                rows.len() as f64 / score_secs
            } else {
                0.0
            },
            threads: opts.threads,
            batch_size: opts.batch_size,
            suspects_oof_secs: found.ev.oof_secs,
            suspects_neighbour_secs: found.ev.neighbour_secs,
            suspects_secs: found.ev.secs,
        },
    };
    write_json(&tmp.join(METRICS_JSON), &metrics)?;
    swap_in(run_dir, &tmp, &out_dir)?;
    Ok(EvalOutput {
        dir: out_dir,
        metrics,
    })
}

/// What the parts of an evaluation share: the run, the caller's annotations and options, the
/// decision threshold and the objects folder.
struct Ctx<'a> {
    rec: &'a RunRecord,
    classes: &'a [String],
    ann: &'a Annotations,
    opts: &'a EvalOptions,
    threshold: f64,
    objects: PathBuf,
}

/// The evidence about every scored image's label, and the suspects.
struct Findings {
    /// Per item, in `items` order.
    ev: crate::suspects::Evidence,
    /// The suspects' items, in rank order.
    order: Vec<usize>,
    /// In rank order; the gallery sets the thumbnails of the first.
    suspects: Vec<Suspect>,
    training_dynamics: bool,
}

/// The index of `label` among the run's classes.
fn class_index(rec: &RunRecord, label: &str, id: &ContentId) -> Result<usize> {
    rec.classes
        .iter()
        .position(|c| c == label)
        .ok_or_else(|| EvalError::UnknownLabel {
            run: rec.name.clone(),
            id: id.to_string(),
            label: label.to_string(),
            classes: rec.classes.join(", "),
        })
}

/// Scores everything, in manifest order, keeping each image's pooled features (the suspects'
/// evidence and features.safetensors); returns the results and the seconds it took.
fn score(
    scorer: &Scorer,
    rows: &[ManifestRow],
    objects: &Path,
    opts: &EvalOptions,
    progress: &dyn Progress,
) -> Result<(Vec<FeatureResult>, f64)> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()
        .map_err(EvalError::model)?;
    let t_score = Instant::now();
    progress.start("eval: score", Some(rows.len() as u64));
    let results = scorer.score_all_with_features(
        rows.len(),
        |i| {
            let p = lennonnet_dataset::object_path(objects, &rows[i].id);
            fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        },
        opts.batch_size,
        &pool,
        &|k| progress.advance("eval: score", k as u64),
        true,
    )?;
    progress.finish("eval: score");
    Ok((results, t_score.elapsed().as_secs_f64()))
}

/// The items of `split`, in manifest order.
fn of_split<'i, 'a>(items: &'i [Item<'a>], s: Split) -> Vec<&'i Item<'a>> {
    items.iter().filter(|i| i.row.split == s).collect()
}

impl Annotations {
    fn sources_of(&self, id: &ContentId) -> Vec<Source> {
        self.sources.get(id).cloned().unwrap_or_default()
    }

    fn truth_of(&self, id: &ContentId) -> Option<Truth> {
        self.truth.get(id).cloned()
    }
}

impl Ctx<'_> {
    /// The scored images, and those that could not be scored.
    fn items<'r>(
        &self,
        rows: &'r [ManifestRow],
        results: Vec<FeatureResult>,
    ) -> Result<(Vec<Item<'r>>, Vec<FailedImage>)> {
        let mut items = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        for (row, r) in rows.iter().zip(results) {
            match r {
                Ok((probs, features)) => {
                    let truth = self
                        .ann
                        .truth
                        .get(&row.id)
                        .and_then(|t| self.classes.iter().position(|c| *c == t.class));
                    items.push(Item {
                        row,
                        predicted: stats::decide(&probs, self.threshold),
                        label: class_index(self.rec, row.label.as_str(), &row.id)?,
                        probs,
                        features,
                        truth,
                    });
                }
                Err(reason) => failed.push(FailedImage {
                    id: row.id.to_string(),
                    split: row.split.to_string(),
                    group: row.group.to_string(),
                    reason,
                }),
            }
        }
        Ok((items, failed))
    }

    /// Truth and label noise.
    fn truth_summary(&self, items: &[Item]) -> TruthSummary {
        let mut per_split = BTreeMap::new();
        for s in Split::ALL {
            let its = of_split(items, s);
            let mut noise = LabelNoise {
                images: its.len(),
                known: 0,
                wrong: 0,
                wrong_by_label: BTreeMap::new(),
            };
            for it in &its {
                if let Some(t) = it.truth {
                    noise.known += 1;
                    if t != it.label {
                        noise.wrong += 1;
                        *noise
                            .wrong_by_label
                            .entry(self.classes[it.label].clone())
                            .or_default() += 1;
                    }
                }
            }
            per_split.insert(s.to_string(), noise);
        }
        TruthSummary {
            available: items.iter().any(|i| i.truth.is_some()),
            source: if items.iter().any(|i| i.truth.is_some()) {
                self.ann.truth_source.clone()
            } else {
                "none".into()
            },
            per_split,
        }
    }

    fn split_scores(&self, items: &[Item], s: Split) -> SplitScores {
        let classes = self.classes;
        let its = of_split(items, s);
        let by_label: Vec<Scored> = its
            .iter()
            .map(|i| Scored {
                probs: &i.probs,
                predicted: i.predicted,
                reference: i.label,
            })
            .collect();
        let truth = (!its.is_empty() && its.iter().all(|i| i.truth.is_some())).then(|| {
            let by_truth: Vec<Scored> = its
                .iter()
                .map(|i| Scored {
                    probs: &i.probs,
                    predicted: i.predicted,
                    reference: i.truth.expect("checked"),
                })
                .collect();
            stats::scores(&by_truth, classes, "truth", CALIBRATION_BINS)
        });
        SplitScores {
            split: s.to_string(),
            labels: stats::scores(&by_label, classes, "label", CALIBRATION_BINS),
            truth,
        }
    }

    /// Per group, per split; then the words aggregate.
    fn per_group(&self, items: &[Item]) -> Vec<GroupScores> {
        let classes = self.classes;
        let mut groups = Vec::new();
        for s in [Split::Test, Split::Val, Split::Eval] {
            let its = of_split(items, s);
            let mut by_group: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
            for it in &its {
                by_group.entry(it.row.group.as_str()).or_default().push(it);
            }
            for (g, members) in &by_group {
                groups.push(group_scores(g, "group", s, members, classes));
            }
            let words: Vec<&Item> = its
                .iter()
                .copied()
                .filter(|i| i.row.group.as_str().starts_with(&self.opts.words_prefix))
                .collect();
            if !words.is_empty() {
                groups.push(group_scores(
                    WORDS_AGGREGATE,
                    "words_aggregate",
                    s,
                    &words,
                    classes,
                ));
            }
        }
        groups
    }

    /// The eval sets.
    fn eval_sets(&self, items: &[Item]) -> Vec<EvalSet> {
        let mut eval_sets = Vec::new();
        let mut by_group: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
        for it in of_split(items, Split::Eval) {
            by_group.entry(it.row.group.as_str()).or_default().push(it);
        }
        for (g, members) in by_group {
            let p: Vec<f32> = members.iter().map(|i| i.probs[0]).collect();
            let right = members.iter().filter(|i| i.predicted == i.label).count();
            let label = majority_label(&members, self.classes);
            eval_sets.push(EvalSet {
                group: g.to_string(),
                label,
                images: members.len(),
                right,
                accuracy: right as f64 / members.len() as f64,
                mean_p_positive: mean(&p),
                median_p_positive: stats::median(&p),
                histogram: stats::histogram(
                    p.iter().map(|&x| f64::from(x)),
                    stats::edges(HISTOGRAM_BINS),
                ),
                threshold_histogram: stats::histogram(
                    p.iter().map(|&x| f64::from(x)),
                    vec![0.0, self.threshold, 1.0],
                ),
                wrong: members.len() - right,
                truth_positive: members
                    .iter()
                    .all(|i| i.truth.is_some())
                    .then(|| members.iter().filter(|i| i.truth == Some(0)).count()),
            });
        }
        eval_sets
    }

    /// The evidence about every image's label, and the suspects it flags, most suspect first.
    fn suspects(
        &self,
        items: &[Item],
        dynamics: Option<&[lennonnet_records::run::DynamicsRow]>,
    ) -> Findings {
        use crate::suspects::{Input, gather, margins, ranking};
        let margin_of = margins(dynamics.unwrap_or_default());
        let inputs: Vec<Input> = items
            .iter()
            .map(|it| Input {
                id: it.row.id,
                cluster: it.row.cluster,
                split: it.row.split,
                label: it.label,
                features: &it.features,
                training_margin: (it.row.split == Split::Train)
                    .then(|| margin_of.get(&it.row.id).copied())
                    .flatten(),
            })
            .collect();
        let opts = crate::noise::OofOptions {
            seed: self.rec.seed,
            ..Default::default()
        };
        let ev = gather(&inputs, self.classes, opts);
        let order = ranking(&inputs, &ev);
        let mut cluster_size: BTreeMap<ContentId, usize> = BTreeMap::new();
        for it in items {
            *cluster_size.entry(it.row.cluster).or_default() += 1;
        }
        let suspects = order
            .iter()
            .enumerate()
            .map(|(k, &i)| self.suspect(k + 1, items, i, &ev, &cluster_size))
            .collect();
        Findings {
            ev,
            order,
            suspects,
            training_dynamics: dynamics.is_some(),
        }
    }

    /// The suspects.jsonl row of item `i`, ranked `rank`.
    fn suspect(
        &self,
        rank: usize,
        items: &[Item],
        i: usize,
        ev: &crate::suspects::Evidence,
        cluster_size: &BTreeMap<ContentId, usize>,
    ) -> Suspect {
        let classes = self.classes;
        let (it, e) = (&items[i], &ev.images[i]);
        let (pl, ps) = (e.oof[it.label], e.oof[e.suggested]);
        Suspect {
            rank,
            id: it.row.id.to_string(),
            split: it.row.split.to_string(),
            group: it.row.group.to_string(),
            label: classes[it.label].clone(),
            suggested: classes[e.suggested].clone(),
            p_label: pl,
            p_suggested: ps,
            margin: ps - pl,
            score: e.score,
            signals: e.signals.iter().map(|s| s.to_string()).collect(),
            oof_p_label: Some(pl),
            model_p_label: Some(it.probs[it.label]),
            neighbour_disagreement: Some(e.disagreement),
            neighbours: e
                .neighbours
                .iter()
                .map(|&(j, sim)| Neighbour {
                    id: items[j].row.id.to_string(),
                    split: items[j].row.split.to_string(),
                    group: items[j].row.group.to_string(),
                    label: classes[items[j].label].clone(),
                    similarity: sim,
                })
                .collect(),
            training_margin: e.training_margin,
            cluster: Some(it.row.cluster.to_string()),
            cluster_size: cluster_size.get(&it.row.cluster).copied(),
            truth: self.ann.truth_of(&it.row.id),
            sources: self.ann.sources_of(&it.row.id),
            thumbnail: None,
        }
    }

    fn suspect_summary(&self, items: &[Item], found: &Findings) -> SuspectSummary {
        let ev = &found.ev;
        let mut by_split = BTreeMap::new();
        let mut by_signal = BTreeMap::new();
        for s in &found.suspects {
            *by_split.entry(s.split.clone()).or_insert(0) += 1;
            for g in &s.signals {
                *by_signal.entry(g.clone()).or_insert(0) += 1;
            }
        }
        let known = items.iter().any(|i| i.truth.is_some());
        let flagged: BTreeSet<usize> = found.order.iter().copied().collect();
        let suspect_truth = known.then(|| {
            let mut st = SuspectTruth {
                known: 0,
                label_wrong: 0,
                missed: 0,
            };
            for (i, it) in items.iter().enumerate() {
                let Some(t) = it.truth else { continue };
                if flagged.contains(&i) {
                    st.known += 1;
                    st.label_wrong += usize::from(t != it.label);
                } else if t != it.label {
                    st.missed += 1;
                }
            }
            st
        });
        let recall = if known {
            suspect_recall(items, &found.order)
        } else {
            Vec::new()
        };
        SuspectSummary {
            splits: Split::ALL.iter().map(|s| s.to_string()).collect(),
            images: items.len(),
            thresholds: ev.cl.thresholds.clone(),
            confident_joint: ConfusionMatrix {
                classes: self.classes.to_vec(),
                rows: ev.cl.joint.clone(),
            },
            suspects: found.suspects.len(),
            by_split,
            by_signal,
            truth: suspect_truth,
            recall,
            method: Some(SuspectMethod {
                folds: crate::noise::OofOptions::default().folds,
                seed: self.rec.seed,
                neighbours: crate::suspects::NEIGHBOURS,
                search: ev.search.name().into(),
                training_dynamics: found.training_dynamics,
            }),
        }
    }

    /// The gallery: the most confident errors on test and eval, and the top suspects.
    fn write_gallery(
        &self,
        tmp: &Path,
        items: &[Item],
        found: &mut Findings,
    ) -> Result<GallerySummary> {
        let gallery_errors = self.gallery_errors(tmp, items)?;
        let gallery_suspects = self.gallery_suspects(tmp, items, found)?;
        let gallery = GallerySummary {
            errors: gallery_errors.len(),
            suspects: gallery_suspects.len(),
            index: GALLERY_INDEX.to_string(),
        };
        write_json(
            &tmp.join(GALLERY_INDEX),
            &GalleryIndex {
                format_version: FORMAT_VERSION,
                threshold: self.threshold,
                positive_class: self.classes[0].clone(),
                errors: gallery_errors,
                suspects: gallery_suspects,
            },
        )?;
        Ok(gallery)
    }

    fn gallery_errors(&self, tmp: &Path, items: &[Item]) -> Result<Vec<GalleryItem>> {
        let classes = self.classes;
        let mut errors: Vec<&Item> = items
            .iter()
            .filter(|i| matches!(i.row.split, Split::Test | Split::Eval) && i.predicted != i.label)
            .collect();
        errors.sort_by(|a, b| {
            b.probs[b.predicted]
                .total_cmp(&a.probs[a.predicted])
                .then(a.row.id.cmp(&b.row.id))
        });
        errors.truncate(self.opts.gallery_errors);
        let mut gallery_errors = Vec::new();
        for (k, it) in errors.iter().enumerate() {
            let rel = format!(
                "{GALLERY_DIR}/errors/{:03}-{}.jpg",
                k + 1,
                short(&it.row.id)
            );
            thumbnail(
                &self.objects,
                &it.row.id,
                &tmp.join(&rel),
                self.opts.thumb_px,
            )?;
            gallery_errors.push(GalleryItem {
                rank: k + 1,
                id: it.row.id.to_string(),
                split: it.row.split.to_string(),
                group: it.row.group.to_string(),
                label: classes[it.label].clone(),
                predicted: classes[it.predicted].clone(),
                p_positive: it.probs[0],
                confidence: it.probs[it.predicted],
                truth: self.ann.truth_of(&it.row.id),
                sources: self.ann.sources_of(&it.row.id),
                thumbnail: rel,
            });
        }
        Ok(gallery_errors)
    }

    /// The top suspects' gallery items; sets their thumbnails.
    fn gallery_suspects(
        &self,
        tmp: &Path,
        items: &[Item],
        found: &mut Findings,
    ) -> Result<Vec<GalleryItem>> {
        let mut gallery_suspects = Vec::new();
        for s in found.suspects.iter_mut().take(self.opts.gallery_suspects) {
            let id: ContentId = s.id.parse().map_err(EvalError::model)?;
            let rel = format!("{GALLERY_DIR}/suspects/{:03}-{}.jpg", s.rank, short(&id));
            thumbnail(&self.objects, &id, &tmp.join(&rel), self.opts.thumb_px)?;
            s.thumbnail = Some(rel.clone());
            let it = &items[found.order[s.rank - 1]];
            gallery_suspects.push(GalleryItem {
                rank: s.rank,
                id: s.id.clone(),
                split: s.split.clone(),
                group: s.group.clone(),
                label: s.label.clone(),
                predicted: s.suggested.clone(),
                p_positive: it.probs[0],
                confidence: s.p_suggested,
                truth: s.truth.clone(),
                sources: s.sources.clone(),
                thumbnail: rel,
            });
        }
        Ok(gallery_suspects)
    }

    /// predictions.jsonl, sorted by (split, group, id).
    fn write_predictions(&self, tmp: &Path, items: &[Item], found: &Findings) -> Result<()> {
        let classes = self.classes;
        let mut order: Vec<(&Item, &crate::suspects::ImageEvidence)> =
            items.iter().zip(&found.ev.images).collect();
        let split_rank = |s: Split| SPLIT_ORDER.iter().position(|x| *x == s).unwrap_or(9);
        order.sort_by(|(a, _), (b, _)| {
            split_rank(a.row.split)
                .cmp(&split_rank(b.row.split))
                .then(a.row.group.cmp(&b.row.group))
                .then(a.row.id.cmp(&b.row.id))
        });
        write_jsonl(
            &tmp.join(PREDICTIONS_JSONL),
            order.into_iter().map(|(it, e)| Prediction {
                id: it.row.id.to_string(),
                split: it.row.split.to_string(),
                group: it.row.group.to_string(),
                label: classes[it.label].clone(),
                p_positive: it.probs[0],
                predicted: classes[it.predicted].clone(),
                correct: it.predicted == it.label,
                suspicion: Some(e.score),
                oof_p_label: Some(e.oof[it.label]),
                neighbour_disagreement: Some(e.disagreement),
                training_margin: e.training_margin,
                truth: self.ann.truth_of(&it.row.id),
                sources: self.ann.sources_of(&it.row.id),
            }),
        )
    }

    fn run_info(&self, threshold_source: &str) -> RunInfo {
        let rec = self.rec;
        RunInfo {
            name: rec.name.clone(),
            snapshot: rec.snapshot.clone(),
            model: rec.model.clone(),
            strategy: rec.strategy.clone(),
            seed: rec.seed,
            classes: self.classes.to_vec(),
            positive_class: self.classes[0].clone(),
            threshold: self.threshold,
            threshold_source: threshold_source.into(),
            threshold_metric: rec
                .result
                .as_ref()
                .map(|r| r.threshold_metric.as_str().to_string()),
        }
    }
}

/// A fresh `<run_dir>/eval.tmp/` with the gallery's folders, for [`evaluate`] to write into.
fn fresh_dir(run_dir: &Path) -> Result<PathBuf> {
    let tmp = run_dir.join(format!("{EVAL_DIR}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(EvalError::io("cannot remove", &tmp))?;
    }
    fs::create_dir_all(tmp.join(GALLERY_DIR).join("errors"))
        .map_err(EvalError::io("cannot create", &tmp))?;
    fs::create_dir_all(tmp.join(GALLERY_DIR).join("suspects"))
        .map_err(EvalError::io("cannot create", &tmp))?;
    Ok(tmp)
}

/// Swap the new folder in.
fn swap_in(run_dir: &Path, tmp: &Path, out_dir: &Path) -> Result<()> {
    if out_dir.exists() {
        let old = run_dir.join(format!("{EVAL_DIR}.old"));
        if old.exists() {
            fs::remove_dir_all(&old).map_err(EvalError::io("cannot remove", &old))?;
        }
        fs::rename(out_dir, &old).map_err(EvalError::io("cannot move aside", out_dir))?;
        fs::rename(tmp, out_dir).map_err(EvalError::io("cannot rename into", out_dir))?;
        fs::remove_dir_all(&old).map_err(EvalError::io("cannot remove", &old))?;
    } else {
        fs::rename(tmp, out_dir).map_err(EvalError::io("cannot rename into", out_dir))?;
    }
    Ok(())
}

fn group_scores(
    name: &str,
    kind: &str,
    split: Split,
    members: &[&Item],
    classes: &[String],
) -> GroupScores {
    let p: Vec<f32> = members.iter().map(|i| i.probs[0]).collect();
    let right = members.iter().filter(|i| i.predicted == i.label).count();
    GroupScores {
        group: name.to_string(),
        kind: kind.to_string(),
        split: split.to_string(),
        label: majority_label(members, classes),
        images: members.len(),
        right,
        accuracy: right as f64 / members.len() as f64,
        mean_p_positive: mean(&p),
        predicted_positive: members.iter().filter(|i| i.predicted == 0).count(),
        truth_positive: members
            .iter()
            .all(|i| i.truth.is_some())
            .then(|| members.iter().filter(|i| i.truth == Some(0)).count()),
    }
}

/// The label most members carry (a group has one label; ties go to the class order).
fn majority_label(members: &[&Item], classes: &[String]) -> String {
    let mut n = vec![0usize; classes.len()];
    for m in members {
        n[m.label] += 1;
    }
    let best = (0..n.len()).fold(0, |b, i| if n[i] > n[b] { i } else { b });
    classes[best].clone()
}

fn mean(v: &[f32]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
    }
}

fn short(id: &ContentId) -> String {
    id.to_hex()[..16].to_string()
}

/// A JPEG thumbnail (longer side `px`) of an object, upright.
pub fn thumbnail(objects: &Path, id: &ContentId, out: &Path, px: u32) -> Result<()> {
    let src = lennonnet_dataset::object_path(objects, id);
    let bytes = fs::read(&src).map_err(EvalError::io("cannot read", &src))?;
    let img = lennonnet_dataset::decode_upright(&bytes).map_err(|message| EvalError::Data {
        path: src.clone(),
        message,
    })?;
    let buf = jpeg_thumbnail(&img, px, 85).map_err(|e| EvalError::Thumbnail {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    write_file(out, &buf)
}

/// A decoded image fitted in a `px` square (shape kept) as JPEG of this quality: the gallery's
/// thumbnails and the review page's.
pub fn jpeg_thumbnail(
    img: &image::DynamicImage,
    px: u32,
    quality: u8,
) -> std::result::Result<Vec<u8>, image::ImageError> {
    let rgb = img.thumbnail(px, px).to_rgb8();
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality).encode_image(&rgb)?;
    Ok(buf)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).map_err(EvalError::io("cannot create", d))?;
    }
    fs::write(path, bytes).map_err(EvalError::io("cannot write", path))
}

/// One JSON line per row.
fn write_jsonl<T: serde::Serialize>(path: &Path, rows: impl IntoIterator<Item = T>) -> Result<()> {
    let mut lines = String::new();
    for r in rows {
        lines += &serde_json::to_string(&r).expect("serialisable");
        lines.push('\n');
    }
    write_file(path, lines.as_bytes())
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).expect("serialisable");
    s.push('\n');
    write_file(path, s.as_bytes())
}

/// The wrong labels (known truth) that the top 50, 100 and 200 suspects hold, per pool: train,
/// val and test together (what a reviewer of the training data sees), and the eval sets.
fn suspect_recall(items: &[Item], order: &[usize]) -> Vec<SuspectRecall> {
    let pools: [(&str, &[Split]); 2] = [
        ("train+val+test", &[Split::Train, Split::Val, Split::Test]),
        ("eval", &[Split::Eval]),
    ];
    let wrong = |i: usize| items[i].truth.is_some_and(|t| t != items[i].label);
    let mut out = Vec::new();
    for (pool, splits) in pools {
        let in_pool = |i: &usize| splits.contains(&items[*i].row.split);
        let total = (0..items.len())
            .filter(in_pool)
            .filter(|&i| wrong(i))
            .count();
        let ranked: Vec<usize> = order.iter().copied().filter(in_pool).collect();
        for k in [50, 100, 200] {
            out.push(SuspectRecall {
                pool: pool.into(),
                k,
                wrong: total,
                found: ranked.iter().take(k).filter(|&&i| wrong(i)).count(),
            });
        }
    }
    out
}

/// features.safetensors: every scored image's pooled features as the suspect search
/// normalised them (unit length, in `items` order), with their ids.
fn write_features(path: &Path, items: &[Item], x: &crate::noise::Features) -> Result<()> {
    let ids: Vec<String> = items.iter().map(|i| i.row.id.to_string()).collect();
    let out =
        crate::features_file::encode(&ids, x.dim, &x.rows).map_err(|message| EvalError::Data {
            path: path.to_path_buf(),
            message,
        })?;
    write_file(path, &out)
}
