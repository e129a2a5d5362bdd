//! `lennonnet review` as a user runs it: a store, a snapshot and a small trained run made here
//! without the network, eval's suspects.jsonl and features.safetensors written by the test, the
//! server started as a child, and the page driven in headless Chromium over the DevTools
//! protocol (headless_chrome) with real key presses and clicks. Checks: requests without the
//! token (or with a wrong one) are refused; keys move the selection and journal reviews (read
//! back through the store API once the server has stopped); `u` undoes; `x` excludes; the page
//! of 1,000 suspects paints in under a second; the reviews in force show after a restart; the
//! try-it tab's API scores a picture.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use headless_chrome::{Browser, LaunchOptions, Tab};
use lennonnet_core::ContentId;
use lennonnet_records::eval::{Neighbour, Source, Suspect, Truth};
use lennonnet_store::ReviewAction;

use super::report::chromium;
use super::util::{lennonnet, ok, write};

/// Suspects on the page: the images of the snapshot first, then made-up ids (no object).
const SUSPECTS: usize = 1000;
/// resnet10t's pooled feature width.
const FEATURE_DIM: usize = 512;

/// A picture of class `a` (a disc) or `b` (a square), varied by `seed`.
fn picture(class: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as u32
    };
    let (w, h) = (96 + next() % 32, 96 + next() % 32);
    let bg = [next() % 120, next() % 120, 120 + next() % 120].map(|v| v as u8);
    let fg = [150 + next() % 100, next() % 200, next() % 80].map(|v| v as u8);
    let (cx, cy, r) = (
        (w / 2 + next() % 16) as i64 - 8,
        (h / 2 + next() % 16) as i64 - 8,
        20 + (next() % 16) as i64,
    );
    let img = image::RgbImage::from_fn(w, h, |px, py| {
        let (dx, dy) = (px as i64 - cx, py as i64 - cy);
        let inside = if class == 0 {
            dx * dx + dy * dy <= r * r
        } else {
            dx.abs() <= r && dy.abs() <= r
        };
        let noise = (next() % 30) as u8;
        image::Rgb(if inside { fg } else { bg }.map(|v| v.saturating_add(noise)))
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A dataset of 2 × 20 pictures in a store, curated, snapshotted and trained on for one epoch;
/// returns (temp folder, config, run folder, snapshot rows as (id, label, split, group)).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Vec<[String; 4]>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let text = format!(
        r#"[dataset]
name = "rev"
root_dir = {datasets:?}

[[class]]
name = "a"

[[class]]
name = "b"

[[group]]
name = "group_a"
label = "a"
wanted = 20
queries = ["a"]

[[group]]
name = "group_b"
label = "b"
wanted = 20
queries = ["b"]

[split]
key = "k"
val_fraction = 0.25

[train]
runs_dir = {runs:?}
model = "resnet10t"
strategy = "full"
epochs = 1
batch_size = 16
input_px = 64
seed = 3
loader_threads = 1
"#,
        datasets = root.join("datasets"),
        runs = root.join("runs"),
    );
    let config = write(root, "rev.toml", &text);
    let c = config.to_str().unwrap();
    for (class, name) in ["a", "b"].iter().enumerate() {
        let dir = root.join("pictures").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..20u64 {
            std::fs::write(
                dir.join(format!("{i}.png")),
                picture(class, i * 2 + class as u64),
            )
            .unwrap();
        }
        let group = format!("group_{name}");
        let d = dir.to_str().unwrap();
        ok(&["-q", "store", "add", "-c", c, "-g", &group, "-l", name, d]);
    }
    ok(&["-q", "curate", "-c", c]);
    let snapshot = ok(&["-q", "snapshot", "-c", c, "create"])
        .trim()
        .to_string();
    ok(&["-q", "train", "-c", c, "--run", "r1", "--no-progress"]);
    let manifest = root
        .join("datasets/rev/snapshots")
        .join(&snapshot)
        .join("manifest.jsonl");
    let rows = std::fs::read_to_string(manifest)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            ["id", "label", "split", "group"].map(|k| v[k].as_str().unwrap().to_string())
        })
        .collect();
    let run = root.join("runs/r1");
    (tmp, config, run, rows)
}

fn suspect(rank: usize, id: &str, row: Option<&[String; 4]>, rows: &[[String; 4]]) -> Suspect {
    let (label, split, group) = match row {
        Some(r) => (r[1].clone(), r[2].clone(), r[3].clone()),
        None => ("a".into(), "train".into(), "group_a".into()),
    };
    let suggested = if label == "a" { "b" } else { "a" };
    Suspect {
        rank,
        id: id.into(),
        split,
        group,
        label,
        suggested: suggested.into(),
        p_label: 0.2,
        p_suggested: 0.8,
        margin: 0.6,
        score: 1.0 - rank as f32 / 2000.0,
        signals: vec!["out_of_fold".into(), "neighbours".into()],
        oof_p_label: Some(0.2),
        model_p_label: Some(0.4),
        neighbour_disagreement: Some(0.75),
        neighbours: rows
            .iter()
            .take(3)
            .map(|r| Neighbour {
                id: r[0].clone(),
                split: r[2].clone(),
                group: r[3].clone(),
                label: r[1].clone(),
                similarity: 0.9,
            })
            .collect(),
        training_margin: Some(-1.5),
        cluster: Some(id.into()),
        cluster_size: Some(1),
        truth: (rank == 1).then(|| Truth {
            class: suggested.into(),
            name: "person-000001".into(),
            identities: vec![],
        }),
        sources: vec![Source {
            query: "a portrait".into(),
            engine: "bing".into(),
            url: format!("https://img00.mirror.test/{rank}.png"),
        }],
        thumbnail: None,
    }
}

/// eval's two files, as `lennonnet eval` writes them: the snapshot's images first (the second
/// one labelled `a`, for the key presses), then made-up suspects up to [`SUSPECTS`].
fn write_eval(run: &Path, rows: &[[String; 4]]) -> Vec<String> {
    let mut ordered: Vec<&[String; 4]> = rows.iter().collect();
    ordered.sort_by_key(|r| (r[1] != "b", r[0].clone()));
    let first_a = ordered.iter().position(|r| r[1] == "a").unwrap();
    ordered.swap(1, first_a);
    let mut ids: Vec<String> = ordered.iter().map(|r| r[0].clone()).collect();
    let mut lines = String::new();
    for rank in 1..=SUSPECTS {
        let s = match ordered.get(rank - 1) {
            Some(r) => suspect(rank, &r[0], Some(r), rows),
            None => {
                let id = ContentId::of(format!("made up {rank}").as_bytes()).to_hex();
                ids.push(id.clone());
                suspect(rank, &ids[rank - 1], None, rows)
            }
        };
        lines += &serde_json::to_string(&s).unwrap();
        lines.push('\n');
    }
    let eval = run.join("eval");
    std::fs::create_dir_all(&eval).unwrap();
    std::fs::write(eval.join("suspects.jsonl"), lines).unwrap();
    // Unit rows, one per snapshot image: row i leans on axis i.
    let mut floats = Vec::new();
    for i in 0..rows.len() {
        let mut v = vec![0.01f32; FEATURE_DIM];
        v[i % FEATURE_DIM] = 1.0;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        floats.extend(v.iter().map(|x| x / n));
    }
    let row_ids: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let file = lennonnet_eval::features_file::encode(&row_ids, FEATURE_DIM, &floats).unwrap();
    std::fs::write(eval.join("features.safetensors"), file).unwrap();
    ids
}

/// `lennonnet review` as a child; stopped with SIGINT by [`Server::stop`] (or killed if dropped).
struct Server {
    child: Child,
    url: String,
    port: u16,
    token: String,
}

impl Server {
    fn start(config: &Path, run: &Path) -> Self {
        let mut child = lennonnet()
            .args(["-q", "review", "--no-open", "--config"])
            .arg(config)
            .arg("--run")
            .arg(run)
            .env("USER", "tester")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start lennonnet review");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("not a loopback URL: {url:?}"));
        let (port, token) = rest.split_once("/?token=").unwrap();
        assert!(token.len() >= 32, "a short token: {token}");
        Self {
            port: port.parse().unwrap(),
            token: token.to_string(),
            url,
            child,
        }
    }

    /// Ctrl-C, and the exit status must be success.
    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "review exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

fn get(port: u16, path: &str) -> u16 {
    request(port, "GET", path, "text/plain", b"").0
}

fn eval(tab: &Tab, js: &str) -> serde_json::Value {
    tab.evaluate(js, false)
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .value
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until `js` is true in the page (5 s at most).
fn wait_for(tab: &Tab, js: &str) {
    let started = Instant::now();
    while eval(tab, js) != serde_json::Value::Bool(true) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never true: {js}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn selected(tab: &Tab) -> i64 {
    eval(tab, "Number(document.querySelector('.tile.sel').dataset.i)")
        .as_i64()
        .unwrap()
}

fn tile_state(tab: &Tab, i: usize) -> String {
    eval(
        tab,
        &format!("document.querySelector('.tile[data-i=\"{i}\"]').dataset.state"),
    )
    .as_str()
    .unwrap()
    .to_string()
}

/// Presses `key` and waits for the server's answer to reach the page.
fn press(tab: &Tab, key: &str) {
    tab.press_key(key).unwrap();
    wait_for(tab, "window.reviewPage.busy() === 0");
}

fn browser() -> Browser {
    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        .sandbox(false)
        .window_size(Some((1280, 900)))
        .build()
        .unwrap();
    Browser::new(options).expect("cannot start headless Chromium")
}

fn open(browser: &Browser, url: &str) -> std::sync::Arc<Tab> {
    let tab = browser.new_tab().unwrap();
    tab.navigate_to(url)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    wait_for(
        &tab,
        "window.reviewPage && window.reviewPage.ready === true",
    );
    tab
}

/// The history of `id` in the store, as action names.
fn history(config: &Path, id: &str) -> Vec<String> {
    let config = lennonnet_config::load(config).unwrap();
    let (store, _) = lennonnet_dataset::Dataset::of_config(&config)
        .open_store_read_only()
        .unwrap();
    let id: ContentId = id.parse().unwrap();
    let h = store.label_review_history(&id).unwrap();
    let names = h
        .iter()
        .map(|r| {
            assert_eq!(r.reviewer, "tester");
            assert_eq!(r.run.as_deref(), Some("r1"));
            match &r.action {
                ReviewAction::Relabel { label } => format!("relabel {label}"),
                other => other.as_str().to_string(),
            }
        })
        .collect();
    store.close().unwrap();
    names
}

#[test]
fn review_page_in_headless_chromium() {
    let (tmp, config, run, rows) = setup();
    let ids = write_eval(&run, &rows);
    let server = Server::start(&config, &run);
    let (port, token) = (server.port, server.token.clone());

    // The token: missing, wrong (same length) or cut short is refused, everywhere.
    let wrong: String = token.chars().rev().collect();
    for path in [
        "/".to_string(),
        "/api/state".into(),
        format!("/thumb/{}", ids[0]),
        format!("/?token={wrong}"),
        format!("/api/state?token={wrong}"),
        format!("/thumb/{}?token={}", ids[0], &token[..token.len() - 1]),
    ] {
        assert_eq!(get(port, &path), 403, "{path}");
    }
    let (status, _) = request(
        port,
        "POST",
        "/api/review",
        "application/json",
        br#"{"action":"exclude","id":"x"}"#,
    );
    assert_eq!(status, 403);
    assert_eq!(get(port, &format!("/?token={token}")), 200);
    assert_eq!(get(port, &format!("/thumb/{}?token={token}", ids[0])), 200);
    assert_eq!(
        get(port, &format!("/thumb/{}?token={token}", ids[SUSPECTS - 1])),
        404
    );

    let chrome = browser();
    let tab = open(&chrome, &server.url);

    // 1,000 tiles, lazily loaded, painted in under a second.
    assert_eq!(
        eval(&tab, "document.querySelectorAll('.tile').length"),
        SUSPECTS
    );
    assert_eq!(
        eval(&tab, "document.querySelector('.tile img').loading"),
        "lazy"
    );
    wait_for(&tab, "window.reviewPage.firstTileMs !== null");
    wait_for(
        &tab,
        "performance.getEntriesByName('first-contentful-paint').length === 1",
    );
    let fcp = eval(
        &tab,
        "performance.getEntriesByName('first-contentful-paint')[0].startTime",
    )
    .as_f64()
    .unwrap();
    let tile_ms = eval(&tab, "window.reviewPage.firstTileMs")
        .as_f64()
        .unwrap();
    eprintln!(
        "review page: first contentful paint {fcp:.0} ms, first tile painted {tile_ms:.0} ms"
    );
    assert!(
        fcp < 1000.0 && tile_ms < 1000.0,
        "slow: FCP {fcp} ms, tiles {tile_ms} ms"
    );

    // The first suspect is selected; its evidence names the mirror's simulated truth.
    assert_eq!(selected(&tab), 0);
    let detail = eval(&tab, "document.getElementById('detail').innerText");
    let detail = detail.as_str().unwrap();
    assert!(detail.contains("Simulated truth"), "{detail}");
    assert!(
        detail.contains("out_of_fold") && detail.contains("-1.500"),
        "{detail}"
    );
    assert_eq!(
        eval(&tab, "document.querySelectorAll('#detail .nbr img').length"),
        3
    );

    // Keys move the selection.
    press(&tab, "ArrowRight");
    press(&tab, "j");
    assert_eq!(selected(&tab), 2);
    press(&tab, "k");
    assert_eq!(selected(&tab), 1);

    // `2` relabels the second suspect (labelled a) as b; the selection moves on.
    press(&tab, "2");
    assert_eq!(tile_state(&tab, 1), "relabel");
    assert_eq!(selected(&tab), 2);
    let state =
        String::from_utf8(request(port, "GET", &format!("/api/state?token={token}"), "", b"").1)
            .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["reviews"][&ids[1]]["action"], "relabel");
    assert_eq!(state["reviews"][&ids[1]]["label"], "b");

    // `u` undoes it: no review in force, and the undone picture is selected again.
    press(&tab, "u");
    assert_eq!(tile_state(&tab, 1), "");
    assert_eq!(selected(&tab), 1);

    // `x` excludes it.
    press(&tab, "x");
    assert_eq!(tile_state(&tab, 1), "exclude");

    // A click selects a tile; `c` confirms its label.
    tab.find_element(".tile[data-i=\"4\"]")
        .unwrap()
        .click()
        .unwrap();
    wait_for(
        &tab,
        "document.querySelector('.tile.sel').dataset.i === '4'",
    );
    press(&tab, "c");
    assert_eq!(tile_state(&tab, 4), "confirm");

    // `?` shows the help, Escape hides it.
    press(&tab, "?");
    assert_eq!(
        eval(
            &tab,
            "document.getElementById('help').classList.contains('on')"
        ),
        true
    );
    let help = eval(&tab, "document.getElementById('help').innerText");
    assert!(
        help.as_str().unwrap().contains("set the class to b"),
        "{help}"
    );
    press(&tab, "Escape");
    assert_eq!(
        eval(
            &tab,
            "document.getElementById('help').classList.contains('on')"
        ),
        false
    );
    drop(tab);
    server.stop();

    // The journal, read through the store API: relabel, its undo, the exclusion; the confirmation.
    assert_eq!(history(&config, &ids[1]), ["relabel b", "clear", "exclude"]);
    assert_eq!(history(&config, &ids[4]), ["confirm"]);
    assert!(history(&config, &ids[0]).is_empty());

    // A new server shows the reviews in force as the page loads.
    let server = Server::start(&config, &run);
    let tab = open(&chrome, &server.url);
    assert_eq!(tile_state(&tab, 1), "exclude");
    assert_eq!(tile_state(&tab, 4), "confirm");
    assert_eq!(tile_state(&tab, 0), "");
    drop(tab);

    // The try-it tab's API: a picture gets P(class) for both classes and its nearest training
    // pictures; a URL to a private address is refused by the guarded fetcher.
    let t = &server.token;
    let (status, body) = request(
        server.port,
        "POST",
        &format!("/api/score?token={t}"),
        "image/png",
        &picture(0, 999),
    );
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    let scored: serde_json::Value = serde_json::from_str(&body).unwrap();
    let probs = scored["probabilities"].as_array().unwrap();
    assert_eq!(probs.len(), 2);
    assert_eq!(
        (probs[0][0].as_str(), probs[1][0].as_str()),
        (Some("a"), Some("b"))
    );
    let sum: f64 = probs.iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "{body}");
    let near = scored["neighbours"].as_array().unwrap();
    assert_eq!(near.len(), 8, "{body}");
    assert!(near.iter().all(|n| n["split"] == "train"), "{body}");
    let (status, body) = request(
        server.port,
        "POST",
        &format!("/api/score?token={t}"),
        "image/png",
        b"not a picture",
    );
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    let (status, body) = request(
        server.port,
        "POST",
        &format!("/api/score-url?token={t}"),
        "application/json",
        br#"{"url":"http://127.0.0.1:9/x.png"}"#,
    );
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    server.stop();
    drop(tmp);
}
