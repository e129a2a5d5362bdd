//! Cross-field checks, made after parsing. Each error points at the offending key.

mod requests;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use lennonnet_core::{EngineKind, Label, validate_name};

use crate::error::{ConfigError, PathPart as P, key_error};
use crate::schema::{Config, WordsConfig};

pub use requests::WIKIMEDIA_UA_POLICY;
pub(crate) use requests::check_for_requests;
#[cfg(test)]
pub(crate) use requests::{Contact, user_agent_contact};

pub(crate) fn check(c: &Config, src: &str, file: &Path) -> Result<(), ConfigError> {
    let err = |path: &[P<'_>], message: String| key_error(src, file, path, message);
    let classes = check_classes(c, &err)?;
    check_groups(c, &classes, &err)?;
    check_words_section(c, &classes, &err)?;
    check_every_class_trains(c, &err)?;
    check_engines(c, &err)?;

    // HTTP.
    if c.http.user_agent.trim().is_empty() {
        return Err(err(
            &[P::Key("http"), P::Key("user_agent")],
            "expected a descriptive User-Agent (engines refuse empty or generic ones), found an empty string".into(),
        ));
    }

    check_fetch(c, &err)?;
    check_scrape_and_image(c, &err)?;
    check_curate(c, &classes, &err)?;
    check_train(c, &err)?;
    check_split(c, &classes, &err)
}

/// The declared classes, for the checks that need a label to name one.
struct Classes<'a> {
    /// Each class's index in `[[class]]`, by name.
    index: HashMap<&'a Label, usize>,
    config: &'a Config,
}

impl Classes<'_> {
    fn contains(&self, label: &Label) -> bool {
        self.index.contains_key(label)
    }

    /// The declared classes as errors list them: "`a`, `b`".
    fn declared(&self) -> String {
        self.config
            .classes
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `[[class]]`: at least two, each declared once.
fn check_classes<'a>(
    c: &'a Config,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<Classes<'a>, ConfigError> {
    if c.classes.len() < 2 {
        return Err(err(
            &[P::Key("class")],
            format!(
                "expected at least 2 [[class]] entries, found {}",
                c.classes.len()
            ),
        ));
    }
    let mut classes: HashMap<&Label, usize> = HashMap::new();
    for (i, class) in c.classes.iter().enumerate() {
        if let Some(first) = classes.insert(&class.name, i) {
            return Err(err(
                &[P::Key("class"), P::Index(i), P::Key("name")],
                format!(
                    "class `{}` is declared twice (first as class[{first}])",
                    class.name
                ),
            ));
        }
    }
    Ok(Classes {
        index: classes,
        config: c,
    })
}

/// `[[group]]`: unique names, declared labels, queries present and distinct, engine lists.
fn check_groups(
    c: &Config,
    classes: &Classes<'_>,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut groups: HashMap<&str, usize> = HashMap::new();
    for (i, g) in c.groups.iter().enumerate() {
        let at = |key| [P::Key("group"), P::Index(i), P::Key(key)];
        if let Some(first) = groups.insert(g.name.as_str(), i) {
            return Err(err(
                &at("name"),
                format!(
                    "group `{}` is declared twice (first as group[{first}])",
                    g.name
                ),
            ));
        }
        if !classes.contains(&g.label) {
            return Err(err(
                &at("label"),
                format!(
                    "expected a declared class ({}), found `{}`",
                    classes.declared(),
                    g.label
                ),
            ));
        }
        if g.queries.is_empty() {
            return Err(err(
                &at("queries"),
                "expected at least one query, found none".into(),
            ));
        }
        let mut texts = BTreeSet::new();
        for (j, q) in g.queries.iter().enumerate() {
            let qpath = [P::Key("group"), P::Index(i), P::Key("queries"), P::Index(j)];
            if q.trim().is_empty() {
                return Err(err(
                    &qpath,
                    "expected a search text, found an empty string".into(),
                ));
            }
            if !texts.insert(q.trim()) {
                return Err(err(
                    &qpath,
                    format!("query {q:?} appears twice in this group"),
                ));
            }
        }
        if let Some(engines) = &g.engines {
            check_engine_list(engines, &at("engines"), err)?;
        }
    }
    Ok(())
}

/// `[words]`: a declared label, a usable group prefix that no declared group takes, and
/// templates that hold `{word}`.
fn check_words_section(
    c: &Config,
    classes: &Classes<'_>,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let Some(w) = &c.words else {
        return Ok(());
    };
    let at = |key| [P::Key("words"), P::Key(key)];
    if !classes.contains(&w.label) {
        return Err(err(
            &at("label"),
            format!(
                "expected a declared class ({}), found `{}`",
                classes.declared(),
                w.label
            ),
        ));
    }
    if let Err(e) = validate_name(&format!("{}word", w.group_prefix)) {
        return Err(err(
            &at("group_prefix"),
            format!("word groups would get bad names: {e}"),
        ));
    }
    if w.query_templates.is_empty() {
        return Err(err(
            &at("query_templates"),
            "expected at least one template, found none".into(),
        ));
    }
    for (j, t) in w.query_templates.iter().enumerate() {
        if !t.contains("{word}") {
            return Err(err(
                &[P::Key("words"), P::Key("query_templates"), P::Index(j)],
                format!("expected a template containing `{{word}}`, found {t:?}"),
            ));
        }
    }
    if let Some(engines) = &w.engines {
        check_engine_list(engines, &at("engines"), err)?;
    }
    if let Some((i, g)) = c
        .groups
        .iter()
        .enumerate()
        .find(|(_, g)| g.name.as_str().starts_with(&w.group_prefix))
    {
        return Err(err(
            &[P::Key("group"), P::Index(i), P::Key("name")],
            format!(
                "group `{}` starts with `{}`, the prefix words.group_prefix reserves for word groups",
                g.name, w.group_prefix
            ),
        ));
    }
    Ok(())
}

/// Every class needs images to learn from.
fn check_every_class_trains(
    c: &Config,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, class) in c.classes.iter().enumerate() {
        let has_train = c
            .groups
            .iter()
            .any(|g| g.label == class.name && g.purpose.as_str() == "train")
            || c.words
                .as_ref()
                .is_some_and(|w| w.label == class.name && w.purpose.as_str() == "train");
        if !has_train {
            return Err(err(
                &[P::Key("class"), P::Index(i), P::Key("name")],
                format!("class `{}` has no group with purpose `train`", class.name),
            ));
        }
    }
    Ok(())
}

/// `[engines]`: the order, then each engine's settings.
fn check_engines(
    c: &Config,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    check_engine_list(&c.engines.order, &[P::Key("engines"), P::Key("order")], err)?;
    for kind in EngineKind::ALL {
        check_engine(c, kind, err)?;
    }
    Ok(())
}

/// `[engines.<kind>]`: positive numbers, a URL, header-safe texts, and keys that mean
/// something to one engine only.
fn check_engine(
    c: &Config,
    kind: EngineKind,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let e = c.engines.engine(kind);
    let at = |key| [P::Key("engines"), P::Key(kind.as_str()), P::Key(key)];
    if let Some(v) = e.requests_per_sec {
        positive_f64(v, &at("requests_per_sec"), err)?;
    }
    for (key, v) in [
        ("max_results", e.max_results.map(u64::from)),
        ("timeout_secs", e.timeout_secs),
        ("block_threshold", e.block_threshold.map(u64::from)),
        ("cooldown_secs", e.cooldown_secs),
        ("changed_threshold", e.changed_threshold.map(u64::from)),
    ] {
        if let Some(v) = v {
            positive(v, &at(key), err)?;
        }
    }
    if let Some(url) = &e.base_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err(
                &at("base_url"),
                format!("expected an http:// or https:// URL, found {url:?}"),
            ));
        }
    }
    for (key, value) in [
        ("user_agent", &e.user_agent),
        ("accept_language", &e.accept_language),
        ("region", &e.region),
        ("filter", &e.filter),
    ] {
        if value.as_ref().is_some_and(|v| !is_header_value(v)) {
            return Err(err(
                &at(key),
                "expected a non-empty text of printable ASCII (it is sent in a request)".into(),
            ));
        }
    }
    // Keys that mean something to one engine only.
    let only = |key: &'static str, set: bool, engine: EngineKind| {
        if set && kind != engine {
            Err(err(&at(key), format!("`{key}` applies to {engine} only")))
        } else {
            Ok(())
        }
    };
    only("filter", e.filter.is_some(), EngineKind::DuckDuckGo)?;
    let commons = EngineKind::WikimediaCommons;
    only(
        "thumbnail_width_px",
        e.thumbnail_width_px.is_some(),
        commons,
    )?;
    only("originals", e.originals.is_some(), commons)?;
    only("maxlag_secs", e.maxlag_secs.is_some(), commons)?;
    if kind == commons && e.region.is_some() {
        return Err(err(
            &at("region"),
            "`region` applies to duckduckgo and bing only".into(),
        ));
    }
    if let Some(w) = e.thumbnail_width_px {
        if !crate::schema::COMMONS_THUMB_STEPS.contains(&w) {
            return Err(err(
                &at("thumbnail_width_px"),
                format!(
                    "expected one of Wikimedia's standard thumbnail widths {:?} (its file servers render no others), found {w}",
                    crate::schema::COMMONS_THUMB_STEPS
                ),
            ));
        }
    }
    Ok(())
}

/// `[fetch]`: positive limits, and no more per host than in all.
fn check_fetch(
    c: &Config,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let f = &c.fetch;
    let at = |key| [P::Key("fetch"), P::Key(key)];
    for (host, &n) in &f.host_concurrency {
        let at = [P::Key("fetch"), P::Key("host_concurrency"), P::Key(host)];
        positive(n as u64, &at, err)?;
    }
    for (key, v) in [
        ("concurrency", f.concurrency as u64),
        ("per_host_concurrency", f.per_host_concurrency as u64),
        ("connect_timeout_secs", f.connect_timeout_secs),
        ("first_byte_timeout_secs", f.first_byte_timeout_secs),
        ("total_timeout_secs", f.total_timeout_secs),
        ("stall_window_secs", f.stall_window_secs),
        ("max_bytes", f.max_bytes),
    ] {
        positive(v, &at(key), err)?;
    }
    positive_f64(
        f.per_host_requests_per_sec,
        &at("per_host_requests_per_sec"),
        err,
    )?;
    if f.per_host_concurrency > f.concurrency {
        return Err(err(
            &at("per_host_concurrency"),
            format!(
                "expected at most fetch.concurrency ({}), found {}",
                f.concurrency, f.per_host_concurrency
            ),
        ));
    }
    Ok(())
}

/// `[scrape]` and `[image]`: positive counts and sizes.
fn check_scrape_and_image(
    c: &Config,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    // Scrape.
    let at = |key| [P::Key("scrape"), P::Key(key)];
    positive(
        c.scrape.groups_in_parallel as u64,
        &at("groups_in_parallel"),
        err,
    )?;
    positive(
        c.scrape.prefetch_per_group as u64,
        &at("prefetch_per_group"),
        err,
    )?;

    // Image.
    let at = |key| [P::Key("image"), P::Key(key)];
    positive(c.image.min_side_px as u64, &at("min_side_px"), err)?;
    let min_pixels = c.image.min_side_px as u64 * c.image.min_side_px as u64;
    if c.image.max_pixels < min_pixels {
        return Err(err(
            &at("max_pixels"),
            format!(
                "expected at least min_side_px² ({min_pixels}), found {}",
                c.image.max_pixels
            ),
        ));
    }
    Ok(())
}

/// `[curate]`: distances and quality in range, a declared preferred label.
fn check_curate(
    c: &Config,
    classes: &Classes<'_>,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let at = |key| [P::Key("curate"), P::Key(key)];
    let cur = &c.curate;
    if cur.phash_max_distance > 16 {
        return Err(err(
            &at("phash_max_distance"),
            format!(
                "expected at most 16 bits (of 64), found {}",
                cur.phash_max_distance
            ),
        ));
    }
    if cur.pdq_max_distance > 128 {
        return Err(err(
            &at("pdq_max_distance"),
            format!(
                "expected at most 128 bits (of 256; two unrelated images differ in about 128), found {}",
                cur.pdq_max_distance
            ),
        ));
    }
    if cur.min_quality > 100 {
        return Err(err(
            &at("min_quality"),
            format!(
                "expected a quality from 0 to 100, found {}",
                cur.min_quality
            ),
        ));
    }
    if let Some(label) = &cur.prefer_label {
        if !classes.contains(label) {
            return Err(err(
                &at("prefer_label"),
                format!(
                    "expected a declared class ({}), found `{label}`",
                    classes.declared()
                ),
            ));
        }
    }
    Ok(())
}

/// `[split]`: a key, a fraction, and test counts for declared classes.
fn check_split(
    c: &Config,
    classes: &Classes<'_>,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let at = |key| [P::Key("split"), P::Key(key)];
    if c.split.key.trim().is_empty() {
        return Err(err(
            &at("key"),
            "expected a non-empty split key, found an empty string".into(),
        ));
    }
    let v = c.split.val_fraction;
    if !(0.0..1.0).contains(&v) {
        return Err(err(
            &at("val_fraction"),
            format!("expected a fraction in [0, 1), found {v}"),
        ));
    }
    for class in c.split.test_per_class.keys() {
        if !c.classes.iter().any(|c| c.name.as_str() == class) {
            return Err(err(
                &[P::Key("split"), P::Key("test_per_class"), P::Key(class)],
                format!(
                    "expected a declared class ({}), found `{class}`",
                    classes.declared()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks made once the word list is read: enough words, and word group names that are valid
/// and do not collide with declared groups.
pub(crate) fn check_words(w: &WordsConfig, src: &str, file: &Path) -> Result<(), ConfigError> {
    if (w.count.get() as usize) > w.list.len() {
        return Err(key_error(
            src,
            file,
            &[P::Key("words"), P::Key("count")],
            format!(
                "expected at most the {} words of {}, found {}",
                w.list.len(),
                w.file.display(),
                w.count
            ),
        ));
    }
    Ok(())
}

fn check_engine_list(
    engines: &[EngineKind],
    path: &[P<'_>],
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    if engines.is_empty() {
        return Err(err(path, "expected at least one engine, found none".into()));
    }
    let mut seen = BTreeSet::new();
    for e in engines {
        if !seen.insert(e) {
            return Err(err(path, format!("engine `{e}` is listed twice")));
        }
    }
    Ok(())
}

fn positive(
    v: u64,
    path: &[P<'_>],
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    if v == 0 {
        return Err(err(path, "expected a positive number, found 0".into()));
    }
    Ok(())
}

fn positive_f64(
    v: f64,
    path: &[P<'_>],
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(err(path, format!("expected a positive number, found {v}")));
    }
    Ok(())
}

/// `[train]`: ranges and the device spelling.
fn check_train(
    c: &Config,
    err: &impl Fn(&[P<'_>], String) -> ConfigError,
) -> Result<(), ConfigError> {
    let t = &c.train;
    let at = |key| [P::Key("train"), P::Key(key)];
    if t.model.trim().is_empty() {
        return Err(err(
            &at("model"),
            "expected a model name (`lennonnet model list`), found an empty string".into(),
        ));
    }
    if t.weights.as_deref().is_some_and(|w| w.trim().is_empty()) {
        return Err(err(
            &at("weights"),
            "expected a file or hub:ORG/REPO[/FILE], found an empty string (leave the key out for random initialisation)".into(),
        ));
    }
    for (key, v) in [
        ("epochs", t.epochs as u64),
        ("batch_size", t.batch_size as u64),
        ("patience_epochs", t.patience_epochs as u64),
        ("feature_views", t.feature_views as u64),
        ("prefetch_batches", t.prefetch_batches as u64),
    ] {
        positive(v, &at(key), err)?;
    }
    if let Some(px) = t.input_px {
        if px < 32 || px % 32 != 0 {
            return Err(err(
                &at("input_px"),
                format!("expected a multiple of 32 (at least 32), found {px}"),
            ));
        }
    }
    positive_f64(t.learning_rate, &at("learning_rate"), err)?;
    let in_range = |key: &'static str, v: f64, lo: f64, hi: f64, hi_open: bool| {
        let ok = v.is_finite() && v >= lo && if hi_open { v < hi } else { v <= hi };
        if ok {
            Ok(())
        } else {
            let close = if hi_open { ")" } else { "]" };
            Err(err(
                &at(key),
                format!("expected a number in [{lo}, {hi}{close}, found {v}"),
            ))
        }
    };
    in_range("weight_decay", t.weight_decay, 0.0, 1.0, false)?;
    in_range("final_lr_fraction", t.final_lr_fraction, 0.0, 1.0, false)?;
    in_range("label_smoothing", t.label_smoothing, 0.0, 1.0, true)?;
    if !(t.warmup_epochs.is_finite() && t.warmup_epochs >= 0.0) {
        return Err(err(
            &at("warmup_epochs"),
            format!("expected 0 or more epochs, found {}", t.warmup_epochs),
        ));
    }
    if !(t.grad_clip_norm.is_finite() && t.grad_clip_norm >= 0.0) {
        return Err(err(
            &at("grad_clip_norm"),
            format!(
                "expected 0 (off) or a positive norm, found {}",
                t.grad_clip_norm
            ),
        ));
    }
    let device_ok = t.device == "cpu"
        || t.device == "cuda"
        || t.device
            .strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if !device_ok {
        return Err(err(
            &at("device"),
            format!("expected `cpu`, `cuda` or `cuda:N`, found {:?}", t.device),
        ));
    }
    if t.bf16 && !t.device.starts_with("cuda") {
        return Err(err(
            &at("bf16"),
            format!(
                "bf16 needs a cuda device, and train.device is {:?}",
                t.device
            ),
        ));
    }
    let a = &t.augment;
    let aug = |key| [P::Key("train"), P::Key("augment"), P::Key(key)];
    for (key, v) in [
        ("hflip_prob", a.hflip_prob),
        ("grayscale_prob", a.grayscale_prob),
        ("brightness", a.brightness),
        ("contrast", a.contrast),
        ("saturation", a.saturation),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(err(
                &aug(key),
                format!("expected a number in [0, 1], found {v}"),
            ));
        }
    }
    if !(a.crop_scale_min > 0.0 && a.crop_scale_min <= 1.0) {
        return Err(err(
            &aug("crop_scale_min"),
            format!("expected a fraction in (0, 1], found {}", a.crop_scale_min),
        ));
    }
    if !(a.crop_ratio_min > 0.0 && a.crop_ratio_min <= a.crop_ratio_max) {
        return Err(err(
            &aug("crop_ratio_min"),
            format!(
                "expected 0 < crop_ratio_min <= crop_ratio_max ({}), found {}",
                a.crop_ratio_max, a.crop_ratio_min
            ),
        ));
    }
    Ok(())
}

/// Whether `v` can be sent as an HTTP header value (and is not empty).
fn is_header_value(v: &str) -> bool {
    !v.trim().is_empty() && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}
