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
