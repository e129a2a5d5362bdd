//! The store's commands under damage and hostile input: torn journals, a deleted journal,
//! closed pipes, odd file names, huge files, bad flag values, a read-only dataset.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::util::{lennonnet, mirror_config, ok, run, write};

/// A dataset folder and a config pointing at it (no mirror needed: only `store` commands, curate
/// and snapshot run against it).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config: String,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = mirror_config(9, &dir.path().join("data"), 1);
        let config = write(dir.path(), "c.toml", &text)
            .to_string_lossy()
            .into_owned();
        Self { dir, config }
    }

    pub fn dataset(&self) -> PathBuf {
        self.dir.path().join("data").join("t")
    }

    /// `n` distinct pictures as PNG files in a new folder `name`.
    pub fn pictures(&self, name: &str, seeds: std::ops::Range<u32>) -> PathBuf {
        let folder = self.dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for s in seeds {
            std::fs::write(folder.join(format!("p{s:03}.png")), picture(s)).unwrap();
        }
        folder
    }

    pub fn journal(&self) -> PathBuf {
        self.dataset().join("journal").join("00000001.jsonl")
    }
}

/// A 96×80 PNG that differs clearly from other seeds' (a pattern of stripes and blocks).
pub fn picture(seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 80, |x, y| {
        let h = (x / (4 + seed % 7)) ^ (y / (3 + seed % 5)) ^ seed;
        let v = ((h.wrapping_mul(2654435761) >> 13) & 0xff) as u8;
        image::Rgb([v, v.wrapping_add((seed * 40) as u8), 255 - v])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Cuts the file at `path` to `len` bytes (as a crash can).
fn cut(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// The byte offset at which each line of `path` starts.
fn line_starts(path: &Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut at = 0;
    text.split_inclusive('\n')
        .map(|l| {
            let start = at;
            at += l.len() as u64;
            (start, l.to_string())
        })
        .collect()
}

#[test]
fn a_journal_cut_between_ingest_and_provenance_leaves_curate_and_snapshot_working() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..3);
    let c = f.config.as_str();
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    // Cut after the last image's `ingest` record, before its `provenance` record.
    let lines = line_starts(&f.journal());
    let last = lines.last().unwrap();
    assert!(last.1.contains("\"provenance\""), "{}", last.1);
    cut(&f.journal(), last.0);

    let stats = ok(&["-q", "store", "stats", "-c", c, "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["images"], 3);
    assert_eq!(stats["no_provenance"], 1, "{stats}");
    assert_eq!(stats["by_label"]["john"]["accepted"], 2, "{stats}");
    let verify = run(&["-q", "store", "verify", "-c", c]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(
        verify.stdout.contains("no_provenance ") && verify.stdout.contains("rerun"),
        "{}",
        verify.stdout
    );
    let curate = run(&["-q", "curate", "-c", c, "--json"]);
    assert_eq!(curate.code, 0, "curate: {}", curate.stderr);
    let report: serde_json::Value = serde_json::from_str(&curate.stdout).unwrap();
    assert_eq!(
        (report["images"].as_u64(), report["no_provenance"].as_u64()),
        (Some(2), Some(1))
    );
    ok(&["-q", "snapshot", "-c", c, "create"]);

    // Rerunning the interrupted `store add` restores the provenance; curation takes it in.
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["-q", "store", "stats", "-c", c, "--json"])).unwrap();
    assert_eq!(stats["no_provenance"], 0, "{stats}");
    let report: serde_json::Value =
        serde_json::from_str(&ok(&["-q", "curate", "-c", c, "--json"])).unwrap();
    assert_eq!(report["images"], 3);
    ok(&["-q", "store", "verify", "-c", c]);
}

#[test]
fn a_deleted_journal_is_refused_and_gc_never_deletes_unaccounted_objects_without_force() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..3);
    let c = f.config.as_str();
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    let objects = super::util::objects(&f.dataset());
    assert_eq!(objects.len(), 3);

    // An orphan object (its journal records lost): gc lists it and refuses to delete it.
    let lines = line_starts(&f.journal());
    cut(&f.journal(), lines[lines.len() - 2].0);
    let dry = run(&["-q", "store", "gc", "-c", c]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("would remove orphan "),
        "{}",
        dry.stdout
    );
    let refused = run(&["-q", "store", "gc", "-c", c, "--yes"]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains("would remove orphan "),
        "{}",
        refused.stdout
    );
    assert!(refused.stderr.contains("store repair") && refused.stderr.contains("--force"));
    assert_eq!(super::util::objects(&f.dataset()), objects);

    // A deleted journal: every command that opens the store refuses, naming the repair.
    std::fs::remove_dir_all(f.dataset().join("journal")).unwrap();
    for args in [
        &["store", "stats"][..],
        &["store", "verify"],
        &["store", "gc", "--yes"],
        &["curate"],
        &[
            "store",
            "add",
            "-g",
            "john",
            "-l",
            "john",
            pics.to_str().unwrap(),
        ],
    ] {
        let mut a = vec!["-q"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-c", c]);
        let r = run(&a);
        assert_eq!(r.code, 1, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("journal") && r.stderr.contains("store repair"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(
        super::util::objects(&f.dataset()),
        objects,
        "nothing was deleted"
    );
    assert!(!f.dataset().join("journal").exists());
}

/// A pipe whose reading end is already closed: writing to it gives EPIPE.
pub fn closed_pipe() -> std::fs::File {
    let mut fds = [0; 2];
    // SAFETY: pipe() fills two descriptors we then own; the read end is closed at once.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        std::os::fd::FromRawFd::from_raw_fd(fds[1])
    }
}

#[test]
fn closed_pipes_end_every_store_command_quietly_with_exit_0() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..4);
    let c = f.config.as_str();
    let p = pics.to_str().unwrap();
    ok(&["-q", "store", "add", "-c", c, "-g", "john", "-l", "john", p]);
    // Logs at debug level, so that stderr is written to as much as possible (the index's
    // threads too), and stdout and stderr both closed pipes.
    for args in [
        &["store", "add", "-g", "john", "-l", "john", p][..],
        &["store", "stats"],
        &["store", "stats", "--json"],
        &["store", "verify"],
        &["store", "reindex"],
        &["store", "failures", "--all"],
        &["store", "gc"],
        &["curate"],
        &["curate", "--json"],
        &["snapshot", "create"],
        &["snapshot", "list"],
        &["snapshot", "show", "latest"],
        &["plan"],
        &["plan", "--format", "table"],
        &["--help"],
        &["store", "--help"],
    ] {
        let mut a = vec!["-vv"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-c", c]);
        let status = lennonnet()
            .args(&a)
            .stdout(Stdio::from(closed_pipe()))
            .stderr(Stdio::from(closed_pipe()))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?} with closed pipes");
    }
    // Commands without a config.
    let fixture =
        super::util::root().join("tests/fixtures/engines/bing/async_john_lennon_first1.html");
    for args in [
        &["model", "list"][..],
        &["model", "list", "--json"],
        &["model", "info", "resnet10t", "--params"],
        &["--version"],
        &[
            "engines",
            "parse",
            "--engine",
            "bing",
            fixture.to_str().unwrap(),
        ],
    ] {
        let mut a = vec!["-vv"];
        a.extend_from_slice(args);
        let status = lennonnet()
            .args(&a)
            .stdout(Stdio::from(closed_pipe()))
            .stderr(Stdio::from(closed_pipe()))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?} with closed pipes");
    }
}

#[test]
fn a_file_name_that_is_not_utf8_is_added_under_its_own_name() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    let folder = f.dir.path().join("odd");
    std::fs::create_dir_all(&folder).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9 100%.png");
    std::fs::write(folder.join(name), picture(1)).unwrap();
    std::fs::write(folder.join("plain.png"), picture(2)).unwrap();
    let c = f.config.as_str();
    let r = run(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        folder.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("caf%E9 100%25.png"), "{}", r.stdout);
    let journal = std::fs::read_to_string(f.journal()).unwrap();
    assert!(journal.contains("caf%E9 100%25.png"), "{journal}");
    assert!(
        !journal.contains('\u{fffd}'),
        "a name was replaced by U+FFFD"
    );
}

#[test]
fn bad_flag_values_are_bad_usage_with_exit_2() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..1);
    let c = f.config.as_str();
    let p = pics.to_str().unwrap();
    for args in [
        &["-g", "john", "-l", "nobody"][..],
        &["-g", "Bad Group!", "-l", "john"],
        &["-g", "john", "-l", "Bad Label!"],
        &["-g", "john", "-l", "not_john"],
        &["-g", "john", "-l", "john", "--purpose", "both"],
    ] {
        let mut a = vec!["-q", "store", "add", "-c", c];
        a.extend_from_slice(args);
        a.push(p);
        let r = run(&a);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error: "), "{args:?}: {}", r.stderr);
    }
    assert!(super::util::objects(&f.dataset()).is_empty());
}

#[test]
fn a_local_file_over_the_size_cap_is_skipped_unread() {
    let f = Fixture::new();
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("[fetch]\n", "[fetch]\nmax_bytes = 10000\n");
    std::fs::write(&f.config, text).unwrap();
    let pics = f.pictures("john", 0..1);
    // A sparse 1 GB file: it would take 1 GB of memory if read whole.
    let big = std::fs::File::create(pics.join("huge.png")).unwrap();
    big.set_len(1 << 30).unwrap();
    let r = run(&[
        "-q",
        "store",
        "add",
        "-c",
        &f.config,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let rows: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let huge = rows
        .iter()
        .find(|v| v["path"].as_str().unwrap().ends_with("huge.png"))
        .unwrap();
    assert_eq!(huge["status"], "skipped");
    assert_eq!(huge["reason"], "too_large");
    assert_eq!(rows.iter().filter(|v| v["status"] == "accepted").count(), 1);
}

#[test]
fn messages_name_what_is_wrong() {
    let f = Fixture::new();
    let c = f.config.as_str();
    // --config after the subcommand.
    let r = run(&["snapshot", "show", "-c", c, "latest"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no snapshot yet") && !r.stderr.contains("No such file"),
        "{}",
        r.stderr
    );
    let r = run(&["curate", "-c", c, "--explain", "0"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("4 to 64"), "{}", r.stderr);
    let r = run(&["eval", "-c", c, "--run", "/nonexistent/run"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not a run folder") && !r.stderr.contains("nothing to resume"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("/nonexistent/run").count(),
        2,
        "{}",
        r.stderr
    );
    let words = std::fs::read_to_string(&f.config).unwrap()
        + "\n[words]\nfile = \"no-such-words.txt\"\nseed = 1\ncount = 3\nlabel = \"not_john\"\nwanted = 1\ngroup_prefix = \"w_\"\n";
    std::fs::write(&f.config, words).unwrap();
    let r = run(&["plan", "-c", c]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("words.file") && r.stderr.contains("no-such-words.txt"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("c.toml:"),
        "the config line is named: {}",
        r.stderr
    );
}

/// `store stats` and `store verify` on a dataset mounted read-only (in a private mount
/// namespace): they read it, and write nothing.
#[test]
fn a_read_only_dataset_can_be_read_by_stats_and_verify() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..3);
    let c = f.config.as_str();
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    let expected = ok(&["-q", "store", "stats", "-c", c, "--json"]);
    let script = r#"set -u
mount --bind "$DS" "$DS" && mount -o remount,ro,bind "$DS" || exit 90
"$BIN" -q store stats -c "$CONF" --json > "$OUT/stats" 2> "$OUT/stats.err"; echo $? > "$OUT/stats.code"
"$BIN" -q store verify -c "$CONF" > "$OUT/verify" 2> "$OUT/verify.err"; echo $? > "$OUT/verify.code"
touch "$DS/x" 2>/dev/null && exit 92
exit 0
"#;
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("DS", f.dataset())
        .env("OUT", out.path())
        .env("CONF", c)
        .env("BIN", env!("CARGO_BIN_EXE_lennonnet"))
        .status()
        .unwrap();
    if status.code() == Some(90) || status.code() == Some(1) {
        if std::env::var("LENNONNET_SKIP_DISK_FULL_DRILL").as_deref() == Ok("1") {
            return;
        }
        panic!(
            "this test needs `unshare -rm` to mount the dataset read-only (as the disk-full \
             drill does); set LENNONNET_SKIP_DISK_FULL_DRILL=1 to skip it"
        );
    }
    assert!(status.success(), "{status:?}");
    let read = |n: &str| std::fs::read_to_string(out.path().join(n)).unwrap();
    assert_eq!(read("stats.code").trim(), "0", "{}", read("stats.err"));
    assert_eq!(read("stats"), expected);
    assert_eq!(read("verify.code").trim(), "0", "{}", read("verify.err"));
    assert!(
        read("verify").contains("verified 3 objects"),
        "{}",
        read("verify")
    );
}

#[test]
fn store_repair_re_adopts_the_objects_of_a_deleted_journal_and_restores_a_corrupt_object() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..3);
    let c = f.config.as_str();
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    // A corrupt object: verify names the repair; repair reads the bytes back from its
    // `local:` provenance.
    let id = super::util::objects(&f.dataset())
        .into_iter()
        .next()
        .unwrap();
    let obj = f.dataset().join("objects").join(&id[..2]).join(&id);
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&obj, &bytes).unwrap();
    let verify = run(&["-q", "store", "verify", "-c", c]);
    assert_eq!(verify.code, 1);
    assert!(
        verify.stdout.contains(&format!("corrupt {id}")) && verify.stdout.contains("store repair")
    );
    let repair = run(&["-q", "store", "repair", "-c", c, "--no-fetch"]);
    assert_eq!(repair.code, 0, "{}{}", repair.stdout, repair.stderr);
    assert!(
        repair
            .stdout
            .contains(&format!("restored {id} from local:")),
        "{}",
        repair.stdout
    );
    ok(&["-q", "store", "verify", "-c", c]);

    // A bad line in the middle of the journal: opening names the repair, repair quarantines it.
    let text = std::fs::read_to_string(f.journal()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(1, "{\"type\":\"provenance\",\"v\":1,\"id\":\"zz\"}");
    std::fs::write(f.journal(), lines.join("\n") + "\n").unwrap();
    let stats = run(&["-q", "store", "stats", "-c", c]);
    assert_eq!(stats.code, 1);
    assert!(
        stats.stderr.contains(":2: unreadable journal record")
            && stats.stderr.contains("store repair"),
        "{}",
        stats.stderr
    );
    let repair = run(&["-q", "store", "repair", "-c", c]);
    assert_eq!(repair.code, 0, "{}{}", repair.stdout, repair.stderr);
    assert!(repair.stdout.contains("quarantined "), "{}", repair.stdout);
    assert!(
        f.dataset()
            .join("journal-quarantine")
            .join("report.jsonl")
            .is_file()
    );
    ok(&["-q", "store", "stats", "-c", c]);

    // The journal deleted: repair re-adopts every object, with no provenance.
    std::fs::remove_dir_all(f.dataset().join("journal")).unwrap();
    let repair = run(&["-q", "store", "repair", "-c", c, "--json"]);
    assert_eq!(repair.code, 0, "{}{}", repair.stdout, repair.stderr);
    let report: serde_json::Value = serde_json::from_str(&repair.stdout).unwrap();
    assert_eq!(report["adopted"].as_array().unwrap().len(), 3, "{report}");
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["-q", "store", "stats", "-c", c, "--json"])).unwrap();
    assert_eq!(
        (stats["images"].as_u64(), stats["no_provenance"].as_u64()),
        (Some(3), Some(3))
    );
    let journal = std::fs::read_to_string(f.journal()).unwrap();
    assert_eq!(
        journal.matches("\"recovered\":true").count(),
        3,
        "{journal}"
    );
    // Re-adding the files brings their provenance back.
    ok(&[
        "-q",
        "store",
        "add",
        "-c",
        c,
        "-g",
        "john",
        "-l",
        "john",
        pics.to_str().unwrap(),
    ]);
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&["-q", "store", "stats", "-c", c, "--json"])).unwrap();
    assert_eq!(stats["no_provenance"], 0);
}

/// On a full disk (a 3 MiB tmpfs in a private mount namespace) with stdout and stderr a pipe
/// whose reader is gone, the store commands end at once with exit 0: no hang holding the
/// store lock, no panic in a background thread.
#[test]
fn a_full_disk_and_closed_pipes_neither_hang_nor_panic() {
    let f = Fixture::new();
    let pics = f.pictures("john", 0..3);
    let c = f.config.as_str();
    let mnt = f.dir.path().join("data");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = r#"set -u
mount -t tmpfs -o size=3m tmpfs "$MNT" || exit 90
"$BIN" -q store add -c "$CONF" -g john -l john "$PICS" > /dev/null || exit 91
"$BIN" -q curate -c "$CONF" > /dev/null || exit 92
dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
for cmd in "store stats" "store verify" "store failures --all" "curate" "store gc" "store reindex" "store stats --json"; do
  timeout 30 "$BIN" -vv $cmd -c "$CONF" 2>&1 | true
  echo "$cmd: ${PIPESTATUS[0]}" >> "$OUT/codes"
done
exit 0
"#;
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("unshare")
        .args(["-rm", "bash", "-c", script])
        .env("MNT", &mnt)
        .env("OUT", out.path())
        .env("CONF", c)
        .env("PICS", &pics)
        .env("BIN", env!("CARGO_BIN_EXE_lennonnet"))
        .status()
        .unwrap();
    if status.code() == Some(90) || status.code() == Some(1) {
        if std::env::var("LENNONNET_SKIP_DISK_FULL_DRILL").as_deref() == Ok("1") {
            return;
        }
        panic!(
            "this test needs `unshare -rm` to mount a small tmpfs (as the disk-full drill \
             does); set LENNONNET_SKIP_DISK_FULL_DRILL=1 to skip it"
        );
    }
    assert!(status.success(), "{status:?}");
    let codes = std::fs::read_to_string(out.path().join("codes")).unwrap();
    for line in codes.lines() {
        assert!(line.ends_with(": 0"), "{codes}");
    }
    assert_eq!(codes.lines().count(), 7, "{codes}");
}
