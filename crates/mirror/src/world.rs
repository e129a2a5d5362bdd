//! The synthetic world: which pictures a query finds, in which order, under which URLs, with
//! which noise. Everything here is a pure function of the world's key (from the seed), the world
//! file and the request: no state, no clock.

use lennonnet_core::{EngineKind, keyed_hash};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::WorldConfig;
use crate::corpus::Corpus;
use crate::spec::{Beatle, Delivery, Format, ImageSpec, Original, Subject, Variant, VariantKind};

/// How many image hosts there are: `img00.mirror.test` .. `img23.mirror.test`.
pub const IMAGE_HOSTS: u8 = 24;
/// The domain every virtual host of the mirror lives under.
pub const DOMAIN: &str = "mirror.test";

/// A seeded RNG for one decision, from a keyed blake3 hash of its context and parts.
pub fn rng_for(key: &[u8; 32], context: &str, parts: &[&[u8]]) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(keyed_hash(context, key, parts))
}

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySubject {
    Beatle(Beatle),
    /// Group pictures of the four.
    Beatles,
    People,
    Word(String),
    Corpus(u16),
}

/// The shape of what a URL serves: size as displayed (after EXIF orientation), file format,
/// orientation tag, JPEG quality and GIF frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Look {
    pub width: u32,
    pub height: u32,
    pub format: Format,
    pub orientation: u8,
    pub quality: u8,
    pub frames: u8,
}

/// One search result before it is written in an engine's wire format.
#[derive(Debug, Clone)]
pub struct ResultItem {
    pub spec: ImageSpec,
    pub host: u8,
    pub title: String,
    pub site: &'static str,
    pub slug: String,
    pub look: Look,
}

/// Ground truth of one image URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Truth {
    pub url: String,
    /// `beatle`, `person`, `word`, `group` or `corpus`.
    pub kind: &'static str,
    /// `john`, `person-000123`, the word, `group`, or the corpus sub-folder.
    pub name: String,
    /// Everyone in the picture (empty for word scenes).
    pub identities: Vec<String>,
    /// The original picture: every copy of it shares this id.
    pub original: String,
    pub variant: VariantKind,
    pub noise: &'static str,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub orientation: u8,
    /// Where `mirror generate` wrote the bytes, relative to its output folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The search that returned the URL, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
}

/// The world: settings, key and (in corpus mode) the real images.
pub struct World {
    pub config: WorldConfig,
    key: [u8; 32],
    pub corpus: Option<Corpus>,
}

const SITES: [&str; 32] = [
    "rockarchive",
    "beatbible",
    "musicdaily",
    "vintagephotos",
    "stockpix",
    "picturehub",
    "wallpaperz",
    "pinboard",
    "fanforum",
    "newsdaily",
    "historyhub",
    "celebnest",
    "photoblog",
    "imgshare",
    "retromag",
    "popculture",
    "gettyish",
    "alamode",
    "flickery",
    "tumblog",
    "wikiwand",
    "quotespics",
    "biography",
    "rollingrock",
    "nme-archive",
    "artprints",
    "postershop",
    "travelsnaps",
    "kitchenpro",
    "hobbyworld",
    "naturepics",
    "dailyfacts",
];

const HOST_PREFIXES: [&str; 8] = [
    "wp-content/uploads/2019/11",
    "images",
    "media/photos",
    "uploads",
    "i",
    "cdn/img",
    "files/large",
    "pics",
];

impl World {
    pub fn new(config: WorldConfig, corpus: Option<Corpus>) -> Self {
        let fingerprint = corpus.as_ref().map(|c| c.fingerprint).unwrap_or([0; 32]);
        let key = keyed_hash(
            "lennonnet mirror world v1",
            &config.seed.to_le_bytes(),
            &[&fingerprint],
        );
        Self {
            config,
            key,
            corpus,
        }
    }

    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// Lowercase, words separated by single spaces.
    pub fn normalize(query: &str) -> String {
        query
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What a query asks for: the first `[[subject]]` rule with a phrase in the query; else
    /// random people when a word of the query is a people word; else a word scene.
    pub fn resolve(&self, query: &str) -> QuerySubject {
        let q = Self::normalize(query);
        for rule in &self.config.subjects {
            if rule.phrases.iter().any(|p| q.contains(&Self::normalize(p))) {
                if let Some(c) = &self.corpus {
                    if let Some(g) = c.group_index(&rule.identity) {
                        return QuerySubject::Corpus(g);
                    }
                    continue;
                }
                if rule.identity == "beatles" {
                    return QuerySubject::Beatles;
                }
                if let Some(b) = Beatle::from_name(&rule.identity) {
                    return QuerySubject::Beatle(b);
                }
            }
        }
        let words: Vec<String> = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(c) = &self.corpus {
            // A corpus folder named in the query ("red_car" matches "red car photo"), else a
            // folder chosen by the query's hash.
            for (i, name) in c.group_names().iter().enumerate() {
                if q.contains(&name.replace(['_', '-'], " ")) {
                    return QuerySubject::Corpus(i as u16);
                }
            }
            let h = keyed_hash(
                "lennonnet mirror corpus query v1",
                &self.key,
                &[q.as_bytes()],
            );
            return QuerySubject::Corpus((u64_of(&h) % c.groups.len() as u64) as u16);
        }
        if words.iter().any(|w| self.config.people_words.contains(w)) {
            return QuerySubject::People;
        }
        let kept: Vec<&str> = words
            .iter()
            .filter(|w| !self.config.stop_words.contains(w))
            .map(String::as_str)
            .collect();
        let word = if kept.is_empty() {
            words.join(" ")
        } else {
            kept.join(" ")
        };
        QuerySubject::Word(word)
    }

    /// How many results a query has on an engine, over all its pages.
    pub fn result_count(&self, engine: EngineKind, query: &str) -> u32 {
        let q = Self::normalize(query);
        if q.is_empty() {
            return 0;
        }
        let r = &self.config.results;
        let (lo, hi) = match engine {
            EngineKind::WikimediaCommons => (r.commons_min_results, r.commons_max_results),
            _ => (r.min_results, r.max_results),
        };
        let mut rng = rng_for(
            &self.key,
            "lennonnet mirror result count v1",
            &[engine.as_str().as_bytes(), q.as_bytes()],
        );
        if hi <= lo {
            hi
        } else {
            rng.random_range(lo..=hi)
        }
    }

    /// The result at 0-based `rank` of `query` on `engine`. Callers keep `rank` below
    /// [`World::result_count`].
    pub fn result(&self, engine: EngineKind, query: &str, rank: u32) -> ResultItem {
        let q = Self::normalize(query);
        let qs = self.resolve(&q);
        let mut rng = rng_for(
            &self.key,
            "lennonnet mirror slot v1",
            &[
                engine.as_str().as_bytes(),
                q.as_bytes(),
                &rank.to_le_bytes(),
            ],
        );
        let n = &self.config.noise;
        let r = &self.config.results;
        let u: f64 = rng.random();
        let others = |rng: &mut ChaCha8Rng, not: Beatle| loop {
            let b = Beatle::ALL[rng.random_range(0..4)];
            if b != not {
                break b;
            }
        };
        let subject = match &qs {
            QuerySubject::Beatle(Beatle::John) => {
                if u < n.other_in_john {
                    Subject::Beatle(others(&mut rng, Beatle::John))
                } else if u < n.other_in_john + n.group_in_john {
                    let mut mask = Beatle::John.bit() | others(&mut rng, Beatle::John).bit();
                    if rng.random_bool(0.4) {
                        mask |= others(&mut rng, Beatle::John).bit();
                    }
                    Subject::Group {
                        beatles: mask,
                        people: 0,
                    }
                } else {
                    Subject::Beatle(Beatle::John)
                }
            }
            QuerySubject::Beatle(b) => {
                if u < n.john_in_others {
                    Subject::Beatle(Beatle::John)
                } else if u < n.john_in_others + n.group_in_others {
                    let mut mask = b.bit() | Beatle::John.bit();
                    if rng.random_bool(0.4) {
                        mask |= others(&mut rng, *b).bit();
                    }
                    Subject::Group {
                        beatles: mask,
                        people: 0,
                    }
                } else {
                    Subject::Beatle(*b)
                }
            }
            QuerySubject::Beatles => {
                let mut mask = 0b1111;
                if rng.random_bool(0.3) {
                    mask &= !Beatle::ALL[rng.random_range(0..4)].bit();
                }
                Subject::Group {
                    beatles: mask,
                    people: 0,
                }
            }
            QuerySubject::People => {
                if u < n.john_in_people {
                    Subject::Beatle(Beatle::John)
                } else if u < n.john_in_people + n.group_in_people {
                    Subject::Group {
                        beatles: Beatle::John.bit(),
                        people: rng.random_range(1..=3),
                    }
                } else {
                    Subject::Person
                }
            }
            QuerySubject::Word(w) => Subject::Word(w.clone()),
            QuerySubject::Corpus(g) => {
                // In corpus mode the intruder is the first rule's folder (John's, by default).
                let intruder = self.corpus.as_ref().and_then(|c| {
                    self.config
                        .subjects
                        .iter()
                        .find_map(|rule| c.group_index(&rule.identity))
                });
                match intruder {
                    Some(i) if i != *g && u < n.john_in_others + n.group_in_others => {
                        Subject::Corpus(i)
                    }
                    _ => Subject::Corpus(*g),
                }
            }
        };
        let pool = self.pool_size(&subject);
        let query_offset = u64_of(&keyed_hash(
            "lennonnet mirror query window v1",
            &self.key,
            &[q.as_bytes()],
        ));
        let index = if rng.random_bool(r.popular_share) {
            let x: f64 = rng.random();
            ((x * x * r.popular_size as f64) as u32).min(pool - 1)
        } else {
            let window = r.query_window.min(pool).max(1);
            ((query_offset + rng.random_range(0..window) as u64) % pool as u64) as u32
        };
        let original = Original { subject, index };

        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut kind = VariantKind::Original;
        for (k, rate) in n.variant_rates() {
            acc += rate;
            if u < acc {
                kind = k;
                break;
            }
        }
        let variant = match kind {
            VariantKind::Original => Variant::ORIGINAL,
            kind => Variant {
                kind,
                nonce: rng.random::<u32>() | 1,
            },
        };
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let mut delivery = Delivery::Ok;
        for (d, rate) in n.delivery_rates() {
            acc += rate;
            if u < acc {
                delivery = d;
                break;
            }
        }
        let hops = match delivery {
            Delivery::RedirectChain => {
                rng.random_range(1..=self.config.timing.max_redirects.clamp(1, 200)) as u8
            }
            _ => 0,
        };
        let spec = ImageSpec {
            original,
            variant,
            delivery,
            hops,
            url_nonce: rng.random(),
        };
        let x: f64 = rng.random();
        let host = ((x.powf(1.6) * IMAGE_HOSTS as f64) as u8).min(IMAGE_HOSTS - 1);
        let site = SITES[rng.random_range(0..SITES.len())];
        let title = self.title(&qs, &spec.original, engine, &mut rng, site);
        let slug = slugify(&title);
        let look = self.look(&spec);
        ResultItem {
            spec,
            host,
            title,
            site,
            slug,
            look,
        }
    }

    fn pool_size(&self, subject: &Subject) -> u32 {
        let r = &self.config.results;
        match subject {
            Subject::Beatle(_) | Subject::Group { .. } => r.identity_pool,
            Subject::Person => r.people_pool.saturating_mul(r.pictures_per_person),
            Subject::Word(_) => r.word_pool,
            Subject::Corpus(g) => self
                .corpus
                .as_ref()
                .map(|c| c.groups[*g as usize].files.len() as u32)
                .unwrap_or(1)
                .max(1),
        }
    }

    fn title(
        &self,
        qs: &QuerySubject,
        original: &Original,
        engine: EngineKind,
        rng: &mut ChaCha8Rng,
        site: &str,
    ) -> String {
        let year = 1958 + (self.era(original) * 22.0) as u32;
        let site_name = title_case(site);
        let pick = |rng: &mut ChaCha8Rng, t: &[&str]| t[rng.random_range(0..t.len())].to_string();
        let (name, templates): (String, &[&str]) = match qs {
            QuerySubject::Beatle(b) => (
                b.full_name().to_string(),
                &[
                    "{name} in {year} | {site}",
                    "{name} ({year}) — rare photo",
                    "{name} portrait, {year}",
                    "{name} - Wikipedia",
                    "Photo… {name} backstage, {year}",
                    "{name}: Biography, Songs & Facts | {site}",
                    "{name} HD wallpaper",
                    "The life of {name} in pictures",
                ],
            ),
            QuerySubject::Beatles => (
                "The Beatles".to_string(),
                &[
                    "{name} in {year} | {site}",
                    "{name} arrive in New York, {year}",
                    "{name} — band photo",
                    "{name} on stage ({year})",
                ],
            ),
            QuerySubject::People => (
                pick(rng, &["man", "woman", "person", "young man", "older woman"]),
                &[
                    "Portrait of a {name} — stock photo",
                    "Close-up face of a {name} | {site}",
                    "Smiling {name} headshot",
                    "{name} portrait in natural light",
                    "Candid photo of a {name}",
                ],
            ),
            QuerySubject::Word(w) => (
                w.clone(),
                &[
                    "{Name} - free stock photo | {site}",
                    "Beautiful {name} pictures",
                    "{Name} HD wallpaper",
                    "How to choose a {name} — {site}",
                    "{Name} (café edition)",
                    "{Name} images & photos",
                ],
            ),
            QuerySubject::Corpus(g) => (
                self.corpus
                    .as_ref()
                    .map(|c| c.groups[*g as usize].name.replace('_', " "))
                    .unwrap_or_default(),
                &["{name} | {site}", "{Name} photo", "{Name} — picture"],
            ),
        };
        let t = pick(rng, templates);
        let mut title = t
            .replace("{name}", &name)
            .replace("{Name}", &title_case(&name))
            .replace("{year}", &year.to_string())
            .replace("{site}", &site_name);
        if engine == EngineKind::WikimediaCommons {
            title = title.replace(['|', ':', '—', '…'], "-");
        }
        title
    }

    /// An age-like parameter of an original in `[0, 1)`: 0 is 1958, 1 is 1980.
    pub fn era(&self, original: &Original) -> f32 {
        let mut rng = self.original_rng(original, "era");
        rng.random::<f32>()
    }

    /// A seeded RNG for one aspect of an original.
    pub fn original_rng(&self, original: &Original, aspect: &str) -> ChaCha8Rng {
        rng_for(
            &self.key,
            "lennonnet mirror original v1",
            &[aspect.as_bytes(), original_id(original, self).as_bytes()],
        )
    }

    /// The look of the original picture itself.
    pub fn original_look(&self, original: &Original) -> Look {
        if let (Subject::Corpus(g), Some(c)) = (&original.subject, &self.corpus) {
            let f = c.file(*g, original.index);
            return Look {
                width: f.width,
                height: f.height,
                format: f.format,
                orientation: 1,
                quality: 90,
                frames: 1,
            };
        }
        let im = &self.config.images;
        let mut rng = self.original_rng(original, "look");
        let total = im.jpeg + im.png + im.webp + im.gif;
        let u = rng.random::<f64>() * total;
        let jpeg_progressive = rng.random_bool(im.progressive);
        let format = if u < im.jpeg {
            if jpeg_progressive {
                Format::JpegProgressive
            } else {
                Format::JpegBaseline
            }
        } else if u < im.jpeg + im.png {
            Format::Png
        } else if u < im.jpeg + im.png + im.webp {
            Format::Webp
        } else {
            Format::Gif
        };
        let long = if rng.random_bool(im.large_share) {
            rng.random_range(im.typical_max_px..=im.max_side_px)
        } else {
            // Log-uniform: more small pictures than large ones, as on the web.
            let (lo, hi) = (im.min_side_px as f64, im.typical_max_px as f64);
            (lo * (hi / lo).powf(rng.random::<f64>())).round() as u32
        };
        let long = if format == Format::Gif {
            long.min(700)
        } else {
            long
        };
        let ratios: &[(u32, u32)] = match original.subject {
            Subject::Word(_) | Subject::Group { .. } => &[(4, 3), (3, 2), (16, 9), (1, 1), (5, 4)],
            _ => &[(3, 4), (4, 5), (1, 1), (2, 3), (4, 3), (3, 2)],
        };
        let (a, b) = ratios[rng.random_range(0..ratios.len())];
        let (width, height) = if a >= b {
            (long, (long * b / a).max(16))
        } else {
            ((long * a / b).max(16), long)
        };
        let orientation = if matches!(format, Format::JpegBaseline | Format::JpegProgressive)
            && rng.random_bool(im.exif_orientation)
        {
            [6, 6, 8, 3, 2][rng.random_range(0..5)]
        } else {
            1
        };
        let frames = if format == Format::Gif && rng.random_bool(im.animated_gif) {
            rng.random_range(2..=3)
        } else {
            1
        };
        Look {
            width,
            height,
            format,
            orientation,
            quality: rng.random_range(72..=95),
            frames,
        }
    }

    /// What a URL serves: its original's look, changed by its variant.
    pub fn look(&self, spec: &ImageSpec) -> Look {
        let base = self.original_look(&spec.original);
        let p = self.variant_params(spec);
        let Some((w, h)) = p.size else {
            return Look {
                format: p.format.unwrap_or(base.format),
                ..base
            };
        };
        Look {
            width: w,
            height: h,
            format: p.format.unwrap_or(base.format),
            orientation: 1,
            quality: p.quality,
            frames: 1,
        }
    }

    /// The parameters of a copy, from the original's look and the variant's nonce.
    pub fn variant_params(&self, spec: &ImageSpec) -> VariantParams {
        let base = self.original_look(&spec.original);
        let v = spec.variant;
        let mut rng = rng_for(
            &self.key,
            "lennonnet mirror variant v1",
            &[
                original_id(&spec.original, self).as_bytes(),
                &v.nonce.to_le_bytes(),
                v.kind.as_str().as_bytes(),
            ],
        );
        let (w, h) = (base.width, base.height);
        let quality = rng.random_range(45..=85);
        let jpeg = if rng.random_bool(0.3) {
            Format::JpegProgressive
        } else {
            Format::JpegBaseline
        };
        let mut p = VariantParams {
            size: None,
            crop: None,
            format: None,
            quality,
            watermark: None,
        };
        match v.kind {
            VariantKind::Original => {}
            VariantKind::Reencoded => {
                p.format =
                    Some([jpeg, jpeg, jpeg, Format::Png, Format::Webp][rng.random_range(0..5)]);
                p.size = Some((w, h));
            }
            VariantKind::Resized => {
                let s = rng.random_range(0.3..0.8);
                p.size = Some(scaled(w, h, s));
                p.format = Some(jpeg);
            }
            VariantKind::Cropped => {
                let fw = rng.random_range(0.55..0.9);
                let fh = rng.random_range(0.55..0.9);
                let x0 = rng.random_range(0.0..(1.0 - fw));
                let y0 = rng.random_range(0.0..(1.0 - fh));
                p.crop = Some([x0, y0, fw, fh]);
                let cw = ((w as f64 * fw).round() as u32).max(16);
                let ch = ((h as f64 * fh).round() as u32).max(16);
                p.size = Some((cw, ch));
                p.format = Some(jpeg);
            }
            VariantKind::Watermarked => {
                p.size = Some((w, h));
                p.format = Some(jpeg);
                p.watermark = Some(rng.random_range(0..WATERMARKS.len()));
            }
            VariantKind::Thumbnail => {
                let long = rng.random_range(100..=250).min(w.max(h));
                p.size = Some(scaled(w, h, long as f64 / w.max(h) as f64));
                p.format = Some(Format::JpegBaseline);
                p.quality = rng.random_range(55..=80);
            }
        }
        p
    }

    /// The ground truth of an image URL's spec.
    pub fn truth(&self, spec: &ImageSpec, url: String) -> Truth {
        let look = self.look(spec);
        let (kind, name, identities) = match &spec.original.subject {
            Subject::Beatle(b) => (
                "beatle",
                b.as_str().to_string(),
                vec![b.as_str().to_string()],
            ),
            Subject::Person => {
                let p = self.person_of(spec.original.index);
                ("person", person_name(p), vec![person_name(p)])
            }
            Subject::Word(w) => ("word", w.clone(), vec![]),
            Subject::Group { beatles, people } => {
                let mut ids: Vec<String> = Beatle::ALL
                    .iter()
                    .filter(|b| beatles & b.bit() != 0)
                    .map(|b| b.as_str().to_string())
                    .collect();
                ids.extend(
                    self.group_people(&spec.original, *people)
                        .into_iter()
                        .map(person_name),
                );
                ("group", "group".to_string(), ids)
            }
            Subject::Corpus(g) => {
                let name = self
                    .corpus
                    .as_ref()
                    .map(|c| c.groups[*g as usize].name.clone())
                    .unwrap_or_default();
                ("corpus", name.clone(), vec![name])
            }
        };
        Truth {
            url,
            kind,
            name,
            identities,
            original: original_id(&spec.original, self),
            variant: spec.variant.kind,
            noise: spec.delivery.as_str(),
            format: look.format,
            width: look.width,
            height: look.height,
            orientation: look.orientation,
            file: None,
            engine: None,
            query: None,
            rank: None,
        }
    }

    /// The random person an original of [`Subject::Person`] shows.
    pub fn person_of(&self, index: u32) -> u32 {
        index / self.config.results.pictures_per_person.max(1)
    }

    /// The random people in a group picture.
    pub fn group_people(&self, original: &Original, people: u8) -> Vec<u32> {
        let mut rng = self.original_rng(original, "group people");
        (0..people)
            .map(|_| rng.random_range(0..self.config.results.people_pool))
            .collect()
    }

    // ---- URLs ----

    /// The host name of image host `i`.
    pub fn image_host(i: u8) -> String {
        format!("img{i:02}.{DOMAIN}")
    }

    /// The absolute URL of a result's image, on `port`.
    pub fn image_url(&self, item: &ResultItem, port: u16) -> String {
        self.spec_url(&item.spec, item.host, &item.slug, port)
    }

    /// The URL of a spec on image host `host`.
    pub fn spec_url(&self, spec: &ImageSpec, host: u8, slug: &str, port: u16) -> String {
        let ext = self.look(spec).format.ext();
        let prefix = HOST_PREFIXES[host as usize % HOST_PREFIXES.len()];
        format!(
            "http://{}:{port}/{prefix}/{}/{slug}.{ext}",
            Self::image_host(host),
            spec.token(&self.key)
        )
    }

    /// The URL of a Wikimedia Commons file (host `upload.mirror.test`).
    pub fn commons_url(&self, spec: &ImageSpec, file_name: &str, port: u16) -> String {
        let h = blake3::hash(file_name.as_bytes()).to_hex();
        format!(
            "http://upload.{DOMAIN}:{port}/wikipedia/commons/{}/{}/{}/{}",
            &h[..1],
            &h[..2],
            spec.token(&self.key),
            percent_path(file_name)
        )
    }

    /// The URL of a Wikimedia Commons thumbnail `width` pixels wide:
    /// `/wikipedia/commons/thumb/<h>/<hh>/<token>/<File_name>/<W>px-<File_name>`.
    pub fn commons_thumb_url(
        &self,
        spec: &ImageSpec,
        file_name: &str,
        port: u16,
        width: u32,
    ) -> String {
        let h = blake3::hash(file_name.as_bytes()).to_hex();
        let name = percent_path(file_name);
        format!(
            "http://upload.{DOMAIN}:{port}/wikipedia/commons/thumb/{}/{}/{}/{name}/{width}px-{name}",
            &h[..1],
            &h[..2],
            spec.token(&self.key),
        )
    }

    /// A thumbnail URL as the engines give them (`tse1.mirror.test/th?id=OIP.<token>&pid=Api`).
    pub fn thumbnail_url(&self, item: &ResultItem, port: u16) -> String {
        let spec = self.thumbnail_spec(&item.spec);
        let n = 1 + (spec.variant.nonce % 4);
        format!(
            "http://tse{n}.{DOMAIN}:{port}/th?id=OIP.{}&pid=Api",
            spec.token(&self.key)
        )
    }

    /// The spec of an engine's thumbnail of a result: a thumbnail copy that always answers.
    pub fn thumbnail_spec(&self, spec: &ImageSpec) -> ImageSpec {
        ImageSpec {
            original: spec.original.clone(),
            variant: Variant {
                kind: VariantKind::Thumbnail,
                nonce: spec.url_nonce | 1,
            },
            delivery: Delivery::Ok,
            hops: 0,
            url_nonce: spec.url_nonce,
        }
    }

    /// The page a result was found on.
    pub fn page_url(&self, item: &ResultItem, port: u16) -> String {
        format!(
            "http://www.{}.{DOMAIN}:{port}/{}-{}.html",
            item.site,
            item.slug,
            item.spec.url_nonce % 100_000
        )
    }

    /// Where a redirecting URL points: the next link of a chain (one hop less, on another
    /// host), or the next step of a loop.
    pub fn redirect_target(&self, spec: &ImageSpec, host: u8, port: u16) -> String {
        let mut next = spec.clone();
        match spec.delivery {
            Delivery::RedirectChain => {
                next.hops = spec.hops.saturating_sub(1);
            }
            _ => next.hops = (spec.hops + 1) % 3,
        }
        let next_host = (host as u32 + 1 + (spec.url_nonce % 7)) % IMAGE_HOSTS as u32;
        self.spec_url(&next, next_host as u8, &format!("r{}", next.hops), port)
    }
}

/// The parameters of a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantParams {
    /// Size of the copy (before orientation), when it differs from the original's or is re-encoded.
    pub size: Option<(u32, u32)>,
    /// Crop box: x, y, width, height as shares of the original.
    pub crop: Option<[f64; 4]>,
    pub format: Option<Format>,
    pub quality: u8,
    /// Index into [`WATERMARKS`].
    pub watermark: Option<usize>,
}

/// Watermark texts of copies.
pub const WATERMARKS: [&str; 5] = [
    "STOCKPIX",
    "(C) GETTYISH IMAGES",
    "ALAMODE",
    "PREVIEW ONLY",
    "wallpaperz.mirror.test",
];

fn scaled(w: u32, h: u32, s: f64) -> (u32, u32) {
    (
        ((w as f64 * s).round() as u32).max(16),
        ((h as f64 * s).round() as u32).max(16),
    )
}

/// The stable id of an original picture, as truth reports it.
pub fn original_id(o: &Original, world: &World) -> String {
    match &o.subject {
        Subject::Beatle(b) => format!("{}-{:05}", b.as_str(), o.index),
        Subject::Person => format!(
            "{}-{}",
            person_name(world.person_of(o.index)),
            o.index % world.config.results.pictures_per_person.max(1)
        ),
        Subject::Word(w) => format!("word-{}-{:05}", w.replace(' ', "_"), o.index),
        Subject::Group { beatles, people } => {
            let mut s = String::from("group-");
            for b in Beatle::ALL {
                if beatles & b.bit() != 0 {
                    s.push(b.as_str().chars().next().unwrap());
                }
            }
            if *people > 0 {
                s += &format!("+{people}");
            }
            format!("{s}-{:05}", o.index)
        }
        Subject::Corpus(g) => match &world.corpus {
            Some(c) => format!(
                "corpus-{}-{}",
                c.groups[*g as usize].name,
                c.file(*g, o.index).name
            ),
            None => format!("corpus-{g}-{}", o.index),
        },
    }
}

fn person_name(p: u32) -> String {
    format!("person-{p:06}")
}

pub(crate) fn u64_of(h: &[u8; 32]) -> u64 {
    u64::from_le_bytes(h[..8].try_into().unwrap())
}

fn title_case(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A URL slug: lowercase ASCII letters and digits joined by '-'.
pub fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out = &out[..out.len().min(60)];
    if out.is_empty() {
        "image".to_string()
    } else {
        out.trim_end_matches('-').to_string()
    }
}

/// Percent-encodes everything but unreserved characters (like JavaScript's encodeURIComponent,
/// except that it also encodes `!'()*`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out += &format!("%{b:02X}");
        }
    }
    out
}

fn percent_path(s: &str) -> String {
    percent_encode(&s.replace(' ', "_")).replace("%2F", "/")
}
