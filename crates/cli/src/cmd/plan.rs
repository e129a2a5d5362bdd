use std::io::{BufWriter, Write};

use lennonnet_core::Query;
use lennonnet_plan::{Summary, plan, summarize};

use super::{load_config, stdout_error};
use crate::cli::{PlanArgs, PlanFormat};
use crate::table::{layout, thousands};

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config.config)?;
    let rows = plan(&config);
    let mut out = BufWriter::new(std::io::stdout().lock());
    match args.format {
        PlanFormat::Jsonl => write_jsonl(&mut out, &rows),
        PlanFormat::Table => {
            let word_prefix = config.words.as_ref().map(|w| w.group_prefix.as_str());
            let title = format!("plan of {}", args.config.config.display());
            out.write_all(render_table(&title, &summarize(&rows), word_prefix).as_bytes())
        }
    }
    .and_then(|()| out.flush())
    .map_err(stdout_error)
}

fn write_jsonl(out: &mut impl Write, rows: &[Query]) -> std::io::Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, row)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The human summary: wanted images per purpose and class, then per group. Word groups (names
/// starting with `word_prefix`) are folded into one line per class and purpose.
fn render_table(title: &str, s: &Summary, word_prefix: Option<&str>) -> String {
    let mut t = String::new();
    let groups = s.groups.len();
    t += &format!("{title}: {} queries for {groups} groups\n\n", s.queries);

    t += "by class\n";
    let mut rows = vec![row(["purpose", "class", "groups", "wanted"])];
    for ((purpose, label), wanted) in &s.classes {
        let n = s
            .groups
            .iter()
            .filter(|g| g.purpose == *purpose && g.label == *label)
            .count();
        rows.push(row([
            purpose.as_str(),
            label.as_str(),
            &n.to_string(),
            &thousands(*wanted),
        ]));
    }
    t += &layout(&rows, &[false, false, true, true]);

    t += "\nby purpose\n";
    let mut rows = vec![row(["purpose", "groups", "wanted"])];
    for (purpose, wanted) in &s.purposes {
        let n = s.groups.iter().filter(|g| g.purpose == *purpose).count();
        rows.push(row([purpose.as_str(), &n.to_string(), &thousands(*wanted)]));
    }
    t += &layout(&rows, &[false, true, true]);

    t += "\nby group\n";
    let mut rows = vec![row(["group", "class", "purpose", "wanted", "queries"])];
    let is_word = |g: &str| word_prefix.is_some_and(|p| g.starts_with(p));
    for g in s.groups.iter().filter(|g| !is_word(g.group.as_str())) {
        rows.push(row([
            g.group.as_str(),
            g.label.as_str(),
            g.purpose.as_str(),
            &thousands(g.wanted as u64),
            &g.queries.to_string(),
        ]));
    }
    if let Some(prefix) = word_prefix {
        let words: Vec<_> = s
            .groups
            .iter()
            .filter(|g| is_word(g.group.as_str()))
            .collect();
        // One line per (class, purpose, wanted) so that the fold never hides a difference.
        let mut kinds: Vec<_> = words
            .iter()
            .map(|g| (&g.label, g.purpose, g.wanted))
            .collect();
        kinds.sort();
        kinds.dedup();
        for (label, purpose, wanted) in kinds {
            let same: Vec<_> = words
                .iter()
                .filter(|g| g.label == *label && g.purpose == purpose && g.wanted == wanted)
                .collect();
            let queries: usize = same.iter().map(|g| g.queries).sum();
            rows.push(row([
                &format!("{prefix}* ({} groups)", same.len()),
                label.as_str(),
                purpose.as_str(),
                &format!("{} × {}", same.len(), thousands(wanted as u64)),
                &queries.to_string(),
            ]));
        }
    }
    t += &layout(&rows, &[false, false, false, true, true]);
    t
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1320, "1,320"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }
}
