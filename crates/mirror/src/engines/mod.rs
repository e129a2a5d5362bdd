//! The search engines' wire formats, as recorded from the real ones (see
//! `tests/fixtures/engines/`): DuckDuckGo's token page and `i.js` JSON, Bing's `images/async`
//! HTML, and the Wikimedia Commons `api.php` JSON. Pure functions from a world and a request to
//! a body; the server adds status codes, rate limits and noise.

mod bing;
mod commons;
mod duckduckgo;

use lennonnet_core::EngineKind;

use crate::world::{ResultItem, World};

pub use bing::{BING_MAX_COUNT, bing_async, bing_changed_html, bing_last_page_start};
pub use commons::{
    COMMONS_FORBIDDEN, COMMONS_MAX_LIMIT, THUMB_STEPS, commons_changed_json, commons_error,
    commons_maxlag_error, commons_search, commons_user_agent_ok, thumb_height, thumb_step,
};
pub use duckduckgo::{
    DDG_FORBIDDEN, DDG_PAGE, ddg_anomaly_html, ddg_browser_headers_ok, ddg_challenge_location,
    ddg_changed_json, ddg_html, ddg_ijs, ddg_vqd, ddg_vqd_for_user_agent,
};

/// Escapes every non-ASCII character of serialised JSON as `\uXXXX` (surrogate pairs above the
/// BMP), as DuckDuckGo and MediaWiki do. Non-ASCII characters only occur inside JSON strings,
/// so this is safe on any serialised value.
pub fn ascii_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out += &format!("\\u{u:04x}");
            }
        }
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out += "&amp;",
            '"' => out += "&quot;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

fn js_single_quoted(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\'', "\\'")
        .replace('<', "\\x3c")
        .replace('\n', " ")
}

/// The results of `query` on `engine` from 0-based `start`, at most `n`.
pub fn page(world: &World, engine: EngineKind, query: &str, start: u32, n: u32) -> Vec<ResultItem> {
    let total = world.result_count(engine, query);
    (start..start.saturating_add(n).min(total))
        .map(|rank| world.result(engine, query, rank))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_ascii_escaped_like_the_recorded_responses() {
        assert_eq!(
            ascii_json(r#"{"t":"Café 😋"}"#),
            r#"{"t":"Caf\u00e9 \ud83d\ude0b"}"#
        );
    }

    #[test]
    fn thumbnail_steps() {
        for (asked, round, step) in [
            (320, true, Some(330)),
            (320, false, None),
            (330, false, Some(330)),
            (1280, false, Some(1280)),
            (1, true, Some(20)),
            (5000, true, Some(3840)),
            (0, true, None),
        ] {
            assert_eq!(thumb_step(asked, round), step, "{asked} {round}");
        }
    }

    #[test]
    fn browser_headers() {
        let full = [
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-site", "same-origin"),
            ("referer", "https://duckduckgo.com/"),
            ("accept-language", "en-US,en;q=0.9"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
            ),
        ];
        let lookup = |hs: Vec<(&'static str, &'static str)>| {
            move |n: &str| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
        };
        assert!(ddg_browser_headers_ok(lookup(full.to_vec())));
        for i in 0..full.len() {
            let mut less = full.to_vec();
            less.remove(i);
            assert!(
                !ddg_browser_headers_ok(lookup(less)),
                "without {}",
                full[i].0
            );
        }
    }

    #[test]
    fn user_agents() {
        for (ua, ok) in [
            (None, false),
            (Some("curl/8.0"), false),
            (Some("python-requests/2.31"), false),
            (
                Some("lennonnet/0.1 (+https://example.invalid/lennonnet)"),
                true,
            ),
            (Some("mybot/1.0 (me@example.org)"), true),
            (Some("Mozilla/5.0"), false),
        ] {
            assert_eq!(commons_user_agent_ok(ua), ok, "{ua:?}");
        }
    }
}
