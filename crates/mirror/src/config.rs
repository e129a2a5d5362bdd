//! The world file: how queries map to subjects, how many results they get, the formats and
//! sizes of images, and the rate of every kind of noise. Every key has a default (see
//! [`WorldConfig::default`]); a world file only names what it changes. Unknown keys are errors.

use std::path::Path;

use lennonnet_core::EngineKind;
use serde::{Deserialize, Serialize};

use crate::error::{MirrorError, Result};

/// The whole world file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// The world's seed. `--seed` on the command line overrides it.
    pub seed: u64,
    pub results: ResultsConfig,
    /// `[[subject]]`: query phrases that name one of the rendered identities. The first rule
    /// with a phrase contained in the (lowercased) query wins.
    #[serde(rename = "subject")]
    pub subjects: Vec<SubjectRule>,
    /// Whole words that make a query (naming no identity) a query for random people.
    pub people_words: Vec<String>,
    /// Words dropped from a query before it names a word scene ("teapot photo" -> "teapot").
    pub stop_words: Vec<String>,
    pub images: ImagesConfig,
    pub noise: NoiseConfig,
    pub timing: TimingConfig,
    pub search: SearchConfig,
}

/// `[[subject]]`: phrases that name an identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectRule {
    /// Lowercase phrases; the rule matches when the lowercased query contains one of them.
    pub phrases: Vec<String>,
    /// `john`, `paul`, `george`, `ringo`, or `beatles` (group pictures of the four). In corpus
    /// mode, the name of a corpus sub-folder.
    pub identity: String,
}

/// `[results]`: how many results a query has and where they come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResultsConfig {
    /// Most results a DuckDuckGo or Bing query yields over all its pages.
    pub max_results: u32,
    /// Fewest results a DuckDuckGo or Bing query yields (each query gets a seeded count between).
    pub min_results: u32,
    /// Most results of a Wikimedia Commons search (Commons has far fewer pictures).
    pub commons_max_results: u32,
    pub commons_min_results: u32,
    /// Original pictures of each rendered identity (john, paul, george, ringo).
    pub identity_pool: u32,
    /// Random people ("person" queries draw from them).
    pub people_pool: u32,
    /// Pictures of one random person.
    pub pictures_per_person: u32,
    /// Original pictures of each word scene.
    pub word_pool: u32,
    /// Share of results drawn from a subject's popular pictures, shared by every query and
    /// engine: the same picture under many URLs and hosts.
    pub popular_share: f64,
    /// How many popular pictures a subject has.
    pub popular_size: u32,
    /// How many pictures one query's own results spread over. Two queries for the same subject
    /// get overlapping but different windows of the subject's pictures.
    pub query_window: u32,
}

impl Default for ResultsConfig {
    fn default() -> Self {
        Self {
            max_results: 1000,
            min_results: 700,
            commons_max_results: 400,
            commons_min_results: 60,
            identity_pool: 3000,
            people_pool: 6000,
            pictures_per_person: 3,
            word_pool: 400,
            popular_share: 0.25,
            popular_size: 150,
            query_window: 1400,
        }
    }
}

/// `[images]`: formats and sizes of the original pictures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Shares of the formats (normalised): JPEG, PNG, WebP (lossless), GIF.
    pub jpeg: f64,
    pub png: f64,
    pub webp: f64,
    pub gif: f64,
    /// Share of JPEGs that are progressive (the rest are baseline).
    pub progressive: f64,
    /// Share of JPEGs stored sideways or flipped with an EXIF Orientation tag (3, 6, 8 or 2).
    pub exif_orientation: f64,
    /// Share of GIFs with more than one frame.
    pub animated_gif: f64,
    /// Longer side of originals, in pixels: most between `min_side_px` and `typical_max_px`,
    /// a few up to `max_side_px`.
    pub min_side_px: u32,
    pub typical_max_px: u32,
    pub max_side_px: u32,
    /// Share of originals larger than `typical_max_px`.
    pub large_share: f64,
    /// Share of identity pictures in black and white (more in earlier years).
    pub black_and_white: f64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            jpeg: 0.82,
            png: 0.09,
            webp: 0.05,
            gif: 0.04,
            progressive: 0.3,
            exif_orientation: 0.04,
            animated_gif: 0.3,
            min_side_px: 200,
            typical_max_px: 900,
            max_side_px: 2000,
            large_share: 0.08,
            black_and_white: 0.3,
        }
    }
}

/// `[noise]`: the web's noise. Every value is a share of results (0 turns it off). Within each
/// of the three blocks below the kinds exclude each other, so each block must sum to at most 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    // Who is in the picture.
    /// John alone, in Paul's, George's or Ringo's results.
    pub john_in_others: f64,
    /// A group picture of the searched Beatle with John (and maybe others).
    pub group_in_others: f64,
    /// John alone, in "person" results.
    pub john_in_people: f64,
    /// A group picture of random people with John, in "person" results.
    pub group_in_people: f64,
    /// Another Beatle alone, in John's results.
    pub other_in_john: f64,
    /// A group picture with John, in John's results.
    pub group_in_john: f64,

    // Which copy of the picture.
    /// The same picture re-encoded (other quality or format).
    pub reencoded: f64,
    /// A smaller copy.
    pub resized: f64,
    /// A cropped copy.
    pub cropped: f64,
    /// A copy with a stock-photo watermark.
    pub watermarked: f64,
    /// A thumbnail (longer side 100 to 250 px).
    pub thumbnail: f64,

    // How the URL answers.
    /// 404 Not Found.
    pub not_found: f64,
    /// 410 Gone.
    pub gone: f64,
    /// 500, 502 or 503.
    pub server_error: f64,
    /// The response headers come after `timing.slow_first_byte_ms`.
    pub slow_first_byte: f64,
    /// The body trickles at `timing.trickle_bytes` every `timing.trickle_interval_ms`.
    pub trickle: f64,
    /// The image with a wrong Content-Type (text/html, text/plain, octet-stream or another image type).
    pub wrong_content_type: f64,
    /// An HTML error page with status 200.
    pub html_200: f64,
    /// The file cut short (the Content-Length matches the short file).
    pub truncated: f64,
    /// A decompression bomb: a small PNG or JPEG whose header declares a huge size.
    pub bomb: f64,
    /// A very large file (`timing.huge_bytes`).
    pub huge: f64,
    /// A chain of 1 to `timing.max_redirects` redirects across hosts, ending at the image.
    pub redirect_chain: f64,
    /// Redirects that never end.
    pub redirect_loop: f64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            john_in_others: 0.04,
            group_in_others: 0.04,
            john_in_people: 0.01,
            group_in_people: 0.01,
            other_in_john: 0.02,
            group_in_john: 0.04,
            reencoded: 0.05,
            resized: 0.05,
            cropped: 0.03,
            watermarked: 0.03,
            thumbnail: 0.02,
            not_found: 0.03,
            gone: 0.01,
            server_error: 0.01,
            slow_first_byte: 0.01,
            trickle: 0.002,
            wrong_content_type: 0.02,
            html_200: 0.01,
            truncated: 0.01,
            bomb: 0.002,
            huge: 0.002,
            redirect_chain: 0.03,
            redirect_loop: 0.003,
        }
    }
}

impl NoiseConfig {
    /// Turns every kind of noise off: clean results, every URL answers with its picture.
    pub fn none() -> Self {
        Self {
            john_in_others: 0.0,
            group_in_others: 0.0,
            john_in_people: 0.0,
            group_in_people: 0.0,
            other_in_john: 0.0,
            group_in_john: 0.0,
            reencoded: 0.0,
            resized: 0.0,
            cropped: 0.0,
            watermarked: 0.0,
            thumbnail: 0.0,
            not_found: 0.0,
            gone: 0.0,
            server_error: 0.0,
            slow_first_byte: 0.0,
            trickle: 0.0,
            wrong_content_type: 0.0,
            html_200: 0.0,
            truncated: 0.0,
            bomb: 0.0,
            huge: 0.0,
            redirect_chain: 0.0,
            redirect_loop: 0.0,
        }
    }

    /// The delivery kinds with their rates, in the order they partition `[0, 1)`.
    pub fn delivery_rates(&self) -> [(crate::spec::Delivery, f64); 13] {
        use crate::spec::Delivery as D;
        [
            (D::NotFound, self.not_found),
            (D::Gone, self.gone),
            (D::ServerError, self.server_error),
            (D::SlowFirstByte, self.slow_first_byte),
            (D::Trickle, self.trickle),
            (D::WrongContentType, self.wrong_content_type),
            (D::Html200, self.html_200),
            (D::Truncated, self.truncated),
            (D::Bomb, self.bomb),
            (D::Huge, self.huge),
            (D::RedirectChain, self.redirect_chain),
            (D::RedirectLoop, self.redirect_loop),
            (D::Ok, 0.0),
        ]
    }

    /// The copy kinds with their rates.
    pub fn variant_rates(&self) -> [(crate::spec::VariantKind, f64); 5] {
        use crate::spec::VariantKind as V;
        [
            (V::Reencoded, self.reencoded),
            (V::Resized, self.resized),
            (V::Cropped, self.cropped),
            (V::Watermarked, self.watermarked),
            (V::Thumbnail, self.thumbnail),
        ]
    }
}

/// `[timing]`: delays and sizes of the slow and large noise. Keep them small in tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// Delay before the response headers of a slow host.
    pub slow_first_byte_ms: u64,
    /// A trickling body sends this many bytes...
    pub trickle_bytes: u32,
    /// ...every this many milliseconds.
    pub trickle_interval_ms: u64,
    /// Size of a very large file.
    pub huge_bytes: u64,
    /// Longest redirect chain.
    pub max_redirects: u32,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            slow_first_byte_ms: 3000,
            trickle_bytes: 4,
            trickle_interval_ms: 1000,
            huge_bytes: 30_000_000,
            max_redirects: 4,
        }
    }
}

/// `[search] profile`: which defaults the keys of the real engines' behaviours take. `kind`
/// (the default) turns them all off, so the mirror answers as it always has; `strict` turns
/// them all on at the rates documented in `docs/mirror.md`. A key named in the world file wins
/// over its profile's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Kind,
    Strict,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Kind => "kind",
            Profile::Strict => "strict",
        }
    }

    fn is_kind(&self) -> bool {
        *self == Profile::Kind
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = MirrorError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "kind" => Ok(Profile::Kind),
            "strict" => Ok(Profile::Strict),
            other => Err(MirrorError::InvalidWorld(format!(
                "unknown profile {other:?}: expected kind or strict"
            ))),
        }
    }
}

/// `[search]`: how the search endpoints misbehave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// More than this many requests to one engine within `burst_window_ms` get 429 with
    /// Retry-After (or, with `ddg_block_secs`, start a DuckDuckGo block). 0 turns the limit off.
    pub burst_limit: u32,
    pub burst_window_ms: u64,
    /// The Retry-After value sent with a 429.
    pub retry_after_secs: u64,
    /// Share of DuckDuckGo requests answered with the anomaly (bot-check) page.
    pub ddg_anomaly: f64,
    /// Share of DuckDuckGo HTML pages that carry no `vqd` token.
    pub ddg_missing_vqd: f64,
    /// Wikimedia Commons refuses requests whose User-Agent has no contact (URL or e-mail).
    pub commons_require_user_agent: bool,

    /// The defaults of the keys below: `kind` (all off) or `strict` (all on).
    #[serde(skip_serializing_if = "Profile::is_kind")]
    pub profile: Profile,
    /// Engines that answer in a "changed format": a well-formed body the adapters cannot
    /// recognise (for `lennonnet engines check`). Empty in both profiles.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<EngineKind>,
    /// `i.js` refuses (403) a request without `Sec-Fetch-Mode: cors`, `Sec-Fetch-Dest: empty`,
    /// `Sec-Fetch-Site: same-origin`, a Referer, an Accept-Language and a browser User-Agent
    /// (one containing `Mozilla/5.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddg_require_browser_headers: Option<bool>,
    /// The `vqd` token depends on the query and the User-Agent; a token minted for another
    /// User-Agent gets 403.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddg_vqd_per_user_agent: Option<bool>,
    /// Share of `i.js` requests for a page after the first (`s` > 0) answered with the challenge
    /// page (HTML, status 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddg_challenge_later_pages: Option<f64>,
    /// Mirror-seconds a DuckDuckGo block lasts once a burst exceeds `burst_limit` (0: no blocks,
    /// a 429 instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddg_block_secs: Option<u64>,
    /// Mirror-seconds per real second, for blocks: 60 makes a one-hour block last a minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_scale: Option<f64>,
    /// Share of DuckDuckGo search requests (outside blocks) answered with a 302 to the
    /// challenge page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddg_redirect_to_challenge: Option<f64>,
    /// Bing answers a request without a browser User-Agent or without gzip or br in its
    /// Accept-Encoding with its first result only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bing_require_browser: Option<bool>,
    /// Bing answers `first` past the end with its last non-empty page again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bing_repeat_last_page: Option<bool>,
    /// The engines' answers are compressed (br or gzip, per Accept-Encoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress_responses: Option<bool>,
    /// Share of Commons API requests with a `maxlag` parameter answered with the maxlag error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commons_maxlag: Option<f64>,
    /// Most concurrent downloads one User-Agent may have on the Commons file host (0: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commons_file_concurrency: Option<u32>,
    /// `iiurlwidth` off the standard thumbnail steps is rounded up to the next step (else it is
    /// ignored), and the file host refuses thumbnails of other widths (400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commons_strict_thumb_widths: Option<bool>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            burst_limit: 30,
            burst_window_ms: 10_000,
            retry_after_secs: 5,
            ddg_anomaly: 0.01,
            ddg_missing_vqd: 0.01,
            commons_require_user_agent: true,
            profile: Profile::Kind,
            changed: Vec::new(),
            ddg_require_browser_headers: None,
            ddg_vqd_per_user_agent: None,
            ddg_challenge_later_pages: None,
            ddg_block_secs: None,
            clock_scale: None,
            ddg_redirect_to_challenge: None,
            bing_require_browser: None,
            bing_repeat_last_page: None,
            compress_responses: None,
            commons_maxlag: None,
            commons_file_concurrency: None,
            commons_strict_thumb_widths: None,
        }
    }
}

/// The real engines' behaviours in force: a profile's defaults with the world file's keys over
/// them (see [`SearchConfig::rules`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineRules {
    pub ddg_require_browser_headers: bool,
    pub ddg_vqd_per_user_agent: bool,
    pub ddg_challenge_later_pages: f64,
    pub ddg_block_secs: u64,
    pub clock_scale: f64,
    pub ddg_redirect_to_challenge: f64,
    pub bing_require_browser: bool,
    pub bing_repeat_last_page: bool,
    pub compress_responses: bool,
    pub commons_maxlag: f64,
    pub commons_file_concurrency: u32,
    pub commons_strict_thumb_widths: bool,
}

impl EngineRules {
    /// Every behaviour off: the mirror as it always answered.
    pub const KIND: EngineRules = EngineRules {
        ddg_require_browser_headers: false,
        ddg_vqd_per_user_agent: false,
        ddg_challenge_later_pages: 0.0,
        ddg_block_secs: 0,
        clock_scale: 1.0,
        ddg_redirect_to_challenge: 0.0,
        bing_require_browser: false,
        bing_repeat_last_page: false,
        compress_responses: false,
        commons_maxlag: 0.0,
        commons_file_concurrency: 0,
        commons_strict_thumb_widths: false,
    };

    /// Every behaviour on, at about the real engines' rates.
    pub const STRICT: EngineRules = EngineRules {
        ddg_require_browser_headers: true,
        ddg_vqd_per_user_agent: true,
        ddg_challenge_later_pages: 0.15,
        ddg_block_secs: 3600,
        clock_scale: 60.0,
        ddg_redirect_to_challenge: 0.02,
        bing_require_browser: true,
        bing_repeat_last_page: true,
        compress_responses: true,
        commons_maxlag: 0.1,
        commons_file_concurrency: 2,
        commons_strict_thumb_widths: true,
    };
}

impl SearchConfig {
    /// The behaviours in force: the profile's defaults, overridden by the keys set.
    pub fn rules(&self) -> EngineRules {
        let d = match self.profile {
            Profile::Kind => EngineRules::KIND,
            Profile::Strict => EngineRules::STRICT,
        };
        EngineRules {
            ddg_require_browser_headers: self
                .ddg_require_browser_headers
                .unwrap_or(d.ddg_require_browser_headers),
            ddg_vqd_per_user_agent: self
                .ddg_vqd_per_user_agent
                .unwrap_or(d.ddg_vqd_per_user_agent),
            ddg_challenge_later_pages: self
                .ddg_challenge_later_pages
                .unwrap_or(d.ddg_challenge_later_pages),
            ddg_block_secs: self.ddg_block_secs.unwrap_or(d.ddg_block_secs),
            clock_scale: self.clock_scale.unwrap_or(d.clock_scale),
            ddg_redirect_to_challenge: self
                .ddg_redirect_to_challenge
                .unwrap_or(d.ddg_redirect_to_challenge),
            bing_require_browser: self.bing_require_browser.unwrap_or(d.bing_require_browser),
            bing_repeat_last_page: self
                .bing_repeat_last_page
                .unwrap_or(d.bing_repeat_last_page),
            compress_responses: self.compress_responses.unwrap_or(d.compress_responses),
            commons_maxlag: self.commons_maxlag.unwrap_or(d.commons_maxlag),
            commons_file_concurrency: self
                .commons_file_concurrency
                .unwrap_or(d.commons_file_concurrency),
            commons_strict_thumb_widths: self
                .commons_strict_thumb_widths
                .unwrap_or(d.commons_strict_thumb_widths),
        }
    }
}

impl Default for WorldConfig {
    fn default() -> Self {
        let rule = |phrases: &[&str], identity: &str| SubjectRule {
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
            identity: identity.to_string(),
        };
        Self {
            seed: 1940,
            results: ResultsConfig::default(),
            subjects: vec![
                rule(&["john lennon", "lennon"], "john"),
                rule(&["paul mccartney", "mccartney"], "paul"),
                rule(&["george harrison"], "george"),
                rule(&["ringo starr", "ringo"], "ringo"),
                rule(&["beatles"], "beatles"),
            ],
            people_words: [
                "person", "people", "man", "woman", "men", "women", "face", "faces", "portrait",
                "headshot", "selfie",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            stop_words: [
                "photo", "photos", "picture", "pictures", "image", "images", "pic", "hd", "a",
                "an", "the", "of",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            images: ImagesConfig::default(),
            noise: NoiseConfig::default(),
            timing: TimingConfig::default(),
            search: SearchConfig::default(),
        }
    }
}

impl WorldConfig {
    /// Reads a world file; keys it does not name keep their defaults.
    pub fn load(path: &Path) -> Result<Self> {
        let text = lennonnet_config::read_small_file(path, 16 << 20).map_err(|source| {
            MirrorError::ReadWorld {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| MirrorError::ParseWorld {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks rates are shares and the blocks of exclusive kinds sum to at most 1.
    pub fn validate(&self) -> Result<()> {
        let n = &self.noise;
        let bad = |m: String| Err(MirrorError::InvalidWorld(m));
        let all = [
            ("noise.john_in_others", n.john_in_others),
            ("noise.group_in_others", n.group_in_others),
            ("noise.john_in_people", n.john_in_people),
            ("noise.group_in_people", n.group_in_people),
            ("noise.other_in_john", n.other_in_john),
            ("noise.group_in_john", n.group_in_john),
            ("results.popular_share", self.results.popular_share),
            ("images.progressive", self.images.progressive),
            ("images.exif_orientation", self.images.exif_orientation),
            ("images.animated_gif", self.images.animated_gif),
            ("images.large_share", self.images.large_share),
            ("images.black_and_white", self.images.black_and_white),
            ("search.ddg_anomaly", self.search.ddg_anomaly),
            ("search.ddg_missing_vqd", self.search.ddg_missing_vqd),
            (
                "search.ddg_challenge_later_pages",
                self.search.rules().ddg_challenge_later_pages,
            ),
            (
                "search.ddg_redirect_to_challenge",
                self.search.rules().ddg_redirect_to_challenge,
            ),
            ("search.commons_maxlag", self.search.rules().commons_maxlag),
        ];
        for (name, v) in all {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} = {v} is not a share between 0 and 1"));
            }
        }
        for (name, sum) in [
            (
                "noise.reencoded + resized + cropped + watermarked + thumbnail",
                n.variant_rates().iter().map(|(_, r)| *r).sum::<f64>(),
            ),
            (
                "noise: the delivery kinds (not_found .. redirect_loop)",
                n.delivery_rates().iter().map(|(_, r)| *r).sum::<f64>(),
            ),
            (
                "noise.john_in_others + group_in_others",
                n.john_in_others + n.group_in_others,
            ),
            (
                "noise.john_in_people + group_in_people",
                n.john_in_people + n.group_in_people,
            ),
            (
                "noise.other_in_john + group_in_john",
                n.other_in_john + n.group_in_john,
            ),
        ] {
            if !(0.0..=1.0 + 1e-9).contains(&sum) {
                return bad(format!("{name} sum to {sum}; at most 1"));
            }
        }
        for (name, r) in n
            .variant_rates()
            .iter()
            .map(|(k, r)| (k.as_str(), *r))
            .chain(n.delivery_rates().iter().map(|(k, r)| (k.as_str(), *r)))
        {
            if !(0.0..=1.0).contains(&r) {
                return bad(format!("noise.{name} = {r} is not a share between 0 and 1"));
            }
        }
        let i = &self.images;
        if i.jpeg < 0.0 || i.png < 0.0 || i.webp < 0.0 || i.gif < 0.0 {
            return bad("image format shares cannot be negative".into());
        }
        if i.jpeg + i.png + i.webp + i.gif <= 0.0 {
            return bad("at least one image format needs a positive share".into());
        }
        if !(16 <= i.min_side_px
            && i.min_side_px <= i.typical_max_px
            && i.typical_max_px <= i.max_side_px)
            || i.max_side_px > 8000
        {
            return bad(format!(
                "image sizes need 16 <= min_side_px ({}) <= typical_max_px ({}) <= max_side_px ({}) <= 8000",
                i.min_side_px, i.typical_max_px, i.max_side_px
            ));
        }
        let r = &self.results;
        if r.min_results > r.max_results || r.commons_min_results > r.commons_max_results {
            return bad("results: min_results cannot exceed max_results".into());
        }
        if r.identity_pool == 0
            || r.people_pool == 0
            || r.word_pool == 0
            || r.pictures_per_person == 0
            || r.query_window == 0
        {
            return bad("results: pools and query_window must be positive".into());
        }
        if r.popular_size == 0 && r.popular_share > 0.0 {
            return bad("results.popular_size must be positive when popular_share is".into());
        }
        for rule in &self.subjects {
            if rule.phrases.iter().any(|p| p.trim().is_empty()) {
                return bad(format!("subject {:?} has an empty phrase", rule.identity));
            }
        }
        let clock = self.search.rules().clock_scale;
        if !(clock.is_finite() && clock > 0.0) {
            return bad(format!("search.clock_scale = {clock} must be positive"));
        }
        if self.timing.trickle_bytes == 0 {
            return bad("timing.trickle_bytes must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_world_file_overrides_only_what_it_names() {
        WorldConfig::default().validate().unwrap();
        let c: WorldConfig = toml::from_str("seed = 7\n[noise]\nnot_found = 0.5\n").unwrap();
        assert_eq!(c.seed, 7);
        assert_eq!(c.noise.not_found, 0.5);
        assert_eq!(c.noise.gone, NoiseConfig::default().gone);
        assert!(toml::from_str::<WorldConfig>("[noise]\nnot_a_key = 1\n").is_err());
    }

    #[test]
    fn rates_must_be_shares() {
        for text in [
            "[noise]\nnot_found = 1.5\n",
            "[noise]\nnot_found = 0.6\ngone = 0.6\n",
            "[noise]\nresized = -0.1\n",
            "[images]\nmin_side_px = 5000\n",
            "[search]\nprofile = \"strict\"\ncommons_maxlag = 2.0\n",
            "[search]\nclock_scale = 0.0\n",
        ] {
            let c: WorldConfig = toml::from_str(text).unwrap();
            assert!(c.validate().is_err(), "{text}");
        }
    }

    #[test]
    fn a_profile_gives_defaults_and_named_keys_win() {
        let kind = WorldConfig::default();
        assert_eq!(kind.search.rules(), EngineRules::KIND);
        let strict: WorldConfig =
            toml::from_str("[search]\nprofile = \"strict\"\nddg_block_secs = 10\n").unwrap();
        let rules = strict.search.rules();
        assert_eq!(rules.ddg_block_secs, 10);
        assert_eq!(
            EngineRules {
                ddg_block_secs: 3600,
                ..rules
            },
            EngineRules::STRICT
        );
        let changed: WorldConfig =
            toml::from_str("[search]\nchanged = [\"bing\", \"wikimedia_commons\"]\n").unwrap();
        assert_eq!(
            changed.search.changed,
            vec![EngineKind::Bing, EngineKind::WikimediaCommons]
        );
        assert!(toml::from_str::<WorldConfig>("[search]\nprofile = \"lax\"\n").is_err());
        // The kind profile's settings serialise as they always did.
        let json = serde_json::to_string(&kind).unwrap();
        assert!(
            !json.contains("profile") && !json.contains("changed"),
            "{json}"
        );
    }
}
