//! `lennonnet report` as a user runs it, and the page it writes opened in headless Chromium
//! (Debian's `chromium` package; `.ci/run` installs it): no console message, every image
//! decoded, no request, and a screenshot that is a real picture of the page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lennonnet_report::fixture::{FixtureSpec, write_run};
use lennonnet_train::synthetic::{SyntheticSpec, write_dataset};

use super::util::{run, synthetic_run_setup, write};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A run folder with an eval/ folder whose snapshot is a real one in a dataset under `root`,
/// and a config that points at that dataset.
fn setup(root: &Path) -> (PathBuf, PathBuf) {
    let snapshot = write_dataset(
        &root.join("datasets").join("syn"),
        &SyntheticSpec::default(),
    )
    .expect("synthetic dataset");
    let run_dir = root.join("runs").join("efficientnet_lite0-head-syn-s7");
    let spec = FixtureSpec {
        name: "efficientnet_lite0-head-syn-s7".into(),
        snapshot: snapshot.id().to_string(),
        ..FixtureSpec::default()
    };
    write_run(&run_dir, &spec).expect("fixture run");
    let config = write(
        root,
        "syn.toml",
        &format!(
            r#"[dataset]
name = "syn"
root_dir = {:?}

[[class]]
name = "john"

[[class]]
name = "not_john"

[[group]]
name = "john"
label = "john"
wanted = 10
queries = ["john lennon"]

[[group]]
name = "george"
label = "not_john"
wanted = 10
queries = ["george harrison"]

[split]
key = "k"
val_fraction = 0.25
"#,
            root.join("datasets")
        ),
    );
    (run_dir, config)
}

/// Chromium, or a failure that says how to install it: this test is never skipped.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("LENNONNET_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMIUM));
    assert!(
        path.is_file(),
        "{} is missing: the report test needs headless Chromium. Install Debian's package with \
         `apt-get install -y chromium` (.ci/run does), or point LENNONNET_CHROMIUM at a chromium \
         binary.",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `extra` flags in a fresh profile; returns (stdout,
/// stderr) after checking that it exited cleanly.
fn headless(profile: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("cannot start chromium");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "chromium failed: {}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

/// The page's console messages (errors, warnings, logs) as Chromium logs them.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// Appended to a copy of the page: on load, writes what the images and the network did into
/// the DOM, which --dump-dom prints.
const CHECK: &str = r#"<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0); })
                   .map(function (i) { return i.alt || i.src.slice(0, 48); });
  var requests = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  var pre = document.createElement('pre');
  pre.id = 'lennonnet-check';
  pre.textContent = JSON.stringify({ images: imgs.length, broken: broken, requests: requests,
    height: document.documentElement.scrollHeight });
  document.body.appendChild(pre);
});
</script>"#;

/// Opens `page` in headless Chromium twice (as it is, for the console and a screenshot; and a
/// copy with [`CHECK`] appended, for the images and the network) and checks everything. Returns
/// the number of images and the screenshot's path.
fn check_in_chromium(page: &Path, work: &Path) -> (u64, PathBuf) {
    let html = std::fs::read_to_string(page).unwrap();

    // 1. The page as it is: no console message.
    let shot = work.join("screenshot.png");
    let (_, stderr) = headless(
        &work.join("profile-shot"),
        page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400",
        ],
    );
    assert_eq!(
        console_lines(&stderr),
        Vec::<&str>::new(),
        "console messages"
    );

    // 2. A copy with the check appended: every image decoded, nothing fetched.
    let checked = page.with_file_name("check.html");
    std::fs::write(
        &checked,
        html.replace("</body>", &format!("{CHECK}</body>")),
    )
    .unwrap();
    let (dom, stderr) = headless(&work.join("profile-dom"), &checked, &["--dump-dom"]);
    std::fs::remove_file(&checked).unwrap();
    assert_eq!(
        console_lines(&stderr),
        Vec::<&str>::new(),
        "console messages"
    );
    let start = dom.find("<pre id=\"lennonnet-check\">").unwrap_or_else(|| {
        panic!(
            "the check did not run; DOM:\n{}",
            &dom[..dom.len().min(2000)]
        )
    }) + "<pre id=\"lennonnet-check\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let check: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        check["broken"],
        serde_json::json!([]),
        "images that did not render"
    );
    assert_eq!(
        check["requests"],
        serde_json::json!([]),
        "the page fetched something"
    );
    assert!(check["height"].as_u64().unwrap() > 2000, "{check}");

    // 3. The screenshot: a PNG of the window, not blank, with the dark headline band on top.
    let img = image::open(&shot)
        .expect("the screenshot is a PNG")
        .to_rgb8();
    assert_eq!(img.dimensions(), (1280, 2400));
    let mut colours = std::collections::HashSet::new();
    let mut dark_top = 0;
    for (_, y, p) in img.enumerate_pixels() {
        colours.insert(p.0);
        if y < 200 && p.0.iter().all(|&c| c < 80) {
            dark_top += 1;
        }
    }
    assert!(
        colours.len() > 500,
        "a blank screenshot: {} colours",
        colours.len()
    );
    assert!(
        dark_top > 1280 * 50,
        "no headline band: {dark_top} dark pixels"
    );
    (check["images"].as_u64().unwrap(), shot)
}

fn thumbnails(run_dir: &Path) -> u64 {
    ["errors", "suspects"]
        .iter()
        .map(
            |d| match std::fs::read_dir(run_dir.join("eval/gallery").join(d)) {
                Ok(entries) => entries.count() as u64,
                Err(_) => 0,
            },
        )
        .sum()
}

#[test]
fn the_report_renders_in_headless_chromium_without_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (run_dir, config) = setup(tmp.path());
    let out_dir = tmp.path().join("report");
    let r = run(&[
        "report",
        "--run",
        run_dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let page = out_dir.join("report.html");
    assert!(
        r.stdout.contains(&format!("report    {}", page.display())),
        "{}",
        r.stdout
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Snapshot <code"),
        "the dataset summary shows the snapshot"
    );
    let plots = r.stdout.lines().filter(|l| l.starts_with("plot ")).count();
    assert_eq!(plots, 6, "{}", r.stdout);

    let (images, shot) = check_in_chromium(&page, tmp.path());
    assert_eq!(images, 6 + thumbnails(&run_dir));
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    std::fs::copy(&shot, &keep).unwrap();
    eprintln!("screenshot: {}", keep.display());
}

/// A real run: a small model trained on a synthetic snapshot (no test split), evaluated by
/// `lennonnet eval`, reported by `lennonnet report` into the default folder.
#[test]
fn a_trained_and_evaluated_run_reports_in_chromium() {
    let (tmp, config) = synthetic_run_setup("epochs = 2");
    let root = tmp.path();
    let config = config.to_str().unwrap();
    let run_dir = root.join("runs").join("r");
    let run_arg = run_dir.to_str().unwrap();
    for args in [
        vec!["-q", "train", "--config", config, "--run", "r"],
        vec!["-q", "eval", "--config", config, "--run", run_arg],
        vec!["-q", "report", "--config", config, "--run", run_arg],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 0, "{args:?}\n{}\n{}", r.stdout, r.stderr);
    }
    let page = run_dir.join("report").join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("No test split in this snapshot"),
        "the page says what it shows"
    );
    let (images, _) = check_in_chromium(&page, root);
    // Loss, accuracy, confusion, ROC and reliability (no eval sets: no histograms).
    assert_eq!(images, 5 + thumbnails(&run_dir));
}

#[test]
fn report_without_eval_says_to_run_eval_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (run_dir, config) = setup(tmp.path());
    std::fs::remove_file(run_dir.join("eval/metrics.json")).unwrap();
    let r = run(&[
        "report",
        "--run",
        run_dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "run `lennonnet eval --run {}` first",
            run_dir.display()
        )),
        "{}",
        r.stderr
    );
    assert!(!run_dir.join("report").exists(), "nothing written");
}
