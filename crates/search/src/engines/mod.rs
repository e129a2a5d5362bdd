//! The three adapters and the small readers they share.

mod bing;
mod commons;
mod duckduckgo;

pub use bing::Bing;
pub use commons::WikimediaCommons;
pub use duckduckgo::{DuckDuckGo, extract_vqd};

use serde_json::Value;

/// The first position of `needle` in `haystack`.
pub(crate) fn memmem(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A non-empty string field.
pub(crate) fn json_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str().filter(|s| !s.trim().is_empty())
}

/// A positive pixel dimension, as a JSON number or a string of digits. Zero, negative,
/// fractional or absurd values are unknown.
pub(crate) fn json_dimension(v: &Value, key: &str) -> Option<u32> {
    let n = match v.get(key)? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    positive_dimension(n)
}

pub(crate) fn positive_dimension(n: u64) -> Option<u32> {
    (1..=1_000_000).contains(&n).then_some(n as u32)
}

/// The text of an HTML fragment: tags dropped, entities decoded, whitespace collapsed.
/// `None` when nothing is left.
pub(crate) fn strip_html(html: &str) -> Option<String> {
    let fragment = scraper::Html::parse_fragment(html);
    let text: String = fragment.root_element().text().collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// Width and height from a text such as `1200 x 800 · jpeg` or `1200×800`.
pub(crate) fn size_from_text(text: &str) -> Option<(u32, u32)> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let (w, after_w) = digits(b, i);
        let mut j = skip_spaces(text, after_w);
        let sep = text[j..].chars().next();
        if matches!(sep, Some('x' | 'X' | '×')) {
            j = skip_spaces(text, j + sep.map_or(0, char::len_utf8));
            if j < b.len() && b[j].is_ascii_digit() {
                let (h, _) = digits(b, j);
                if let (Some(w), Some(h)) = (w, h) {
                    return Some((w, h));
                }
            }
        }
        i = after_w;
    }
    None
}

fn digits(b: &[u8], start: usize) -> (Option<u32>, usize) {
    let mut end = start;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    let n = std::str::from_utf8(&b[start..end])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(positive_dimension);
    (n, end)
}

/// Skips ASCII and no-break spaces; `i` is on a char boundary and so is the result.
fn skip_spaces(text: &str, mut i: usize) -> usize {
    while let Some(c) = text[i..].chars().next() {
        if c == ' ' || c == '\u{a0}' || c == '\t' {
            i += c.len_utf8();
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_info_text() {
        let check = |text: &str, expected: Option<(u32, u32)>| {
            assert_eq!(size_from_text(text), expected, "{text:?}");
        };
        check("1200 x 800 · jpeg", Some((1200, 800)));
        check("1200×800", Some((1200, 800)));
        check("jpeg · 640\u{a0}x\u{a0}480", Some((640, 480)));
        check("1200 X 800px", Some((1200, 800)));
        check("1200 x 800 px", Some((1200, 800)));
        check("x 800", None);
        check("0 x 800", None);
        check("12 apples x 3", None);
        check("99999999999999999999 x 2", None);
        check("", None);
        check("1200 x", None);
    }

    #[test]
    fn html_is_stripped_to_its_text() {
        let check = |html: &str, expected: Option<&str>| {
            assert_eq!(strip_html(html).as_deref(), expected, "{html:?}");
        };
        check(
            r#"<a href="//commons.wikimedia.org/wiki/User:X" title="User:X">Pas&amp;cal</a> <i>L.</i>"#,
            Some("Pas&cal L."),
        );
        check("plain\n  text", Some("plain text"));
        check("<span></span>", None);
        check("", None);
    }
}
