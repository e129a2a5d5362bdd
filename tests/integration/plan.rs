//! `lennonnet plan` over the shipped configs and over broken ones.

use std::io::Read;
use std::process::Stdio;

use super::util::{lennonnet, run, write};

#[test]
fn founding_plan_is_byte_identical_between_runs() {
    let a = run(&["plan", "--config", "config/lennonnet.toml"]);
    let b = run(&["plan", "--config", "config/lennonnet.toml"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert!(!a.raw_stdout.is_empty());
    assert_eq!(a.raw_stdout, b.raw_stdout);
    // Every row is one JSON object with the documented fields.
    for line in a.stdout.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "id", "text", "group", "label", "engine", "wanted", "purpose", "tier",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {line}");
        }
    }
}

#[test]
fn founding_plan_table_shows_the_founding_counts() {
    let r = run(&[
        "plan",
        "--config",
        "config/lennonnet.toml",
        "--format",
        "table",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = &r.stdout;
    let has_row = |cells: &[&str]| {
        t.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() >= cells.len() && words[..cells.len()] == *cells
        })
    };
    // by class
    assert!(has_row(&["train", "john", "1", "1,320"]), "{t}");
    assert!(has_row(&["train", "not_john", "104", "11,300"]), "{t}");
    assert!(has_row(&["eval", "not_john", "3", "3,000"]), "{t}");
    // by group
    assert!(has_row(&["john", "john", "train", "1,320"]), "{t}");
    for g in ["paul", "george", "ringo"] {
        assert!(has_row(&[g, "not_john", "train", "100"]), "{g}: {t}");
        assert!(
            has_row(&[&format!("eval_{g}"), "not_john", "eval", "1,000"]),
            "{g}: {t}"
        );
    }
    assert!(has_row(&["person", "not_john", "train", "1,000"]), "{t}");
    assert!(
        has_row(&[
            "word_*", "(100", "groups)", "not_john", "train", "100", "×", "100"
        ]),
        "{t}"
    );
}

#[test]
fn word_groups_come_from_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string("config/lennonnet.toml").unwrap();
    let words = std::fs::canonicalize("config/words.txt").unwrap();
    let src = src.replace(
        "file = \"words.txt\"",
        &format!("file = {:?}", words.to_str().unwrap()),
    );
    let groups = |config: &str| -> Vec<String> {
        let path = write(dir.path(), "c.toml", config);
        let r = run(&["plan", "--config", path.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut g: Vec<String> = r
            .stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["group"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .filter(|g| g.starts_with("word_"))
            .collect();
        g.dedup();
        g
    };
    let a = groups(&src);
    assert_eq!(a.len(), 100);
    assert_eq!(a, groups(&src));
    let b = groups(&src.replace("seed = 1940", "seed = 1941"));
    assert_eq!(b.len(), 100);
    assert!(
        a.iter().filter(|w| b.contains(w)).count() < 30,
        "another seed picks mostly the same words"
    );
}

#[test]
fn broken_configs_exit_2_with_one_message_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string("config/lennonnet.toml").unwrap();
    let check = |from: &str, to: &str, expected: &str| {
        assert!(src.contains(from));
        let path = write(dir.path(), "broken.toml", &src.replacen(from, to, 1));
        let r = run(&["plan", "--config", path.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stdout.is_empty());
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one message, got:\n{}", r.stderr);
        let expected = format!("error: {}:{expected}", path.display());
        assert_eq!(lines[0], expected);
    };
    check(
        "max_redirects = 5",
        "max_redirect = 5",
        "64:1: key `fetch.max_redirect`: unknown field `max_redirect`, expected one of `concurrency`, `per_host_concurrency`, `host_concurrency`, `per_host_requests_per_sec`, `connect_timeout_secs`, `first_byte_timeout_secs`, `total_timeout_secs`, `stall_min_bytes_per_sec`, `stall_window_secs`, `max_bytes`, `max_redirects`, `max_retries`, `retry_base_delay_ms`",
    );
    check(
        "wanted = 1320",
        "wanted = -1320",
        "93:10: key `group[0].wanted`: expected a positive whole number of images (1 to 4294967295), found -1320",
    );
}

#[test]
fn missing_config_names_the_file() {
    let r = run(&["plan", "--config", "config/nope.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: cannot read config/nope.toml\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn closed_stdout_is_success() {
    let mut child = lennonnet()
        .args(["plan", "--config", "config/lennonnet.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
