use std::collections::HashMap;
use std::path::Path;

use crate::error::{ConfigError, Location};

/// Lines starting with this are comments in a word list.
pub const WORDS_COMMENT: char = '#';

/// Parses a word list: one lowercase ASCII word per line; blank lines and `#` comments are
/// skipped. A bad or repeated word is an error naming its line. The order of the file is kept;
/// the seeded choice does not depend on it.
pub fn parse_word_list(text: &str, path: &Path) -> Result<Vec<String>, ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut words = Vec::new();
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        let start = offset + (raw.len() - raw.trim_start().len());
        offset += raw.len();
        if line.is_empty() || line.starts_with(WORDS_COMMENT) {
            continue;
        }
        let at = || Location::at(path, text, start);
        if let Some(bad) = line.chars().find(|c| !c.is_ascii_lowercase()) {
            return Err(ConfigError::Syntax {
                at: at(),
                message: format!(
                    "word list: expected one lowercase ASCII word (a-z) per line, found {line:?} (it has {bad:?})"
                ),
            });
        }
        if let Some(first) = seen.insert(line, line_no) {
            return Err(ConfigError::Syntax {
                at: at(),
                message: format!("word list: {line:?} is already on line {first}"),
            });
        }
        words.push(line.to_string());
    }
    if words.is_empty() {
        return Err(ConfigError::File {
            file: path.to_path_buf(),
            message: "word list has no words".to_string(),
        });
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<&[&str], &str>) {
        let got = parse_word_list(text, Path::new("w.txt")).map_err(|e| e.to_string());
        match expected {
            Ok(words) => assert_eq!(got.unwrap(), words),
            Err(msg) => assert_eq!(got.unwrap_err(), msg),
        }
    }

    #[test]
    fn word_lists() {
        check("# c\n\napple\n  pear \nfig", Ok(&["apple", "pear", "fig"]));
        check(
            "apple\nApple\n",
            Err(
                "w.txt:2:1: word list: expected one lowercase ASCII word (a-z) per line, found \"Apple\" (it has 'A')",
            ),
        );
        check(
            "apple\n fig\napple\n",
            Err("w.txt:3:1: word list: \"apple\" is already on line 1"),
        );
        check(
            "tea pot\n",
            Err(
                "w.txt:1:1: word list: expected one lowercase ASCII word (a-z) per line, found \"tea pot\" (it has ' ')",
            ),
        );
        check("# only\n", Err("w.txt: word list has no words"));
    }
}
