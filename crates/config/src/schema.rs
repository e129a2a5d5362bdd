//! The config schema. Every struct denies unknown keys; every section but `dataset`, `class`,
//! `group` and `split` has defaults. The config reference, docs/config.md, follows this file.

use std::fmt;
use std::path::PathBuf;

use lennonnet_core::{Animated, EngineKind, Group, Label, Purpose};
pub use lennonnet_records::{AugmentOptions, Balance, Strategy, ThresholdMetric, TrainSettings};
use serde::{Deserialize, Deserializer};

/// A whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub dataset: DatasetConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub engines: EnginesConfig,
    #[serde(default)]
    pub fetch: FetchConfig,
    #[serde(default)]
    pub image: ImageConfig,
    #[serde(default)]
    pub scrape: ScrapeConfig,
    #[serde(default)]
    pub curate: CurateConfig,
    #[serde(default)]
    pub train: TrainConfig,
    /// `[[class]]`: the labels the model learns. At least two.
    #[serde(rename = "class")]
    pub classes: Vec<ClassConfig>,
    /// `[[group]]`: named sets of queries, each for one class.
    #[serde(rename = "group", default)]
    pub groups: Vec<GroupConfig>,
    /// `[words]`: many small groups, one per word chosen from a word list by a seed.
    #[serde(default)]
    pub words: Option<WordsConfig>,
    pub split: SplitConfig,
}

/// `[dataset]`: what the dataset is called and where it lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// The dataset's folder name under `root_dir`.
    pub name: Group,
    /// The folder that holds datasets, relative to the config file. Default `../datasets`.
    #[serde(default = "default_root_dir")]
    pub root_dir: PathBuf,
}

fn default_root_dir() -> PathBuf {
    PathBuf::from("../datasets")
}

/// `[http]`: settings shared by every HTTP request, to engines and to image hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// An honest, descriptive User-Agent. Wikimedia Commons refuses generic ones.
    pub user_agent: String,
    /// A proxy URL for all requests (`http://`, `https://` or `socks5://`). When absent, the
    /// usual `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` environment variables apply.
    pub proxy: Option<String>,
    /// Allow targets that resolve to loopback, private, link-local, multicast or unspecified
    /// addresses. Off for the real web; the offline mirror and the tests turn it on.
    pub allow_private_addresses: bool,
    /// Name-resolution overrides: a host name suffix and the IP address every host under it
    /// resolves to, e.g. `{ "mirror.test" = "127.0.0.1" }` sends `img07.mirror.test` to loopback.
    /// Used for the offline mirror's virtual hosts; empty for the real web.
    pub resolve: std::collections::BTreeMap<String, std::net::IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            user_agent: concat!(
                "lennonnet/",
                env!("CARGO_PKG_VERSION"),
                " (image dataset builder; one request at a time per engine; +https://example.invalid/lennonnet)"
            )
            .to_string(),
            proxy: None,
            allow_private_addresses: false,
            resolve: Default::default(),
        }
    }
}

/// How several engines are combined for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineStrategy {
    /// Use the first engine in `order`; the next ones only for groups still short of images.
    Fallback,
    /// Use every engine in `order` for every query.
    All,
}

/// `[engines]`: which search engines to use, in what order, and how politely.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnginesConfig {
    /// Engines in order of preference. Default `["duckduckgo", "bing", "wikimedia_commons"]`.
    pub order: Vec<EngineKind>,
    /// `fallback` (default) or `all`.
    pub strategy: EngineStrategy,
    /// Retries of one engine request after a rate limit, a 5xx or a network error.
    pub max_retries: u32,
    pub duckduckgo: EngineConfig,
    pub bing: EngineConfig,
    pub wikimedia_commons: EngineConfig,
}

impl Default for EnginesConfig {
    fn default() -> Self {
        Self {
            order: EngineKind::ALL.to_vec(),
            strategy: EngineStrategy::Fallback,
            max_retries: 5,
            duckduckgo: EngineConfig::default(),
            bing: EngineConfig::default(),
            wikimedia_commons: EngineConfig::default(),
        }
    }
}

impl EnginesConfig {
    pub fn engine(&self, kind: EngineKind) -> &EngineConfig {
        match kind {
            EngineKind::DuckDuckGo => &self.duckduckgo,
            EngineKind::Bing => &self.bing,
            EngineKind::WikimediaCommons => &self.wikimedia_commons,
        }
    }

    /// The base URL requests to `kind` go to: the configured one, or the real engine's.
    pub fn base_url(&self, kind: EngineKind) -> &str {
        self.engine(kind)
            .base_url
            .as_deref()
            .unwrap_or(Self::real_base_url(kind))
    }

    /// The real engine's base URL.
    pub fn real_base_url(kind: EngineKind) -> &'static str {
        match kind {
            EngineKind::DuckDuckGo => "https://duckduckgo.com",
            EngineKind::Bing => "https://www.bing.com",
            EngineKind::WikimediaCommons => "https://commons.wikimedia.org",
        }
    }

    /// `kind`'s settings with its defaults filled in.
    pub fn settings(&self, kind: EngineKind, http: &HttpConfig) -> EngineSettings {
        self.engine(kind).settings(kind, http)
    }
}

/// `[engines.<name>]`: one engine's settings. Keys left out take the engine's own default
/// (see [`EngineSettings`], resolved by [`EnginesConfig::settings`]): the defaults are what the
/// clients kept working against each engine found it accepts (docs/engines.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the engine is. Default: the real engine. Point it at the offline mirror to test.
    pub base_url: Option<String>,
    /// Pacing: at most this many requests per second to this engine. Default: DuckDuckGo 0.2,
    /// the others 1.0.
    pub requests_per_sec: Option<f64>,
    /// Stop paging a query after this many results. Default 1,000.
    pub max_results: Option<u32>,
    /// Stop paging a query after this many result pages (0: no cap). Default: DuckDuckGo 5,
    /// the others 0.
    pub max_pages: Option<u32>,
    /// Timeout of one request to the engine. Default 30.
    pub timeout_secs: Option<u64>,
    /// The User-Agent sent to this engine. Default: one fixed current desktop browser's for
    /// DuckDuckGo and Bing (they shortchange or block other clients); `[http] user_agent`
    /// for Wikimedia Commons (its policy wants the tool and a contact named).
    pub user_agent: Option<String>,
    /// `Accept-Language`. Default `en-US,en;q=0.9`.
    pub accept_language: Option<String>,
    /// The region: DuckDuckGo's `l` (default `us-en`), Bing's `mkt` (default `en-US`). Not
    /// used by Wikimedia Commons.
    pub region: Option<String>,
    /// DuckDuckGo's `f` filter (`timelimit,size,color,type,layout,license`), sent only when
    /// set. Not used by the others.
    pub filter: Option<String>,
    /// Blocks or rate limits in a row after which the engine is taken down for
    /// `cooldown_secs` (its queries fall through to the next engine in `order`). Default 3.
    pub block_threshold: Option<u32>,
    /// How long an engine stays down after `block_threshold` blocks in a row. Default:
    /// DuckDuckGo 3,600 (its blocks last about an hour), the others 600.
    pub cooldown_secs: Option<u64>,
    /// Queries in a row answered with a page no parser recognises after which the run fails
    /// (the engine's format really changed). Default 3.
    pub changed_threshold: Option<u32>,
    /// Wikimedia Commons only: download the thumbnail of this standard width instead of the
    /// original (originals narrower than it are downloaded as they are). Default 1,280.
    pub thumbnail_width_px: Option<u32>,
    /// Wikimedia Commons only: download originals, not thumbnails. Default false.
    pub originals: Option<bool>,
    /// Wikimedia Commons only: the API's `maxlag` (seconds of replication lag after which it
    /// asks batch clients to wait). Default 5.
    pub maxlag_secs: Option<u32>,
}

/// A current desktop browser's User-Agent: what DuckDuckGo and Bing serve full answers to. One
/// fixed value for the whole run (DuckDuckGo ties its `vqd` token to it).
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36";

/// Wikimedia's standard thumbnail widths: the file servers render only these (T414805), and
/// the API rounds other widths up to the next one.
pub const COMMONS_THUMB_STEPS: [u32; 11] = [20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840];

/// One engine's settings with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    pub kind: EngineKind,
    /// The configured base URL, or the real engine's.
    pub base_url: String,
    /// Whether `base_url` is the real engine's (no override).
    pub is_real: bool,
    pub requests_per_sec: f64,
    pub max_results: u32,
    /// `None`: no cap.
    pub max_pages: Option<u32>,
    pub timeout_secs: u64,
    pub user_agent: String,
    pub accept_language: String,
    pub region: Option<String>,
    pub filter: Option<String>,
    pub block_threshold: u32,
    pub cooldown_secs: u64,
    pub changed_threshold: u32,
    /// Wikimedia Commons: the standard thumbnail width downloaded instead of originals;
    /// `None` for originals (and for the other engines).
    pub thumbnail_width_px: Option<u32>,
    /// Wikimedia Commons: `maxlag`.
    pub maxlag_secs: Option<u32>,
}

impl EngineConfig {
    /// This engine's settings with its defaults filled in.
    pub fn settings(&self, kind: EngineKind, http: &HttpConfig) -> EngineSettings {
        let ddg = kind == EngineKind::DuckDuckGo;
        let commons = kind == EngineKind::WikimediaCommons;
        EngineSettings {
            kind,
            base_url: self
                .base_url
                .clone()
                .unwrap_or_else(|| EnginesConfig::real_base_url(kind).to_string()),
            is_real: self.base_url.is_none(),
            requests_per_sec: self.requests_per_sec.unwrap_or(if ddg { 0.2 } else { 1.0 }),
            max_results: self.max_results.unwrap_or(1000),
            max_pages: match self.max_pages {
                Some(0) => None,
                Some(n) => Some(n),
                None => ddg.then_some(5),
            },
            timeout_secs: self.timeout_secs.unwrap_or(30),
            user_agent: self.user_agent.clone().unwrap_or_else(|| {
                if commons {
                    http.user_agent.clone()
                } else {
                    BROWSER_USER_AGENT.to_string()
                }
            }),
            accept_language: self
                .accept_language
                .clone()
                .unwrap_or_else(|| "en-US,en;q=0.9".to_string()),
            region: match kind {
                EngineKind::DuckDuckGo => {
                    Some(self.region.clone().unwrap_or_else(|| "us-en".into()))
                }
                EngineKind::Bing => Some(self.region.clone().unwrap_or_else(|| "en-US".into())),
                EngineKind::WikimediaCommons => None,
            },
            filter: if ddg { self.filter.clone() } else { None },
            block_threshold: self.block_threshold.unwrap_or(3),
            cooldown_secs: self.cooldown_secs.unwrap_or(if ddg { 3600 } else { 600 }),
            changed_threshold: self.changed_threshold.unwrap_or(3),
            thumbnail_width_px: if commons && !self.originals.unwrap_or(false) {
                Some(self.thumbnail_width_px.unwrap_or(1280))
            } else {
                None
            },
            maxlag_secs: if commons {
                Some(self.maxlag_secs.unwrap_or(5))
            } else {
                None
            },
        }
    }
}

/// `[fetch]`: download limits for images.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Downloads in flight at once, over all hosts.
    pub concurrency: u32,
    /// Downloads in flight at once to one host.
    pub per_host_concurrency: u32,
    /// Hosts with their own limit of downloads in flight, instead of `per_host_concurrency`.
    /// Default `{ "upload.wikimedia.org" = 2 }` (Wikimedia's file servers allow 2 per
    /// client). Setting the key replaces the whole table.
    pub host_concurrency: std::collections::BTreeMap<String, u32>,
    /// Pacing: at most this many new requests per second to one host.
    pub per_host_requests_per_sec: f64,
    pub connect_timeout_secs: u64,
    /// Time allowed from the request to the response headers.
    pub first_byte_timeout_secs: u64,
    /// Time allowed for a whole download.
    pub total_timeout_secs: u64,
    /// A body that arrives slower than this, measured over `stall_window_secs`, is abandoned.
    pub stall_min_bytes_per_sec: u64,
    pub stall_window_secs: u64,
    /// Larger bodies are refused, from Content-Length or while streaming.
    pub max_bytes: u64,
    pub max_redirects: u32,
    /// Retries of one download after a transient failure (connect error, timeout, 5xx, 429).
    pub max_retries: u32,
    /// First backoff delay; it doubles on each retry, with jitter.
    pub retry_base_delay_ms: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            per_host_concurrency: 4,
            host_concurrency: [("upload.wikimedia.org".to_string(), 2)].into(),
            per_host_requests_per_sec: 8.0,
            connect_timeout_secs: 10,
            first_byte_timeout_secs: 20,
            total_timeout_secs: 60,
            stall_min_bytes_per_sec: 2048,
            stall_window_secs: 10,
            max_bytes: 20_000_000,
            max_redirects: 5,
            max_retries: 3,
            retry_base_delay_ms: 500,
        }
    }
}

/// `[scrape]`: how the scrape pipeline spreads its work.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    /// Groups worked at once. Each group is worked in result order, so more groups keep more
    /// downloads and more CPU busy.
    pub groups_in_parallel: u32,
    /// How far a group's downloads may run ahead of its first candidate whose outcome is still
    /// unknown (a slow download holds only its own place). Which images a group ends with
    /// still does not depend on timing: see the scrape crate's documentation.
    pub prefetch_per_group: u32,
    /// Downloads in flight or downloaded but not yet stored, all groups together: bounds the
    /// image bytes held in memory.
    pub prefetch_total: u32,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            groups_in_parallel: 16,
            prefetch_per_group: 4096,
            prefetch_total: 256,
        }
    }
}

/// `[image]`: which downloaded images are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// Images whose shorter side is below this are refused (read from the header, before decoding).
    pub min_side_px: u32,
    /// Images with more pixels than this are refused before decoding: the decompression-bomb guard.
    pub max_pixels: u64,
    /// `first_frame` (default) or `reject`.
    pub animated: Animated,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            min_side_px: 64,
            max_pixels: 40_000_000,
            animated: Animated::FirstFrame,
        }
    }
}

/// What curation does with a near-duplicate cluster found under more than one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Give the whole cluster `prefer_label` when it is one of its labels, removing it from the
    /// others ("Paul McCartney" results that show John become `john`); quarantine it otherwise.
    PreferLabel,
    /// Leave the whole cluster out of training and evaluation.
    Quarantine,
}

/// `[curate]`: near-duplicate clustering and the label-conflict policy. The defaults come from
/// measurements on known copies (docs/store.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurateConfig {
    /// Two images are near-duplicates when their 64-bit pHashes differ in at most this many
    /// bits (the search radius of the index; at most 16)...
    pub phash_max_distance: u32,
    /// ...and their 256-bit PDQ hashes differ in at most this many bits.
    pub pdq_max_distance: u32,
    /// Images whose PDQ quality (0-100) is below this are too flat to match on: each stays
    /// its own cluster.
    pub min_quality: u8,
    /// `prefer_label` (default) or `quarantine`.
    pub conflict_policy: ConflictPolicy,
    /// The label a conflicting cluster gets under `prefer_label`. Default: the first
    /// `[[class]]` (the positive class, `john` in the founding plan).
    pub prefer_label: Option<Label>,
    /// The name `lennonnet review` writes in its `label_review` records. Default: `$USER`.
    pub reviewer: Option<String>,
}

impl Default for CurateConfig {
    fn default() -> Self {
        Self {
            phash_max_distance: 7,
            pdq_max_distance: 40,
            min_quality: 30,
            conflict_policy: ConflictPolicy::PreferLabel,
            prefer_label: None,
            reviewer: None,
        }
    }
}

/// `[train]`: how `lennonnet train` trains; command-line flags override some keys.
/// docs/training.md describes each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The folder that holds run folders, relative to the config file. Default `../runs` (the
    /// repository's `runs/` for the shipped configs).
    pub runs_dir: PathBuf,
    /// The pixel and feature caches, relative to the config file. Default `<runs_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// The architecture (`lennonnet model list`).
    pub model: String,
    /// Pretrained weights: a safetensors or .pth file (relative to the config file) or
    /// `hub:ORG/REPO[/FILE]`. Absent: random initialisation from the seed.
    pub weights: Option<String>,
    /// `head` (default), `partial` or `full`.
    pub strategy: Strategy,
    /// `partial`: name prefixes trained besides the head. Empty: the model's last stage.
    pub trainable_prefixes: Vec<String>,
    pub epochs: u32,
    pub batch_size: u32,
    /// Input side in pixels, a multiple of 32. Absent: the model's pretrained input size.
    pub input_px: Option<u32>,
    /// Seeds initialisation, data order, augmentation and dropout.
    pub seed: u64,
    /// AdamW's peak learning rate, reached after the warm-up.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay (not applied to biases and batch-norm parameters).
    pub weight_decay: f64,
    /// Linear warm-up length, in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// The cosine decay ends at this fraction of `learning_rate`.
    pub final_lr_fraction: f64,
    pub label_smoothing: f64,
    /// The global gradient norm is clipped to this; 0 turns clipping off.
    pub grad_clip_norm: f64,
    /// `weighted_loss` (default), `sampler` or `none`.
    pub balance: Balance,
    /// Stop when the validation loss has not improved for this many epochs.
    pub patience_epochs: u32,
    /// `balanced_accuracy` (default) or `f1`.
    pub threshold_metric: ThresholdMetric,
    /// `head`: views cached per training image; 1 is the centre crop only, more add augmented
    /// views that epochs choose from.
    pub feature_views: u32,
    /// `partial`: run the frozen layers once per cached view and train the rest on their
    /// output (the input of the first trainable block), instead of on images every step.
    pub cache_boundary: bool,
    /// `[train.augment]`: the training images' random transforms.
    pub augment: AugmentOptions,
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    pub device: String,
    /// bf16 compute; CUDA only.
    pub bf16: bool,
    /// Threads that read, augment and batch images ahead of the model.
    pub loader_threads: u32,
    /// Finished batches that may wait for the model.
    pub prefetch_batches: u32,
    /// Also checkpoint (for --resume) every this many steps within an epoch; 0: at epoch ends.
    pub checkpoint_every_steps: u64,
}

impl TrainConfig {
    /// The training settings these keys give, with `weights` resolved by the caller (a path
    /// relative to the config file, or `hub:`).
    pub fn settings(&self, weights: Option<String>) -> TrainSettings {
        TrainSettings {
            model: self.model.clone(),
            weights,
            strategy: self.strategy,
            trainable_prefixes: self.trainable_prefixes.clone(),
            epochs: self.epochs as usize,
            batch_size: self.batch_size as usize,
            input_px: self.input_px.map(|p| p as usize),
            seed: self.seed,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            warmup_epochs: self.warmup_epochs,
            final_lr_fraction: self.final_lr_fraction,
            label_smoothing: self.label_smoothing,
            grad_clip_norm: (self.grad_clip_norm > 0.0).then_some(self.grad_clip_norm),
            balance: self.balance,
            patience_epochs: self.patience_epochs as usize,
            threshold_metric: self.threshold_metric,
            feature_views: self.feature_views as usize,
            cache_boundary: self.cache_boundary,
            augment: self.augment.clone(),
            device: self.device.clone(),
            bf16: self.bf16,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            runs_dir: PathBuf::from("../runs"),
            cache_dir: None,
            model: "efficientnet_lite0".into(),
            weights: None,
            strategy: Strategy::Head,
            trainable_prefixes: Vec::new(),
            epochs: 30,
            batch_size: 32,
            input_px: None,
            seed: 0,
            learning_rate: 1e-3,
            weight_decay: 0.05,
            warmup_epochs: 1.0,
            final_lr_fraction: 0.01,
            label_smoothing: 0.1,
            grad_clip_norm: 1.0,
            balance: Balance::WeightedLoss,
            patience_epochs: 10,
            threshold_metric: ThresholdMetric::BalancedAccuracy,
            feature_views: 1,
            cache_boundary: false,
            augment: AugmentOptions::default(),
            device: "cpu".into(),
            bf16: false,
            loader_threads: 2,
            prefetch_batches: 4,
            checkpoint_every_steps: 0,
        }
    }
}

/// `[[class]]`: one label the model learns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    pub name: Label,
    #[serde(default)]
    pub description: String,
}

/// `[[group]]`: a named set of queries for one class, with a wanted number of images.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: Group,
    /// The class its images are labelled with; must be a declared `[[class]]`.
    pub label: Label,
    /// `train` (default): curated into train/val/test. `eval`: a held-out evaluation set.
    #[serde(default = "default_purpose")]
    pub purpose: Purpose,
    /// Distinct valid images wanted. The group's queries are worked until it has them.
    pub wanted: Count,
    /// Search texts, most specific first.
    pub queries: Vec<String>,
    /// Engines for this group, overriding `engines.order`.
    #[serde(default)]
    pub engines: Option<Vec<EngineKind>>,
    /// When an image host refuses the original (401, 403, a hotlink page), store the
    /// engine's thumbnail of it instead (provenance says so). Default false.
    #[serde(default)]
    pub accept_thumbnails: bool,
}

fn default_purpose() -> Purpose {
    Purpose::Train
}

/// `[words]`: random-word groups. `count` words are chosen from the word list by `seed`; each
/// becomes a group `<group_prefix><word>` with `wanted` images and one query per template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WordsConfig {
    /// The word list: one lowercase word per line, `#` comments. Relative to the config file.
    pub file: PathBuf,
    /// The same seed picks the same words on every machine and release.
    pub seed: u64,
    /// How many words to pick.
    pub count: Count,
    /// Images wanted per word.
    pub wanted: Count,
    /// The class of every word group.
    pub label: Label,
    #[serde(default = "default_purpose")]
    pub purpose: Purpose,
    /// Word groups are named `<group_prefix><word>`. Default `word_`.
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
    /// Query texts; `{word}` is replaced by the word. Default `["{word}"]`.
    #[serde(default = "default_templates")]
    pub query_templates: Vec<String>,
    /// Engines for word groups, overriding `engines.order`.
    #[serde(default)]
    pub engines: Option<Vec<EngineKind>>,
    /// See [`GroupConfig::accept_thumbnails`].
    #[serde(default)]
    pub accept_thumbnails: bool,
    /// The words read from `file` (filled in by [`crate::load`]).
    #[serde(skip)]
    pub list: Vec<String>,
}

fn default_group_prefix() -> String {
    "word_".to_string()
}

fn default_templates() -> Vec<String> {
    vec!["{word}".to_string()]
}

/// `[split]`: how the curated images are split into train, validation and test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// The key of the split hash. Another key gives another split; keep it to keep the split.
    pub key: String,
    /// Share of the remaining (non-test) clusters put in validation, in `[0, 1)`.
    pub val_fraction: f64,
    /// Exact number of test images per class, e.g. `{ john = 100, not_john = 100 }`.
    #[serde(default)]
    pub test_per_class: std::collections::BTreeMap<String, u32>,
}

/// A positive whole number of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Count(u32);

impl Count {
    pub fn new(n: u32) -> Option<Self> {
        (n > 0).then_some(Self(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive whole number of images")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Count, E> {
                u32::try_from(n).ok().and_then(Count::new).ok_or_else(|| {
                    E::custom(format!(
                        "expected a positive whole number of images (1 to {}), found {n}",
                        u32::MAX
                    ))
                })
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Count, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_i64(V)
    }
}
