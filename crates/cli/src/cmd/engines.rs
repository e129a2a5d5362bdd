use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use lennonnet_config::{EngineConfig, HttpConfig};
use lennonnet_core::EngineKind;
use lennonnet_search::{Cursor, Page, Response, adapter};

use super::stdout_error;
use crate::cli::{EnginesArgs, EnginesCommand, EnginesParseArgs, ResponseKind};

mod check;

pub fn run(args: EnginesArgs) -> anyhow::Result<()> {
    match args.command {
        EnginesCommand::Parse(args) => parse(args),
        EnginesCommand::Check(args) => check::run(args),
    }
}

fn parse(args: EnginesParseArgs) -> anyhow::Result<()> {
    // A saved engine response: a few MB at most. Anything but a regular file, or a much larger
    // one, is refused before it is read (a FIFO would block, a huge file fill memory).
    let body = lennonnet_config::read_small_file(&args.file, 256 << 20)
        .map(String::into_bytes)
        .or_else(|e| match e.kind() {
            // Not UTF-8: the parser decides what to make of raw bytes.
            std::io::ErrorKind::InvalidData => std::fs::read(&args.file),
            _ => Err(e),
        })
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let output = parse_saved(args.engine, args.kind, args.status, body, &args.file)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    out.write_all(output.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Runs the parser on a saved body; the JSON Lines to print, or the parser's error with the
/// file and the kind of response that was expected on top.
fn parse_saved(
    engine: EngineKind,
    kind: ResponseKind,
    status: u16,
    body: Vec<u8>,
    file: &Path,
) -> anyhow::Result<String> {
    let (cursor, what) = match kind {
        ResponseKind::Page => (
            Cursor::results(Vec::new()),
            match engine {
                EngineKind::DuckDuckGo => "a DuckDuckGo i.js results page",
                EngineKind::Bing => "a Bing images/async results page",
                EngineKind::WikimediaCommons => "a Wikimedia Commons API results page",
            },
        ),
        ResponseKind::Vqd if engine == EngineKind::DuckDuckGo => (
            Cursor::token(),
            "a DuckDuckGo HTML page holding the vqd token",
        ),
        ResponseKind::Vqd => bail!(
            "--kind vqd is DuckDuckGo's token page; {engine} has no token step (use --kind page)"
        ),
    };
    let response = Response {
        status,
        headers: Default::default(),
        body,
    };
    let settings = EngineConfig::default().settings(engine, &HttpConfig::default());
    let page = adapter(engine)
        .parse(&settings, &cursor, &response)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{}: not accepted as {what}", file.display()))?;
    tracing::info!(
        file = %file.display(),
        %engine,
        candidates = page.candidates.len(),
        skipped = page.skipped,
        next = %next_summary(&page),
        "parsed"
    );
    let mut out = String::new();
    match kind {
        ResponseKind::Vqd => {
            let vqd = page
                .next
                .as_ref()
                .and_then(|c| c.param("vqd"))
                .unwrap_or("");
            out += &serde_json::json!({ "vqd": vqd }).to_string();
            out.push('\n');
        }
        ResponseKind::Page => {
            for c in &page.candidates {
                out += &serde_json::to_string(c).expect("candidates serialise");
                out.push('\n');
            }
        }
    }
    Ok(out)
}

fn next_summary(page: &Page) -> String {
    match &page.next {
        None => "none (last page)".to_string(),
        Some(c) => c
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/engines")
            .join(rel)
    }

    /// Runs `engines parse` on a fixture; `Ok(lines)` or `Err(error chain)`.
    fn run(
        engine: EngineKind,
        kind: ResponseKind,
        status: u16,
        rel: &str,
    ) -> Result<Vec<String>, String> {
        let path = fixture(rel);
        let body = std::fs::read(&path).unwrap();
        parse_saved(engine, kind, status, body, &path)
            .map(|out| out.lines().map(str::to_string).collect())
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn prints_candidates_as_json_lines() {
        let lines = run(
            EngineKind::DuckDuckGo,
            ResponseKind::Page,
            200,
            "duckduckgo/i_js_minecraft_default.json",
        )
        .unwrap();
        assert_eq!(lines.len(), 100);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["engine"], "duckduckgo");
        assert_eq!(first["rank"], 1);
        assert_eq!(first["width"], 1214);
    }

    #[test]
    fn prints_the_token() {
        let lines = run(
            EngineKind::DuckDuckGo,
            ResponseKind::Vqd,
            200,
            "duckduckgo/vqd_page_node.html",
        )
        .unwrap();
        assert_eq!(
            lines,
            [
                r#"{"vqd":"3-320068370671196460038575011587633753929-199869977846294510399902480995708132308"}"#
            ]
        );
    }

    #[test]
    fn errors_name_the_file_and_what_was_expected() {
        let err = run(
            EngineKind::Bing,
            ResponseKind::Page,
            200,
            "bing/async_changed_markup.html",
        )
        .unwrap_err();
        assert!(
            err.contains(
                "async_changed_markup.html: not accepted as a Bing images/async results page"
            ),
            "{err}"
        );
        assert!(
            err.contains("structure was not recognised: expected `a.iusc` result anchors"),
            "{err}"
        );

        let err = run(
            EngineKind::DuckDuckGo,
            ResponseKind::Page,
            429,
            "duckduckgo/i_js_minecraft_default.json",
        )
        .unwrap_err();
        assert!(err.ends_with("rate limited"), "{err}");

        let err = run(
            EngineKind::Bing,
            ResponseKind::Vqd,
            200,
            "bing/async_no_results.html",
        )
        .unwrap_err();
        assert!(err.contains("bing has no token step"), "{err}");
    }
}
