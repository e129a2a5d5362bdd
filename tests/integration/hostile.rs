//! No panic, no hang: every subcommand run with hostile arguments (missing, empty, huge, FIFO,
//! non-UTF-8 and unreadable paths, missing folders) and with closed stdout and stderr ends
//! with exit 0, 1 or 2, a message when it failed, and within its time limit.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::store::{Fixture, picture};
use super::util::{lennonnet, ok};

/// How long any one of these runs may take (they all fail or finish at once).
const LIMIT: Duration = Duration::from_secs(10);

struct Paths {
    missing: PathBuf,
    empty: PathBuf,
    huge: PathBuf,
    fifo: PathBuf,
    odd: PathBuf,
    unreadable: PathBuf,
    missing_dir: PathBuf,
    out: PathBuf,
}

fn paths(root: &std::path::Path) -> Paths {
    let p = |n: &str| root.join(n);
    std::fs::write(p("empty.png"), b"").unwrap();
    let huge = std::fs::File::create(p("huge.png")).unwrap();
    huge.set_len(1 << 30).unwrap();
    let fifo = p("fifo.png");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let odd = root.join(OsStr::from_bytes(b"odd \xff\xfe name.png"));
    std::fs::write(&odd, picture(5)).unwrap();
    let unreadable = p("unreadable");
    std::fs::create_dir_all(&unreadable).unwrap();
    std::fs::write(unreadable.join("a.png"), picture(6)).unwrap();
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    Paths {
        missing: p("missing.png"),
        empty: p("empty.png"),
        huge: p("huge.png"),
        fifo,
        odd,
        unreadable,
        missing_dir: p("no/such/dir"),
        out: p("out"),
    }
}

/// Runs `args` with stdout and stderr captured (or closed pipes), killing it past [`LIMIT`].
/// Returns the exit code and stderr.
fn run_limited(args: &[OsString], closed: bool) -> (Option<i32>, String) {
    let mut cmd = lennonnet();
    cmd.args(args);
    let err_file = tempfile::NamedTempFile::new().unwrap();
    if closed {
        cmd.stdout(Stdio::from(super::store::closed_pipe()))
            .stderr(Stdio::from(super::store::closed_pipe()));
    } else {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::from(err_file.reopen().unwrap()));
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return (None, format!("ran past {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        status.code(),
        std::fs::read_to_string(err_file.path()).unwrap_or_default(),
    )
}

#[test]
fn every_command_survives_hostile_arguments_without_panic_or_hang() {
    let f = Fixture::new();
    let c = f.config.clone();
    let pics = f.pictures("john", 0..3);
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        &c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    ok(&["-q", "curate", "-c", &c]);
    let p = paths(f.dir.path());
    let hostile: Vec<(&str, &PathBuf)> = vec![
        ("missing", &p.missing),
        ("empty", &p.empty),
        ("huge", &p.huge),
        ("fifo", &p.fifo),
        ("odd", &p.odd),
        ("unreadable", &p.unreadable),
        ("missing_dir", &p.missing_dir),
    ];
    let s = |x: &str| OsString::from(x);
    let mut cases: Vec<Vec<OsString>> = Vec::new();
    for (name, h) in &hostile {
        let h = h.as_os_str().to_os_string();
        let out = p.out.join("x").into_os_string();
        // The path as a config file.
        for cmd in [
            &["plan"][..],
            &["scrape", "--no-progress"],
            &["store", "stats"],
            &["store", "verify"],
            &["store", "gc"],
            &["store", "failures"],
            &["store", "reindex"],
            &["store", "repair", "--no-fetch"],
            &["curate"],
            &["snapshot", "list"],
            &["snapshot", "create"],
            &["train", "--epochs", "1"],
        ] {
            let mut a: Vec<OsString> = cmd.iter().map(|x| s(x)).collect();
            a.extend([s("-c"), h.clone()]);
            cases.push(a);
        }
        // The path as an input, with a good config.
        let with_c = |mut v: Vec<OsString>| {
            v.extend([s("-c"), s(&c)]);
            v
        };
        cases.push(with_c(vec![
            s("store"),
            s("add"),
            s("-g"),
            s("john"),
            s("-l"),
            s("john"),
            h.clone(),
        ]));
        cases.push(with_c(vec![
            s("store"),
            s("repair"),
            s("--no-fetch"),
            s("--file"),
            h.clone(),
        ]));
        cases.push(with_c(vec![
            s("curate"),
            s("--from-run"),
            h.clone(),
            s("--dry-run"),
        ]));
        cases.push(with_c(vec![
            s("snapshot"),
            s("export"),
            s("latest"),
            s("--format"),
            s("imagefolder"),
            s("--out"),
            h.clone(),
        ]));
        cases.push(with_c(vec![s("eval"), s("--run"), h.clone()]));
        cases.push(with_c(vec![
            s("report"),
            s("--run"),
            h.clone(),
            s("--out"),
            out.clone(),
        ]));
        cases.push(vec![s("predict"), s("--run"), h.clone(), h.clone()]);
        cases.push(with_c(vec![
            s("review"),
            s("--run"),
            h.clone(),
            s("--no-open"),
        ]));
        cases.push(vec![
            s("engines"),
            s("parse"),
            s("--engine"),
            s("bing"),
            h.clone(),
        ]);
        cases.push(vec![
            s("engines"),
            s("parse"),
            s("--engine"),
            s("duckduckgo"),
            s("--kind"),
            s("vqd"),
            h.clone(),
        ]);
        cases.push(vec![s("sheet"), h.clone(), s("--out"), out.clone()]);
        cases.push(vec![
            s("weights"),
            s("import"),
            h.clone(),
            s("--out"),
            out.clone(),
        ]);
        cases.push(vec![
            s("model"),
            s("info"),
            s("resnet10t"),
            s("--weights"),
            h.clone(),
        ]);
        cases.push(vec![
            s("mirror"),
            s("generate"),
            s("--out"),
            out.clone(),
            s("-c"),
            h.clone(),
        ]);
        cases.push(vec![
            s("mirror"),
            s("generate"),
            s("--out"),
            out.clone(),
            s("--queries"),
            h.clone(),
            s("--limit-per-query"),
            s("1"),
        ]);
        // An empty world file is a valid one (every default): the mirror would serve.
        if *name != "empty" {
            cases.push(vec![
                s("mirror"),
                s("serve"),
                s("--addr"),
                s("127.0.0.1:0"),
                s("--world"),
                h.clone(),
            ]);
        }
        cases.push(vec![
            s("mirror"),
            s("serve"),
            s("--addr"),
            s("127.0.0.1:0"),
            s("--warm"),
            h.clone(),
        ]);
    }
    for extra in [
        &["curate", "--explain", "zz"][..],
        &["curate", "--explain", ""],
        &["snapshot", "show", "nope"],
        &["snapshot", "diff", "a", "b"],
        &["snapshot", "verify", "latest"],
        &["store", "add", "-g", "", "-l", "john", "."],
        &["weights", "fetch", "not-a-spec"],
        &["model", "info", "no_such_model"],
    ] {
        let mut a: Vec<OsString> = extra.iter().map(|x| s(x)).collect();
        a.extend([s("-c"), s(&c)]);
        cases.push(a);
    }
    let started = Instant::now();
    let mut failures = Vec::new();
    for (i, args) in cases.iter().enumerate() {
        // Every third case also with closed stdout and stderr.
        for closed in [false, true] {
            if closed && i % 3 != 0 {
                continue;
            }
            let t = Instant::now();
            let (code, stderr) = run_limited(args, closed);
            if t.elapsed() > Duration::from_secs(2) {
                eprintln!("slow: {args:?} {:.1} s", t.elapsed().as_secs_f64());
            }
            let fine = match code {
                Some(0) => true,
                Some(1 | 2) => closed || stderr.contains("error"),
                _ => false,
            };
            if !fine {
                failures.push(format!(
                    "{args:?} (closed pipes: {closed}): exit {code:?}\n{}",
                    stderr.lines().take(6).collect::<Vec<_>>().join("\n")
                ));
            }
        }
    }
    eprintln!(
        "{} hostile runs in {:.1} s",
        cases.len() + cases.len().div_ceil(3),
        started.elapsed().as_secs_f64()
    );
    std::fs::set_permissions(
        &p.unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
