use std::path::Path;

use crate::{ConfigError, parse};

/// A minimal valid config; tests splice one change into it.
const BASE: &str = r#"[dataset]
name = "t"

[[class]]
name = "a"

[[class]]
name = "b"

[[group]]
name = "ga"
label = "a"
wanted = 10
queries = ["apple"]

[[group]]
name = "gb"
label = "b"
wanted = 10
queries = ["pear"]

[split]
key = "k"
val_fraction = 0.1
"#;

/// Parses `src` and compares the error message (or "ok") with `expected`.
fn check(src: &str, expected: &str) {
    let got = match parse(src, Path::new("t.toml")) {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(got, expected, "\n--- config ---\n{src}");
}

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_is_valid() {
    check(BASE, "ok");
}

#[test]
fn misspelt_keys_name_file_line_and_key() {
    check(
        &with("val_fraction = 0.1", "val_fraktion = 0.1"),
        "t.toml:24:1: key `split.val_fraktion`: unknown field `val_fraktion`, expected one of `key`, `val_fraction`, `test_per_class`",
    );
    check(
        &with("[split]", "[fetch]\ntimeot_secs = 3\n\n[split]"),
        "t.toml:23:1: key `fetch.timeot_secs`: unknown field `timeot_secs`, expected one of `concurrency`, `per_host_concurrency`, `host_concurrency`, `per_host_requests_per_sec`, `connect_timeout_secs`, `first_byte_timeout_secs`, `total_timeout_secs`, `stall_min_bytes_per_sec`, `stall_window_secs`, `max_bytes`, `max_redirects`, `max_retries`, `retry_base_delay_ms`",
    );
    check(
        &with("[split]", "[splits]\n[split]"),
        "t.toml:22:2: key `splits`: unknown field `splits`, expected one of `dataset`, `http`, `engines`, `fetch`, `image`, `scrape`, `curate`, `train`, `class`, `group`, `words`, `split`",
    );
    check(
        &with("queries = [\"pear\"]", "querys = [\"pear\"]"),
        "t.toml:20:1: key `group[1].querys`: unknown field `querys`, expected one of `name`, `label`, `purpose`, `wanted`, `queries`, `engines`, `accept_thumbnails`",
    );
}

#[test]
fn bad_values_say_what_was_expected_and_found() {
    check(
        &with(
            "wanted = 10\nqueries = [\"pear\"]",
            "wanted = -5\nqueries = [\"pear\"]",
        ),
        "t.toml:19:10: key `group[1].wanted`: expected a positive whole number of images (1 to 4294967295), found -5",
    );
    check(
        &with(
            "wanted = 10\nqueries = [\"apple\"]",
            "wanted = 0\nqueries = [\"apple\"]",
        ),
        "t.toml:13:10: key `group[0].wanted`: expected a positive whole number of images (1 to 4294967295), found 0",
    );
    check(
        &with(
            "wanted = 10\nqueries = [\"apple\"]",
            "wanted = \"ten\"\nqueries = [\"apple\"]",
        ),
        "t.toml:13:10: key `group[0].wanted`: invalid type: string \"ten\", expected a positive whole number of images",
    );
    check(
        &with("name = \"ga\"", "name = \"Ga\""),
        "t.toml:11:8: key `group[0].name`: \"Ga\" has 'G'; names use lowercase ASCII letters, digits, '_' and '-', and start with a letter or digit",
    );
    check(
        &with("[split]", "[engines]\norder = [\"google\"]\n\n[split]"),
        "t.toml:23:10: key `engines.order[0]`: unknown variant `google`, expected one of `duckduckgo`, `bing`, `wikimedia_commons`",
    );
    check(
        &with("val_fraction = 0.1", "val_fraction = 1.5"),
        "t.toml:24:16: key `split.val_fraction`: expected a fraction in [0, 1), found 1.5",
    );
    check(
        &with("name = \"t\"", "name = "),
        "t.toml:2:8: invalid TOML: string values must be quoted, expected literal string",
    );
}

#[test]
fn cross_field_checks_point_at_the_key() {
    check(
        &with("label = \"b\"", "label = \"c\""),
        "t.toml:18:9: key `group[1].label`: expected a declared class (`a`, `b`), found `c`",
    );
    check(
        &with("name = \"gb\"", "name = \"ga\""),
        "t.toml:17:8: key `group[1].name`: group `ga` is declared twice (first as group[0])",
    );
    check(
        &with("name = \"b\"", "name = \"a\""),
        "t.toml:8:8: key `class[1].name`: class `a` is declared twice (first as class[0])",
    );
    check(
        &with("queries = [\"pear\"]", "queries = []"),
        "t.toml:20:11: key `group[1].queries`: expected at least one query, found none",
    );
    check(
        &with("queries = [\"pear\"]", "queries = [\"pear\", \" pear\"]"),
        "t.toml:20:20: key `group[1].queries[1]`: query \" pear\" appears twice in this group",
    );
    check(
        &with("label = \"b\"", "label = \"a\""),
        "t.toml:8:8: key `class[1].name`: class `b` has no group with purpose `train`",
    );
    check(
        &with(
            "val_fraction = 0.1",
            "val_fraction = 0.1\ntest_per_class = { a = 1, c = 2 }",
        ),
        "t.toml:25:31: key `split.test_per_class.c`: expected a declared class (`a`, `b`), found `c`",
    );
    check(
        &with(
            "[split]",
            "[fetch]\nconcurrency = 2\nper_host_concurrency = 4\n\n[split]",
        ),
        "t.toml:24:24: key `fetch.per_host_concurrency`: expected at most fetch.concurrency (2), found 4",
    );
    check(
        &with(
            "[split]",
            "[engines.bing]\nrequests_per_sec = 0.0\n\n[split]",
        ),
        "t.toml:23:20: key `engines.bing.requests_per_sec`: expected a positive number, found 0",
    );
    check(
        &with(
            "[split]",
            "[words]\nfile = \"w\"\nseed = 1\ncount = 2\nwanted = 3\nlabel = \"b\"\ngroup_prefix = \"g\"\n\n[split]",
        ),
        "t.toml:11:8: key `group[0].name`: group `ga` starts with `g`, the prefix words.group_prefix reserves for word groups",
    );
}

#[test]
fn every_shipped_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let config = crate::load(&path).unwrap_or_else(|e| panic!("{e}"));
                if let Some(w) = &config.words {
                    assert!(w.list.len() >= w.count.get() as usize);
                }
                n += 1;
            }
            Some("txt") => {
                let text = std::fs::read_to_string(&path).unwrap();
                crate::parse_word_list(&text, &path).unwrap_or_else(|e| panic!("{e}"));
            }
            _ => {}
        }
    }
    assert!(n >= 1, "no config in {}", dir.display());
}

#[test]
fn words_count_above_list_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.txt"), "apple\npear\n").unwrap();
    let src = BASE.replace(
        "[split]",
        "[words]\nfile = \"w.txt\"\nseed = 1\ncount = 3\nwanted = 3\nlabel = \"b\"\n\n[split]",
    );
    let path = dir.path().join("t.toml");
    std::fs::write(&path, &src).unwrap();
    let err = crate::load(&path).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Key { key, .. } if key == "words.count"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(":25:9: key `words.count`: expected at most the 2 words of"),
        "{err}"
    );
}

#[test]
fn curate_section_is_checked() {
    let curate = |body: &str| with("[split]", &format!("[curate]\n{body}\n\n[split]"));
    check(
        &curate("conflict_policy = \"quarantine\"\nprefer_label = \"b\""),
        "ok",
    );
    check(
        &curate("prefer_label = \"c\""),
        "t.toml:23:16: key `curate.prefer_label`: expected a declared class (`a`, `b`), found `c`",
    );
    check(
        &curate("phash_max_distance = 20"),
        "t.toml:23:22: key `curate.phash_max_distance`: expected at most 16 bits (of 64), found 20",
    );
    check(
        &curate("conflict_policy = \"relabel\""),
        "t.toml:23:19: key `curate.conflict_policy`: unknown variant `relabel`, expected `prefer_label` or `quarantine`",
    );
    let c = parse(BASE, Path::new("t.toml")).unwrap();
    assert_eq!(c.curate.conflict_policy, crate::ConflictPolicy::PreferLabel);
    assert_eq!(c.curate.prefer_label, None);
}

#[test]
fn train_section_has_defaults_and_is_checked() {
    let train = |body: &str| with("[split]", &format!("[train]\n{body}\n\n[split]"));
    let c = parse(BASE, Path::new("t.toml")).unwrap();
    assert_eq!(c.train.strategy, crate::Strategy::Head);
    assert_eq!(c.train.model, "efficientnet_lite0");
    assert_eq!(c.train.runs_dir, Path::new("../runs"));
    assert_eq!(c.train.weights, None);
    assert_eq!(c.train.balance, crate::Balance::WeightedLoss);
    assert!(c.train.augment.enabled);
    check(
        &train(
            "model = \"resnet10t\"\nstrategy = \"full\"\nepochs = 3\ninput_px = 128\nbalance = \"sampler\"\n\n[train.augment]\ngrayscale_prob = 0.5",
        ),
        "ok",
    );
    check(
        &train("strategy = \"everything\""),
        "t.toml:23:12: key `train.strategy`: unknown variant `everything`, expected one of `head`, `partial`, `full`",
    );
    check(
        &train("epoch = 3"),
        "t.toml:23:1: key `train.epoch`: unknown field `epoch`, expected one of `runs_dir`, `cache_dir`, `model`, `weights`, `strategy`, `trainable_prefixes`, `epochs`, `batch_size`, `input_px`, `seed`, `learning_rate`, `weight_decay`, `warmup_epochs`, `final_lr_fraction`, `label_smoothing`, `grad_clip_norm`, `balance`, `patience_epochs`, `threshold_metric`, `feature_views`, `cache_boundary`, `augment`, `device`, `bf16`, `loader_threads`, `prefetch_batches`, `checkpoint_every_steps`",
    );
    check(
        &train("input_px = 100"),
        "t.toml:23:12: key `train.input_px`: expected a multiple of 32 (at least 32), found 100",
    );
    check(
        &train("epochs = 0"),
        "t.toml:23:10: key `train.epochs`: expected a positive number, found 0",
    );
    check(
        &train("label_smoothing = 1.0"),
        "t.toml:23:19: key `train.label_smoothing`: expected a number in [0, 1), found 1",
    );
    check(
        &train("device = \"gpu\""),
        "t.toml:23:10: key `train.device`: expected `cpu`, `cuda` or `cuda:N`, found \"gpu\"",
    );
    check(
        &train("bf16 = true"),
        "t.toml:23:8: key `train.bf16`: bf16 needs a cuda device, and train.device is \"cpu\"",
    );
    check(&train("device = \"cuda:1\"\nbf16 = true"), "ok");
    check(
        &train("[train.augment]\nhflip_prob = 1.5"),
        "t.toml:24:14: key `train.augment.hflip_prob`: expected a number in [0, 1], found 1.5",
    );
}

#[test]
fn engines_take_their_own_defaults() {
    use lennonnet_core::EngineKind;
    let c = parse(BASE, Path::new("t.toml")).unwrap();
    let ddg = c.engines.settings(EngineKind::DuckDuckGo, &c.http);
    assert_eq!(ddg.requests_per_sec, 0.2);
    assert_eq!(ddg.max_pages, Some(5));
    assert_eq!(ddg.cooldown_secs, 3600);
    assert_eq!((ddg.block_threshold, ddg.changed_threshold), (3, 3));
    assert_eq!(ddg.user_agent, crate::BROWSER_USER_AGENT);
    assert_eq!(ddg.region.as_deref(), Some("us-en"));
    assert!(ddg.is_real);
    let bing = c.engines.settings(EngineKind::Bing, &c.http);
    assert_eq!((bing.requests_per_sec, bing.max_pages), (1.0, None));
    assert_eq!(bing.cooldown_secs, 600);
    assert_eq!(bing.region.as_deref(), Some("en-US"));
    assert_eq!(bing.user_agent, crate::BROWSER_USER_AGENT);
    let wmc = c.engines.settings(EngineKind::WikimediaCommons, &c.http);
    assert_eq!(
        wmc.user_agent, c.http.user_agent,
        "Commons gets the honest agent"
    );
    assert_eq!(wmc.thumbnail_width_px, Some(1280));
    assert_eq!(wmc.maxlag_secs, Some(5));
    assert_eq!(c.fetch.host_concurrency["upload.wikimedia.org"], 2);

    let tuned = parse(
        &with(
            "[split]",
            "[engines.duckduckgo]\nrequests_per_sec = 2.5\nmax_pages = 0\ncooldown_secs = 60\nbase_url = \"http://duckduckgo.mirror.test:1\"\n\n[engines.wikimedia_commons]\noriginals = true\n\n[split]",
        ),
        Path::new("t.toml"),
    )
    .unwrap();
    let ddg = tuned.engines.settings(EngineKind::DuckDuckGo, &tuned.http);
    assert_eq!(
        (ddg.requests_per_sec, ddg.max_pages, ddg.cooldown_secs),
        (2.5, None, 60)
    );
    assert!(!ddg.is_real);
    let wmc = tuned
        .engines
        .settings(EngineKind::WikimediaCommons, &tuned.http);
    assert_eq!(wmc.thumbnail_width_px, None);
}

#[test]
fn engine_keys_are_checked() {
    check(
        &with(
            "[split]",
            "[engines.bing]\nfilter = \",,,,,Public\"\n\n[split]",
        ),
        "t.toml:23:10: key `engines.bing.filter`: `filter` applies to duckduckgo only",
    );
    check(
        &with(
            "[split]",
            "[engines.wikimedia_commons]\nthumbnail_width_px = 1000\n\n[split]",
        ),
        "t.toml:23:22: key `engines.wikimedia_commons.thumbnail_width_px`: expected one of Wikimedia's standard thumbnail widths [20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840] (its file servers render no others), found 1000",
    );
    check(
        &with(
            "[split]",
            "[engines.duckduckgo]\ncooldown_secs = 0\n\n[split]",
        ),
        "t.toml:23:17: key `engines.duckduckgo.cooldown_secs`: expected a positive number, found 0",
    );
    check(
        &with(
            "[split]",
            "[fetch]\nhost_concurrency = { \"upload.wikimedia.org\" = 0 }\n\n[split]",
        ),
        "t.toml:23:47: key `fetch.host_concurrency.upload.wikimedia.org`: expected a positive number, found 0",
    );
}

#[test]
fn user_agents_name_a_real_contact_or_not() {
    use crate::validate::{Contact, user_agent_contact};
    let check = |ua: &str, expected: Contact| assert_eq!(user_agent_contact(ua), expected, "{ua}");
    check(
        "lennonnet/0.1 (dataset builder; +https://github.com/someone/lennonnet)",
        Contact::Real,
    );
    check("lennonnet/0.1 (me@university.edu)", Contact::Real);
    check(
        "lennonnet/0.1 (+https://example.invalid/lennonnet)",
        Contact::Placeholder("example.invalid".into()),
    );
    check(
        "lennonnet/0.1 (someone@example.com)",
        Contact::Placeholder("example.com".into()),
    );
    check("lennonnet/0.1", Contact::Missing);
    check("Mozilla/5.0 (X11; Linux x86_64)", Contact::Missing);
}

#[test]
fn the_real_commons_needs_a_real_contact_before_requests() {
    use crate::validate::check_for_requests;
    let run = |src: &str| {
        let c = parse(src, Path::new("t.toml")).unwrap();
        check_for_requests(&c, src, Path::new("t.toml")).map_err(|e| e.to_string())
    };
    // The default agent names a placeholder: refused, naming the key and the policy.
    let err = run(BASE).unwrap_err();
    assert!(
        err.starts_with("t.toml: key `http.user_agent`") || err.contains("key `http.user_agent`"),
        "{err}"
    );
    assert!(err.contains("User-Agent policy"), "{err}");
    assert!(err.contains("example.invalid"), "{err}");
    // A real contact passes.
    let src = with(
        "[[class]]",
        "[http]\nuser_agent = \"lennonnet/0.1 (me@university.edu)\"\n\n[[class]]",
    );
    assert_eq!(run(&src), Ok(()));
    // Commons pointed elsewhere (the mirror), or not used at all: nothing to check.
    let mirror = with(
        "[split]",
        "[engines.wikimedia_commons]\nbase_url = \"http://commons.mirror.test:8321\"\n\n[split]",
    );
    assert_eq!(run(&mirror), Ok(()));
    let unused = with(
        "[[class]]",
        "[engines]\norder = [\"duckduckgo\", \"bing\"]\n\n[[class]]",
    );
    assert_eq!(run(&unused), Ok(()));
}
