//! The binary's contract: help on every command, exit codes, data on stdout only.

use super::util::run;

#[test]
fn every_command_has_help() {
    let top = run(&["--help"]);
    assert_eq!(top.code, 0, "{}", top.stderr);
    let commands: Vec<String> = top
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.contains(&"plan".to_string()), "{}", top.stdout);
    for c in &commands {
        let help = run(&[c, "--help"]);
        assert_eq!(help.code, 0, "{c} --help: {}", help.stderr);
        assert!(
            help.stdout.contains("Usage: lennonnet"),
            "{c} --help:\n{}",
            help.stdout
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    let r = run(&["plan", "--no-such-flag"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn version_prints_to_stdout() {
    let r = run(&["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("lennonnet "), "{}", r.stdout);
}

/// `make test` sets itself up: where it cannot install what the tests need, it stops within
/// seconds with the exact command to run (here: no Python for the PyPI assets).
#[test]
fn make_test_setup_stops_at_once_with_the_command_to_run() {
    let assets = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("bash")
        .arg(super::util::root().join("scripts/test-setup.sh"))
        .env("ASSETS", assets.path())
        .env("PYTHON", "/nonexistent/python3")
        .env("LENNONNET_CHROMIUM", "/bin/true")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("run: sudo apt-get install -y python3 python3-pip"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The Makefile's test target runs the setup first, and every crate's tests even when one
    // fails.
    let makefile = std::fs::read_to_string(super::util::root().join("Makefile")).unwrap();
    let recipe: Vec<&str> = makefile
        .lines()
        .skip_while(|l| !l.starts_with("test:"))
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .collect();
    assert!(recipe[0].contains("scripts/test-setup.sh"), "{recipe:?}");
    assert!(recipe[1].contains("--no-fail-fast"), "{recipe:?}");
}
