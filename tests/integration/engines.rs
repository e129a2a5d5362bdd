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
fn engines_check_fails_with_exit_1_when_no_engine_answers() {
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

#[test]
fn engines_check_fails_naming_the_saved_page_when_an_engine_changed_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let world = write(dir.path(), "world.toml", "[search]\nchanged = [\"bing\"]\n");
    let mirror = MirrorProcess::start(5, Some(&world));
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
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("1 of 3 engines failed the check: bing"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("not recognised"), "{}", out.stderr);
    // The message names the saved response, which `engines parse` reads as changed too.
    let saved = out
        .stderr
        .split("response saved as ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no saved response named: {}", out.stderr));
    assert!(std::path::Path::new(saved).exists(), "{saved}");
    let parse = run(&["-q", "engines", "parse", "--engine", "bing", saved]);
    assert_eq!(parse.code, 1, "{}", parse.stderr);
    assert!(parse.stderr.contains("not recognised"), "{}", parse.stderr);
    assert!(out.stdout.contains("the format changed"), "{}", out.stdout);
    // `--require any`: the other engines work, so the check passes.
    let any = run(&[
        "-q",
        "engines",
        "check",
        "--config",
        config.to_str().unwrap(),
        "--require",
        "any",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert_eq!(any.code, 0, "{}", any.stderr);
}

#[test]
fn a_strict_mirror_scrape_survives_its_blocks_and_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let world = write(dir.path(), "world.toml", "[search]\nprofile = \"strict\"\n");
    let mirror = MirrorProcess::start(6, Some(&world));
    let config = write(
        dir.path(),
        "c.toml",
        &mirror_config(mirror.port, dir.path(), 10),
    );
    let config = config.to_str().unwrap();
    let check = run(&["-q", "engines", "check", "--config", config]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let out = run(&["-q", "scrape", "--config", config, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let (mut wanted, mut got) = (0, 0);
    for g in report["groups"].as_array().unwrap() {
        wanted += g["wanted"].as_u64().unwrap();
        got += g["got"].as_u64().unwrap();
    }
    assert!(got * 100 >= wanted * 95, "{got} of {wanted}: {report}");
    assert!(report["engines"].as_array().unwrap().len() == 3, "{report}");
}

#[test]
fn a_scrape_against_an_engine_whose_format_changed_keeps_its_images_and_exits_1_naming_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let world = write(
        dir.path(),
        "world.toml",
        "[search]\nchanged = [\"duckduckgo\"]\n",
    );
    let mirror = MirrorProcess::start(7, Some(&world));
    let config = write(
        dir.path(),
        "c.toml",
        &mirror_config(mirror.port, dir.path(), 4),
    );
    let out = run(&[
        "-q",
        "scrape",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("the format of duckduckgo has changed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("lennonnet engines parse --engine duckduckgo"),
        "{}",
        out.stderr
    );
    let saved = dir.path().join("t/engines/changed");
    assert!(
        std::fs::read_dir(&saved).unwrap().count() >= 2,
        "no saved page in {}",
        saved.display()
    );
    // The other engines filled the groups meanwhile.
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for g in report["groups"].as_array().unwrap() {
        assert_eq!(g["got"], g["wanted"], "{g}");
    }
    let ddg = &report["engines"][0];
    assert_eq!(ddg["engine"], "duckduckgo");
    assert_eq!(ddg["format_changed"], true, "{ddg}");
}
