//! The table `lennonnet eval` prints: the founding study's form first, then the rest.

use std::fmt::Write;

use crate::metrics::{EvalMetrics, Histogram, Scores, SuspectSummary};

/// The stdout summary of an evaluation.
pub fn render(m: &EvalMetrics) -> String {
    let mut t = String::new();
    let pos = &m.run.positive_class;
    let _ = writeln!(
        t,
        "run        {} (snapshot {}, model {} {})",
        m.run.name,
        &m.snapshot[..m.snapshot.len().min(8)],
        m.run.model,
        m.run.strategy
    );
    let _ = writeln!(
        t,
        "threshold  P({pos}) >= {:.4} ({})",
        m.run.threshold,
        if m.run.threshold_source == "validation" {
            "tuned on validation"
        } else {
            "default: the run has no tuned threshold"
        }
    );
    let scored: Vec<String> = m.scored.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let _ = writeln!(
        t,
        "scored     {}; {} failed",
        scored.join(", "),
        m.failed.len()
    );
    if m.truth.available {
        let n = &m.truth.per_split["test"];
        let by: Vec<String> = n
            .wrong_by_label
            .iter()
            .map(|(c, k)| format!("{k} labelled {c}"))
            .collect();
        let _ = writeln!(
            t,
            "truth      {}: {} of {} test labels are wrong{}",
            m.truth.source,
            n.wrong,
            n.known,
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            }
        );
    }
    t.push('\n');
    scores_block(&mut t, "test split, against the labels", &m.test.labels);
    if let Some(s) = &m.test.truth {
        scores_block(
            &mut t,
            &format!("test split, against the {}'s truth", m.truth.source),
            s,
        );
    }

    let _ = writeln!(t, "per group (test split; val and eval in metrics.json)");
    let _ = writeln!(
        t,
        "  {:<22} {:>6} {:>9} {:>9} {:>10}",
        "group",
        "images",
        "right",
        "accuracy",
        format!("mean P({pos})")
    );
    for g in m.groups.iter().filter(|g| g.split == "test") {
        let _ = writeln!(
            t,
            "  {:<22} {:>6} {:>9} {:>8.1}% {:>10.3}",
            g.group,
            g.images,
            format!("{}/{}", g.right, g.images),
            100.0 * g.accuracy,
            g.mean_p_positive
        );
    }
    t.push('\n');
    if !m.eval_sets.is_empty() {
        let _ = writeln!(
            t,
            "eval sets: P({pos}) in 25 bins from 0 to 1, and right/wrong at the threshold"
        );
        for e in &m.eval_sets {
            let _ = writeln!(
                t,
                "  {:<16} {:>4} images  right {:>4}  wrong {:>4} ({:>5.1}%)  mean P {:.3}  |{}|{}",
                e.group,
                e.images,
                e.right,
                e.wrong,
                100.0 * e.wrong as f64 / e.images.max(1) as f64,
                e.mean_p_positive,
                spark(&e.histogram),
                e.truth_positive
                    .filter(|&k| k > 0)
                    .map(|k| format!("  ({k} truly {pos})"))
                    .unwrap_or_default()
            );
        }
        if let Some(worst) = m
            .eval_sets
            .iter()
            .filter(|e| e.label != *pos)
            .max_by(|a, b| a.mean_p_positive.total_cmp(&b.mean_p_positive))
        {
            let _ = writeln!(
                t,
                "  most taken for {pos}: {} (mean P {:.3}, {} of {} predicted {pos})",
                worst.group, worst.mean_p_positive, worst.wrong, worst.images
            );
        }
        t.push('\n');
    }
    suspect_lines(&mut t, &m.suspects);
    let _ = writeln!(
        t,
        "gallery: {} errors, {} suspects ({})",
        m.gallery.errors, m.gallery.suspects, m.gallery.index
    );
    t
}

fn scores_block(t: &mut String, title: &str, s: &Scores) {
    let _ = writeln!(t, "{title} ({} images)", s.images);
    for c in &s.per_class {
        let _ = writeln!(t, "  {:>9} {}", format!("{}/{}", c.right, c.total), c.class);
    }
    let _ = writeln!(
        t,
        "  accuracy {:.2}%  balanced {:.2}%  {}: precision {:.3} recall {:.3} F1 {:.3}",
        100.0 * s.accuracy,
        100.0 * s.balanced_accuracy,
        s.positive.class,
        s.positive.precision,
        s.positive.recall,
        s.positive.f1
    );
    let _ = writeln!(
        t,
        "  ROC AUC {}  ECE {:.4}  MCE {:.4}  Brier {:.4}",
        s.roc_auc
            .map(|a| format!("{a:.4}"))
            .unwrap_or_else(|| "n/a".into()),
        s.calibration.ece,
        s.calibration.mce,
        s.brier
    );
    let w = s
        .confusion
        .classes
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(4)
        .max(6);
    let _ = write!(t, "  {:<w$}", "label \\ predicted");
    let _ = write!(t, "");
    for c in &s.confusion.classes {
        let _ = write!(t, " {c:>w$}");
    }
    t.push('\n');
    for (c, row) in s.confusion.classes.iter().zip(&s.confusion.rows) {
        let _ = write!(t, "  {c:<w$}", w = w.max(17));
        for v in row {
            let _ = write!(t, " {v:>w$}");
        }
        t.push('\n');
    }
    t.push('\n');
}

/// A histogram as block characters, scaled to its largest bin.
pub fn spark(h: &Histogram) -> String {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = h.counts.iter().copied().max().unwrap_or(0).max(1);
    h.counts
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                LEVELS[(1 + (c * 7) / max).min(8)]
            }
        })
        .collect()
}

/// The suspect labels: how many, flagged by what, and (on a mirror world) how many wrong labels
/// the top of the ranking holds.
fn suspect_lines(t: &mut String, s: &SuspectSummary) {
    let signals: Vec<String> = s
        .by_signal
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let _ = write!(
        t,
        "suspect labels (every split; out-of-fold heads, neighbours, training dynamics): {} of {} images",
        s.suspects, s.images
    );
    if !signals.is_empty() {
        let _ = write!(t, " ({})", signals.join(", "));
    }
    t.push('\n');
    if let Some(st) = &s.truth {
        let _ = writeln!(
            t,
            "  against the mirror's simulated truth: {} of {} suspects are mislabelled, {} mislabelled images not flagged",
            st.label_wrong, st.known, st.missed
        );
    }
    for pool in ["train+val+test", "eval"] {
        let at: Vec<String> = s
            .recall
            .iter()
            .filter(|r| r.pool == pool)
            .map(|r| format!("top {}: {}", r.k, r.found))
            .collect();
        if let Some(r) = s.recall.iter().find(|r| r.pool == pool) {
            let _ = writeln!(
                t,
                "  {pool}: {} wrong labels (mirror's simulated truth); the ranking's {}",
                r.wrong,
                at.join(", ")
            );
        }
    }
}
