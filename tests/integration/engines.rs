//! `lennonnet engines check` and the engines' side of `lennonnet scrape` against the mirror:
//! the canary table, every response saved, the exit codes, and the Commons contact check.

use super::util::{MirrorProcess, mirror_config, run, write};

#[test]
fn engines_check_passes_on_the_mirror_and_saves_every_response() {
    let mirror = MirrorProcess::start(5, None);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        &mirror_config(mirror.port, dir.path(), 4),
    );
    let save = dir.path().join("check");
    let out = run(&[
        "-q",
        "engines",
        "check",
        "--config",
        config.to_str().unwrap(),
        "--save",
        save.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let engines: Vec<&str> = rows.iter().map(|r| r["engine"].as_str().unwrap()).collect();
    assert_eq!(engines, ["duckduckgo", "bing", "wikimedia_commons"]);
    for r in rows {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["pages"], 2, "{r}");
        assert!(r["candidates"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["advice"], "works");
    }
    // Token page + 2 pages for DuckDuckGo, 2 pages each for the others, each with its .meta.
    let mut saved: Vec<String> = std::fs::read_dir(&save)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    saved.sort();
    assert_eq!(
        saved.iter().filter(|n| n.ends_with(".body")).count(),
        7,
        "{saved:?}"
    );
    assert_eq!(
        saved.iter().filter(|n| n.ends_with(".meta")).count(),
        7,
        "{saved:?}"
    );
    assert!(saved.iter().any(|n| n.ends_with("-duckduckgo-token.body")));

    // The table form names each engine and where the responses are.
    let table = run(&[
        "-q",
        "engines",
        "check",
        "--config",
        config.to_str().unwrap(),
        "--engine",
        "bing",
        "--query",
        "teapot",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("bing"), "{}", table.stdout);
    assert!(
        table.stdout.contains("1 of 1 engines work for \"teapot\""),
        "{}",
        table.stdout
    );
}

#[test]
fn engines_check_fails_with_exit_1_naming_the_saved_response() {
    // Nothing listens on this port: every engine fails; `--require any` fails too.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "c.toml", &mirror_config(port, dir.path(), 4));
    let out = run(&[
        "-q",
        "engines",
        "check",
        "--config",
        config.to_str().unwrap(),
        "--require",
        "any",
        "--save",
        dir.path().join("check").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("3 of 3 engines failed the check"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("no answer"), "{}", out.stdout);
}

#[test]
fn the_real_commons_is_not_sent_a_placeholder_contact() {
    // The founding config points at the real engines with the placeholder contact: `plan`
    // reads it, `engines check` and `scrape` refuse it before any request (exit 2), naming
    // the key and the policy.
    let plan = run(&["-q", "plan", "--config", "config/lennonnet.toml"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    for args in [
        &["engines", "check", "--config", "config/lennonnet.toml"][..],
        &["scrape", "--config", "config/lennonnet.toml"][..],
    ] {
        let out = run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("key `http.user_agent`"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("User-Agent policy"), "{}", out.stderr);
        assert!(out.stderr.contains("example.invalid"), "{}", out.stderr);
    }
}
