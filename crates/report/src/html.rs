//! The page: one HTML document with its CSS inline and every image a `data:` URI, so it opens
//! anywhere, offline, and makes no request.

use std::collections::BTreeMap;

use base64::Engine as _;
use lennonnet_core::Split;
use lennonnet_records::eval::{EvalMetrics, GalleryItem, Scores, SplitScores, Suspect};
use lennonnet_records::run::StopReason;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::figures::{headline_split, most_confused};
use crate::inputs::{DatasetInputs, Inputs};
use crate::plot::{Plot, SCALE};

const CSS: &str = include_str!("report.css");

/// The plots, by role, for the page to place.
pub struct Plots<'a> {
    pub loss: &'a Plot,
    pub accuracy: &'a Plot,
    pub histograms: Option<&'a Plot>,
    pub confusion: &'a Plot,
    pub reliability: &'a Plot,
    pub roc: Option<&'a Plot>,
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn plot_img(p: &Plot) -> Markup {
    html! {
        img.plot src=(data_uri("image/png", &p.png)) alt=(p.alt)
            width=(p.width / SCALE) height=(p.height / SCALE);
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "–".into()
    }
}

fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "–".into()
    }
}

fn opt3(x: Option<f64>) -> String {
    x.map(f3).unwrap_or_else(|| "–".into())
}

/// 12345 → "12,345".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes_h(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "–".into();
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{secs:.1} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// A number with a bar behind it, `v` in [0, 1].
fn bar(v: f64, text: String, class: &str) -> Markup {
    let w = if v.is_finite() {
        v.clamp(0.0, 1.0) * 100.0
    } else {
        0.0
    };
    html! {
        td.bar { span class=(class) style={ "--v:" (format!("{w:.1}")) "%" } { (text) } }
    }
}

/// The founding study's form: "96/100 john".
fn founding(scores: &Scores) -> Vec<String> {
    scores
        .per_class
        .iter()
        .map(|c| format!("{}/{} {}", c.right, c.total, c.class))
        .collect()
}

pub fn page(inputs: &Inputs, plots: &Plots<'_>) -> String {
    let run = &inputs.run;
    let eval = &run.eval;
    let rec = &run.record;
    let positive = eval.run.positive_class.as_str();
    let test = &eval.test.labels;
    let title = format!("{} · Lennonnet report", rec.name);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (hero(inputs))
                nav.toc { div.wrap {
                    a href="#run" { "Run" }
                    a href="#training" { "Training" }
                    a href="#test" { "Test split" }
                    a href="#groups" { "Groups" }
                    @if !eval.eval_sets.is_empty() { a href="#eval-sets" { "Eval sets" } }
                    a href="#errors" { "Errors" }
                    a href="#suspects" { "Suspect labels" }
                    a href="#dataset" { "Dataset" }
                } }
                main.wrap {
                    (run_section(inputs))
                    (training_section(inputs, plots))
                    (test_section(eval, plots))
                    (groups_section(eval))
                    @if !eval.eval_sets.is_empty() { (eval_sets_section(eval, plots)) }
                    (errors_section(inputs, positive))
                    (suspects_section(inputs, positive))
                    (dataset_section(&inputs.dataset, eval))
                }
                footer.wrap {
                    p {
                        "Written by lennonnet " (rec.versions.lennonnet) " from " code { (rec.name) }
                        " (" (test.images) " test images scored, eval format " (eval.format_version) "). "
                        "Every plot is also a PNG file next to this page."
                    }
                }
            }
        }
    };
    markup.into_string()
}

fn hero(inputs: &Inputs) -> Markup {
    let eval = &inputs.run.eval;
    let rec = &inputs.run.record;
    let shown = headline_split(eval);
    let test = &shown.labels;
    let positive = eval.run.positive_class.as_str();
    let headline = founding(test);
    let confused = most_confused(eval);
    html! {
        header.hero { div.wrap {
            div.eyebrow { "Lennonnet report · " (rec.name) }
            h1 {
                @for (i, h) in headline.iter().enumerate() {
                    @if i > 0 { span.sep { " · " } }
                    span.nowrap { (h) }
                }
            }
            p.lede {
                @if shown.split == "test" { "Test split, " (test.images) " images" }
                @else { "No test split in this snapshot: validation, " (test.images) " images (in-sample: the threshold was tuned on it)" }
                ", deciding " (positive) " when P(" (positive) ") ≥ "
                (format!("{:.2}", eval.run.threshold))
                @if eval.run.threshold_source == "validation" { " (tuned on validation)" }
                @else { " (" (eval.run.threshold_source) ")" }
                ". "
                @if let Some(c) = &confused {
                    "Of the eval sets of other classes, " strong { (c.group) } " is taken for " (positive) " most often: "
                    (pct(c.wrong)) " of " (thousands(c.images as u64)) " pictures"
                    @if !c.others.is_empty() {
                        " ("
                        @for (i, (g, w)) in c.others.iter().enumerate() {
                            @if i > 0 { ", " }
                            (g) " " (pct(*w))
                        }
                        ")"
                    }
                    "."
                }
            }
            div.kpis {
                div.kpi { b { (pct(test.accuracy)) } span { "accuracy" } }
                div.kpi { b { (f3(test.positive.f1)) } span { "F1 " (positive) } }
                div.kpi { b { (opt3(test.roc_auc)) } span { "ROC AUC" } }
                div.kpi { b { (f3(test.calibration.ece)) } span { "ECE" } }
                @if let Some(t) = &shown.truth {
                    div.kpi { b { (pct(t.accuracy)) } span { "accuracy vs truth" } }
                }
            }
        } }
    }
}

fn run_section(inputs: &Inputs) -> Markup {
    let rec = &inputs.run.record;
    let eval = &inputs.run.eval;
    let result = rec.result.as_ref();
    let train_secs: f64 = inputs.run.epochs.iter().map(|e| e.time.secs).sum();
    let weights = rec
        .weights
        .as_ref()
        .map(|w| w.source.clone())
        .unwrap_or_else(|| format!("random initialisation (seed {})", rec.seed));
    html! {
        section #run {
            h2 { "Run" }
            p.sub { "What was trained, on what, and how it was decided." }
            div.card { dl.facts {
                div { dt { "model" } dd { (rec.model) } }
                div { dt { "strategy" } dd { (rec.strategy) } }
                div { dt { "weights" } dd { (weights) } }
                div { dt { "snapshot" } dd title=(rec.snapshot) { code { (short(&rec.snapshot)) } } }
                @if eval.snapshot != rec.snapshot {
                    div { dt { "evaluated on snapshot" } dd title=(eval.snapshot) { code { (short(&eval.snapshot)) } } }
                }
                div { dt { "seed" } dd { (rec.seed) } }
                div { dt { "device" } dd { (rec.device) " · " (rec.dtype) " · " (rec.backend) } }
                div { dt { "threshold" } dd {
                    (format!("{:.3}", eval.run.threshold))
                    span.muted { " " (eval.run.threshold_source)
                        @if let Some(m) = &eval.run.threshold_metric { ", " (m) } }
                } }
                @if let Some(r) = result {
                    div { dt { "epochs" } dd { (r.epochs_run) " run, best " (r.best_epoch)
                        span.muted { " · " (match r.stop_reason {
                            StopReason::Epochs => "all epochs ran",
                            StopReason::EarlyStopping => "stopped early",
                        }) } } }
                }
                div { dt { "training time" } dd { (duration(train_secs)) } }
                div { dt { "evaluation time" } dd { (duration(eval.timing.total_secs))
                    span.muted { " · " (format!("{:.0}", eval.timing.images_per_sec)) " images/s" } } }
                div { dt { "trainable parameters" } dd { (thousands(rec.trainable.params as u64)) } }
                div { dt { "images" } dd {
                    (thousands(rec.data.train as u64)) " train · " (thousands(rec.data.val as u64)) " val"
                } }
                div { dt { "classes" } dd { (rec.classes.join(", ")) span.muted { " · positive " (rec.positive_class) } } }
            } }
        }
    }
}

fn training_section(inputs: &Inputs, plots: &Plots<'_>) -> Markup {
    let epochs = &inputs.run.epochs;
    html! {
        section #training {
            h2 { "Training" }
            p.sub { "Loss and accuracy per epoch, on the training images (augmented) and on validation. "
                "The dashed line marks the best epoch, whose model is evaluated." }
            div.figs.two {
                div.card.fig { (plot_img(plots.loss)) }
                div.card.fig { (plot_img(plots.accuracy)) }
            }
            details.card {
                summary { "Every epoch (" (epochs.len()) ")" }
                table {
                    thead { tr { th { "epoch" } th { "train loss" } th { "val loss" } th { "train acc." }
                        th { "val acc." } th { "val balanced acc." } th { "lr" } th { "seconds" } } }
                    tbody {
                        @for e in epochs {
                            tr class=[e.best.then_some("best")] {
                                td { (e.epoch) @if e.best { " ★" } }
                                td { (format!("{:.4}", e.train_loss)) }
                                td { (format!("{:.4}", e.val_loss)) }
                                td { (pct(e.train_accuracy)) }
                                td { (pct(e.val_accuracy)) }
                                td { (pct(e.val_balanced_accuracy)) }
                                td { (format!("{:.2e}", e.lr)) }
                                td { (format!("{:.1}", e.time.secs)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A split's rows of the scores table: against the labels and, when known, the truth; none for
/// a split without images.
fn scores_rows(s: &SplitScores) -> Vec<(String, &Scores)> {
    if s.labels.images == 0 {
        return Vec::new();
    }
    let mut rows = vec![(format!("{} vs labels", s.split), &s.labels)];
    if let Some(t) = &s.truth {
        rows.push((format!("{} vs truth", s.split), t));
    }
    rows
}

fn test_section(eval: &EvalMetrics, plots: &Plots<'_>) -> Markup {
    let positive = eval.run.positive_class.as_str();
    let mut rows = scores_rows(&eval.test);
    rows.extend(scores_rows(&eval.val));
    let shown = headline_split(eval);
    let classes: Vec<&str> = shown
        .labels
        .per_class
        .iter()
        .map(|c| c.class.as_str())
        .collect();
    html! {
        section #test {
            h2 { "Test split" }
            p.sub { "Held out from training and from the threshold. Validation is shown for comparison: "
                "its threshold was tuned on it, so it is in-sample."
                @if shown.split != "test" { " This snapshot has no test images: the figures below are validation's." }
                @if eval.test.truth.is_some() { " “vs truth” scores the same predictions against who is really in the picture (mirror world), so label noise in the test split shows." } }
            div.card {
                table {
                    thead { tr {
                        th { "" }
                        @for c in &classes { th { (c) } }
                        th { "accuracy" } th { "balanced" }
                        th { "precision " (positive) } th { "recall " (positive) } th { "F1 " (positive) }
                        th { "ROC AUC" } th { "ECE" } th { "Brier" }
                    } }
                    tbody {
                        @for (name, s) in &rows {
                            tr {
                                td { (name) }
                                @for c in &s.per_class {
                                    td.founding { b { (c.right) } "/" (c.total) }
                                }
                                (bar(s.accuracy, pct(s.accuracy), ""))
                                td { (pct(s.balanced_accuracy)) }
                                td { (f3(s.positive.precision)) }
                                td { (f3(s.positive.recall)) }
                                td { (f3(s.positive.f1)) }
                                td { (opt3(s.roc_auc)) }
                                td { (f3(s.calibration.ece)) }
                                td { (f3(s.brier)) }
                            }
                        }
                    }
                }
            }
            div.figs.three {
                div.card.fig { (plot_img(plots.confusion)) }
                @if let Some(roc) = plots.roc { div.card.fig { (plot_img(roc)) } }
                div.card.fig { (plot_img(plots.reliability)) }
            }
        }
    }
}

fn groups_section(eval: &EvalMetrics) -> Markup {
    let positive = eval.run.positive_class.as_str();
    // group → split → scores, groups in the order eval lists them.
    let mut order: Vec<(&str, &str, &str)> = Vec::new();
    let mut by: BTreeMap<(&str, &str), &lennonnet_records::eval::GroupScores> = BTreeMap::new();
    let mut splits: Vec<&str> = Vec::new();
    // The eval sets have their own section.
    for g in eval.groups.iter().filter(|g| g.split != "eval") {
        if !order.iter().any(|o| o.0 == g.group) {
            order.push((g.group.as_str(), g.label.as_str(), g.kind.as_str()));
        }
        if !splits.contains(&g.split.as_str()) {
            splits.push(g.split.as_str());
        }
        by.insert((g.group.as_str(), g.split.as_str()), g);
    }
    let rank = |s: &str| {
        ["test", "val", "eval", "train"]
            .iter()
            .position(|x| *x == s)
            .unwrap_or(9)
    };
    splits.sort_by_key(|s| rank(s));
    html! {
        section #groups {
            h2 { "Per group" }
            p.sub { "Accuracy (predicted as the group's label) and mean P(" (positive) ") for each group, per split. "
                "“words” aggregates the word groups; the eval sets follow below." }
            div.card.scroll {
                table.groups {
                    thead {
                        tr { th rowspan="2" { "group" } th rowspan="2" { "label" }
                            @for s in &splits { th.span colspan="3" { (s) } } }
                        tr { @for _ in &splits { th { "images" } th { "accuracy" } th { "mean P(" (positive) ")" } } }
                    }
                    tbody {
                        @for (group, label, kind) in &order {
                            tr class=[(*kind != "group").then_some("aggregate")] {
                                td { (group) }
                                td.muted { (label) }
                                @for s in &splits {
                                    @if let Some(g) = by.get(&(*group, *s)) {
                                        td { (g.images) }
                                        (bar(g.accuracy, pct(g.accuracy), ""))
                                        (bar(g.mean_p_positive, f3(g.mean_p_positive), "p"))
                                    } @else {
                                        td.muted { "–" } td.muted { "" } td.muted { "" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn eval_sets_section(eval: &EvalMetrics, plots: &Plots<'_>) -> Markup {
    let positive = eval.run.positive_class.as_str();
    let truth = eval.eval_sets.iter().any(|s| s.truth_positive.is_some());
    html! {
        section #eval-sets {
            h2 { "Eval sets: the founding figure" }
            p.sub { "P(" (positive) ") for every picture of each held-out eval set, in "
                (eval.eval_sets.first().map(|s| s.histogram.counts.len()).unwrap_or(0))
                " bins (green: decided right, red: wrong, dashed: the threshold), and the same pictures in two bins, right and wrong." }
            @if let Some(p) = plots.histograms { div.card.fig { (plot_img(p)) } }
            div.card {
                table {
                    thead { tr { th { "eval set" } th { "label" } th { "images" } th { "right" } th { "wrong" }
                        th { "accuracy" } th { "mean P(" (positive) ")" } th { "median P(" (positive) ")" }
                        @if truth { th { "truly " (positive) } } } }
                    tbody {
                        @for s in &eval.eval_sets {
                            tr {
                                td { (s.group) }
                                td.muted { (s.label) }
                                td { (s.images) }
                                td { (s.right) }
                                td { (s.wrong) }
                                (bar(s.accuracy, pct(s.accuracy), ""))
                                (bar(s.mean_p_positive, f3(s.mean_p_positive), "p"))
                                td { (f3(s.median_p_positive)) }
                                @if truth { td { (s.truth_positive.map(|t| t.to_string()).unwrap_or_else(|| "–".into())) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn provenance(item_sources: &[lennonnet_records::eval::Source]) -> Markup {
    html! {
        @if let Some(s) = item_sources.first() {
            div.prov {
                div { span.k { "query" } " " (s.query) }
                div { span.k { "engine" } " " (s.engine)
                    @if item_sources.len() > 1 { span.muted { " · +" (item_sources.len() - 1) " more sources" } } }
                div.url { a href=(s.url) rel="noreferrer noopener" title=(s.url) { (s.url) } }
            }
        } @else {
            div.prov.muted { "no recorded source" }
        }
    }
}

/// Who is really in the picture (mirror worlds), and whether that makes the label wrong.
fn truth_line(t: &Option<lennonnet_records::eval::Truth>, label: &str) -> Markup {
    html! {
        @if let Some(t) = t {
            div {
                span.k { "truth" } " " (t.name)
                @if t.name != t.class { span.muted { " (" (t.class) ")" } }
                " "
                @if t.class != label { span.tag.noise { "label wrong" } }
                @else { span.tag.right { "label right" } }
            }
        }
    }
}

fn tile(inputs: &Inputs, item: &GalleryItem, positive: &str, extra: Markup) -> Markup {
    let thumb = inputs.run.thumbnails.get(&item.thumbnail);
    html! {
        figure.tile {
            @if let Some(t) = thumb {
                img src=(data_uri(t.mime, &t.bytes)) alt={ (item.group) " " (short(&item.id)) } loading="eager";
            }
            figcaption {
                div.ptop {
                    span.rank { "#" (item.rank) }
                    span.pval { "P(" (positive) ") " b { (format!("{:.3}", item.p_positive)) } }
                }
                div.pbar { i style={ "width:" (format!("{:.1}", (item.p_positive as f64).clamp(0.0, 1.0) * 100.0)) "%" } {} }
                (extra)
                div { span.k { "label" } " " (item.label) " " span.muted { "· " (item.group) " · " (item.split) } }
                (truth_line(&item.truth, &item.label))
                (provenance(&item.sources))
                div.id title=(item.id) { code { (short(&item.id)) } }
            }
        }
    }
}

fn errors_section(inputs: &Inputs, positive: &str) -> Markup {
    let g = &inputs.run.gallery;
    let eval = &inputs.run.eval;
    html! {
        section #errors {
            h2 { "Misclassified" }
            p.sub { "The worst errors on the test split and the eval sets, the most confident first. "
                "Provenance and, on a mirror world, the truth tell a model error from a wrong label." }
            @if g.errors.is_empty() {
                div.card.empty { "No misclassified test or eval image." }
            } @else {
                p.count { (g.errors.len()) " shown of the misclassified images (index: " code { "eval/" (eval.gallery.index) } ")." }
                div.gallery {
                    @for item in &g.errors {
                        (tile(inputs, item, positive, html! {
                            div { span.k { "predicted" } " " span.tag.wrong { (item.predicted) }
                                span.muted { " at " (pct(item.confidence as f64)) } }
                        }))
                    }
                }
            }
        }
    }
}

fn suspects_section(inputs: &Inputs, positive: &str) -> Markup {
    let g = &inputs.run.gallery;
    let s = &inputs.run.eval.suspects;
    let by_id: BTreeMap<&str, &Suspect> = inputs
        .run
        .suspects
        .iter()
        .map(|s| (s.id.as_str(), s))
        .collect();
    html! {
        section #suspects {
            h2 { "Suspect labels" }
            p.sub { "Images of every split whose label the evidence disagrees with: heads that never "
                "saw the image (out of fold), its nearest neighbours' labels, and for training "
                "images how late the model learnt the label. Ranked by one combined score; "
                "review them with " code { "lennonnet review" } "." }
            div.card { dl.facts {
                div { dt { "images examined" } dd { (thousands(s.images as u64)) span.muted { " · " (s.splits.join(", ")) } } }
                div { dt { "suspects" } dd { (thousands(s.suspects as u64))
                    @for (split, n) in &s.by_split { span.muted { " · " (split) " " (n) } } } }
                @for t in &s.thresholds {
                    div { dt { "confidence threshold " (t.class) } dd { (f3(t.threshold)) span.muted { " · " (t.images) " images" } } }
                }
                @if !s.by_signal.is_empty() {
                    div { dt { "flagged by" } dd {
                        @for (signal, n) in &s.by_signal { span.muted { (signal.replace('_', " ")) " " (n) " · " } } } }
                }
                @if let Some(t) = &s.truth {
                    div { dt { "truly mislabelled suspects" } dd { (t.label_wrong) " of " (t.known) " with known truth" } }
                    div { dt { "label errors not flagged" } dd { (t.missed) } }
                }
                @for r in s.recall.iter().filter(|r| r.k == 100) {
                    div { dt { "wrong labels in the top 100, " (r.pool) } dd { (r.found) " of " (r.wrong)
                        span.muted { " (the mirror's simulated truth)" } } }
                }
            } }
            @if g.suspects.is_empty() {
                div.card.empty { "No suspect label." }
            } @else {
                div.gallery {
                    @for item in &g.suspects {
                        @let sus = by_id.get(item.id.as_str());
                        (tile(inputs, item, positive, html! {
                            @if let Some(x) = sus {
                                div { span.k { "evidence says" } " " span.tag.wrong { (x.suggested) }
                                    span.muted { " score " (format!("{:.2}", x.score)) } }
                            } @else {
                                div { span.k { "model says" } " " span.tag.wrong { (item.predicted) } }
                            }
                        }))
                    }
                }
            }
        }
    }
}

fn split_cols(counts: &BTreeMap<Split, u64>) -> Markup {
    let total: u64 = counts.values().sum();
    html! {
        @for s in Split::ALL { td { (counts.get(&s).map(|n| thousands(*n)).unwrap_or_else(|| "–".into())) } }
        td { b { (thousands(total)) } }
    }
}

fn kv_table(title: &str, rows: &BTreeMap<String, u64>) -> Markup {
    let mut rows: Vec<(&String, &u64)> = rows.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    html! {
        div.card {
            h3 { (title) }
            @if rows.is_empty() { p.muted { "none" } } @else {
                table { tbody { @for (k, v) in rows { tr { td { (k) } td { (thousands(*v)) } } } } }
            }
        }
    }
}

fn dataset_section(d: &DatasetInputs, eval: &EvalMetrics) -> Markup {
    // Each group under its class (eval knows the groups' labels); groups eval did not score last.
    let label_of: BTreeMap<&str, &str> = eval
        .groups
        .iter()
        .filter(|g| g.kind == "group")
        .map(|g| (g.group.as_str(), g.label.as_str()))
        .chain(
            eval.eval_sets
                .iter()
                .map(|s| (s.group.as_str(), s.label.as_str())),
        )
        .collect();
    html! {
        section #dataset {
            h2 { "Dataset" }
            p.sub { "The snapshot the run was evaluated on, and what curation did to the store it came from."
                @if let Some(dir) = &d.dir { " Dataset: " code { (dir.display()) } "." } }
            @for n in &d.notes { div.card.note { (n) } }
            @if let Some(m) = &d.snapshot {
                div.card {
                    h3 { "Snapshot " code title=(m.id.to_string()) { (short(&m.id.to_string())) }
                        @if let Some(p) = &m.parent { span.muted { " · parent " code { (short(&p.to_string())) } } } }
                    table {
                        thead { tr { th { "" } @for s in Split::ALL { th { (s.as_str()) } } th { "total" } } }
                        tbody {
                            @for (class, counts) in &m.counts.by_class {
                                tr.class { td { b { (class) } } (split_cols(counts)) }
                                @for (group, counts) in m.counts.by_group.iter().filter(|(g, _)| label_of.get(g.as_str()) == Some(&class.as_str())) {
                                    tr { td { span.indent { (group) } } (split_cols(counts)) }
                                }
                            }
                            @for (group, counts) in m.counts.by_group.iter().filter(|(g, _)| !label_of.contains_key(g.as_str())) {
                                tr { td { span.indent { (group) } } (split_cols(counts)) }
                            }
                            tr.total { td { "all" } (split_cols(&m.counts.by_split)) }
                        }
                    }
                    p.muted.small {
                        "Validation share " (pct(m.policy.val_fraction)) "; test holdout per class: "
                        @if m.policy.test_per_class.is_empty() { "none" }
                        @for (i, (c, n)) in m.policy.test_per_class.iter().enumerate() { @if i > 0 { ", " } (c) " " (n) }
                        ". " (m.moved) " images moved from the parent snapshot."
                        @for s in &m.shortfalls { " Test holdout of " (s.class) " short: " (s.got) " of " (s.wanted) "." }
                    }
                }
                div.figs.three {
                    (kv_table("Kept out of the snapshot", &m.excluded))
                    @if let Some(st) = &d.store {
                        (kv_table("Curation status (store)", &st.by_curation))
                        (kv_table("Refused by the store", &st.rejected_by_reason))
                    }
                }
            }
            @if let Some(st) = &d.store {
                div.card { dl.facts {
                    div { dt { "images in the store" } dd { (thousands(st.images)) span.muted { " · " (bytes_h(st.bytes)) } } }
                    div { dt { "refused" } dd { (thousands(st.rejected)) } }
                    div { dt { "provenance records" } dd { (thousands(st.provenance_records)) } }
                    div { dt { "URLs fetched" } dd { (thousands(st.fetch_by_outcome.values().sum())) span.muted { " · "
                        (thousands(st.fetch_by_outcome.get("ok").copied().unwrap_or(0))) " ok" } } }
                    div { dt { "formats" } dd { @for (i, (f, n)) in st.by_format.iter().enumerate() { @if i > 0 { ", " } (f) " " (thousands(*n)) } } }
                } }
            }
            @if eval.truth.available {
                div.card {
                    h3 { "Label noise against the truth (" (eval.truth.source) ")" }
                    table {
                        thead { tr { th { "split" } th { "images" } th { "truth known" } th { "label wrong" } th { "share" } th { "by label" } } }
                        tbody { @for (split, n) in &eval.truth.per_split {
                            tr { td { (split) } td { (n.images) } td { (n.known) } td { (n.wrong) }
                                td { (pct(if n.known > 0 { n.wrong as f64 / n.known as f64 } else { 0.0 })) }
                                td.muted { @for (i, (l, k)) in n.wrong_by_label.iter().enumerate() { @if i > 0 { ", " } (l) " " (k) } } }
                        } }
                    }
                }
            }
            @if !eval.failed.is_empty() {
                div.card.note { (eval.failed.len()) " images of the snapshot could not be scored; metrics.json lists them." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes_h(512), "512 B");
        assert_eq!(bytes_h(1536), "1.5 KiB");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 5 s");
        assert_eq!(duration(7300.0), "2 h 1 min");
        assert_eq!(pct(0.975), "97.5%");
        assert_eq!(pct(f64::NAN), "–");
    }
}
