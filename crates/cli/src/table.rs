//! Plain-text tables and number formatting for the commands' output.

/// Aligns rows in columns; `right[i]` right-aligns column i (numbers).
pub fn layout(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = right.len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::from("  ");
        for i in 0..cols {
            let pad = widths[i] - r[i].chars().count();
            if right[i] {
                line += &" ".repeat(pad);
                line += &r[i];
            } else {
                line += &r[i];
                line += &" ".repeat(pad);
            }
            if i + 1 < cols {
                line += "  ";
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// `1320` -> `1,320`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
