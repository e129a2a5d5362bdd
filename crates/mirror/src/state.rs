//! The running mirror's state: the world, the image cache, the search endpoints' rate limits and
//! the log of every image URL handed out (the ground truth served at `/_mirror/truth.jsonl`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lennonnet_core::{EngineKind, keyed_hash};

use crate::cache::{BytesCache, CacheStats};
use crate::config::EngineRules;
use crate::error::{MirrorError, Result};
use crate::spec::{Delivery, ImageSpec, Subject, VariantKind};
use crate::world::{ResultItem, Truth, World, u64_of};

/// How the mirror runs (not part of the world: it changes no byte of any response).
#[derive(Debug, Clone)]
pub struct Options {
    /// Memory for encoded images. Default 2 GiB (a founding-scale world takes about 1.3 GB).
    pub cache_bytes: usize,
    /// Pictures rendered at once. Default: the number of CPUs.
    pub render_threads: usize,
    /// Queries whose pictures are rendered into the cache in the background at start, so that
    /// a later scrape of them is served at cache speed. Empty by default.
    pub warm_queries: Vec<(EngineKind, String)>,
    /// How many results of each warm query.
    pub warm_per_query: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_bytes: 2 << 30,
            render_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            warm_queries: Vec::new(),
            warm_per_query: 200,
        }
    }
}

#[derive(Default)]
struct SearchState {
    recent: HashMap<EngineKind, VecDeque<Instant>>,
    attempts: HashMap<(EngineKind, String), u32>,
    /// DuckDuckGo's block in force: when it started and how many requests it refused so far.
    ddg_block: Option<(Instant, u64)>,
}

/// Whether a search request may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Over the burst limit: 429 with this Retry-After.
    TooMany(u64),
    /// Refused by DuckDuckGo's block; the number counts the block's refusals from 0.
    Blocked(u64),
}

/// A download slot on the Commons file host, given back when dropped.
pub struct FileSlot {
    slots: Arc<Mutex<HashMap<String, u32>>>,
    client: String,
}

impl Drop for FileSlot {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = slots.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                slots.remove(&self.client);
            }
        }
    }
}

#[derive(Default)]
struct Emitted {
    seen: HashSet<String>,
    truths: Vec<Truth>,
}

/// Counters for `/_mirror/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub seed: u64,
    pub cache: CacheStats,
    pub urls_handed_out: usize,
    pub uptime_secs: f64,
}

/// The mirror: a world plus what serving it needs.
pub struct Mirror {
    pub world: World,
    /// The real engines' behaviours in force (the world's profile and keys).
    pub rules: EngineRules,
    /// The port image URLs name.
    pub port: u16,
    cache: BytesCache,
    render_slots: tokio::sync::Semaphore,
    search: Mutex<SearchState>,
    emitted: Mutex<Emitted>,
    file_slots: Arc<Mutex<HashMap<String, u32>>>,
    started: Instant,
}

impl Mirror {
    pub fn new(world: World, port: u16, options: &Options) -> Self {
        Self {
            rules: world.config.search.rules(),
            world,
            port,
            cache: BytesCache::new(options.cache_bytes),
            render_slots: tokio::sync::Semaphore::new(options.render_threads.max(1)),
            search: Mutex::new(SearchState::default()),
            emitted: Mutex::new(Emitted::default()),
            file_slots: Arc::default(),
            started: Instant::now(),
        }
    }

    /// The key of what a spec's URL shows, whatever its delivery: URLs with equal keys serve
    /// equal bytes.
    pub fn content_key(&self, spec: &ImageSpec) -> [u8; 32] {
        let content = ImageSpec {
            delivery: Delivery::Ok,
            hops: 0,
            url_nonce: 0,
            ..spec.clone()
        };
        keyed_hash(
            "lennonnet mirror content key v1",
            self.world.key(),
            &[content.token(self.world.key()).as_bytes()],
        )
    }

    /// The encoded bytes of a spec's picture, from the cache or rendered on a blocking thread.
    pub async fn content(self: &Arc<Self>, spec: &ImageSpec) -> Result<Bytes> {
        let spec = spec.clone();
        self.cached(self.content_key(&spec), "picture", move |world| {
            render_content(world, &spec)
        })
        .await
    }

    /// The bytes of a Commons thumbnail `width` pixels wide of a spec's picture, from the cache
    /// or rendered on a blocking thread.
    pub async fn thumb(self: &Arc<Self>, spec: &ImageSpec, width: u32) -> Result<Bytes> {
        let key = keyed_hash(
            "lennonnet mirror commons thumb v1",
            self.world.key(),
            &[&self.content_key(spec), &width.to_le_bytes()],
        );
        let spec = spec.clone();
        self.cached(key, "thumbnail", move |world| {
            render_thumb(world, &spec, width)
        })
        .await
    }

    /// The bytes cached under `key`, or `render`ed on a blocking thread (at most
    /// `render_slots` at once) and cached. `what` names the rendering in errors.
    async fn cached(
        self: &Arc<Self>,
        key: [u8; 32],
        what: &str,
        render: impl FnOnce(&World) -> Result<Bytes> + Send + 'static,
    ) -> Result<Bytes> {
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let _permit = self
            .render_slots
            .acquire()
            .await
            .map_err(|_| MirrorError::InvalidWorld("renderer closed".into()))?;
        // Another request may have rendered it while this one waited.
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let this = Arc::clone(self);
        let bytes = tokio::task::spawn_blocking(move || render(&this.world))
            .await
            .map_err(|e| MirrorError::Encode {
                what: what.into(),
                message: e.to_string(),
            })??;
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }

    /// Renders the pictures of `queries` (first `per_query` results each) into the cache, a
    /// few at a time. Returns how many distinct pictures it rendered.
    pub async fn warm(self: &Arc<Self>, queries: &[(EngineKind, String)], per_query: u32) -> usize {
        let mut seen = HashSet::new();
        let mut specs = Vec::new();
        for (engine, q) in queries {
            let n = self.world.result_count(*engine, q).min(per_query);
            for rank in 0..n {
                let it = self.world.result(*engine, q, rank);
                if it.spec.delivery.yields_image() && seen.insert(self.content_key(&it.spec)) {
                    specs.push(it.spec);
                }
            }
        }
        let total = specs.len();
        let mut tasks = tokio::task::JoinSet::new();
        let lanes = self.render_slots.available_permits().max(1);
        for lane in 0..lanes {
            let this = Arc::clone(self);
            let mine: Vec<ImageSpec> = specs.iter().skip(lane).step_by(lanes).cloned().collect();
            tasks.spawn(async move {
                for spec in mine {
                    if let Err(e) = this.content(&spec).await {
                        tracing::warn!(error = %e, "cannot warm a picture");
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        total
    }

    /// Rate limit of a search endpoint: `Some(retry_after_secs)` when this request is over the
    /// burst limit (the request is then not counted).
    pub fn over_burst(&self, engine: EngineKind) -> Option<u64> {
        let s = &self.world.config.search;
        if s.burst_limit == 0 {
            return None;
        }
        let now = Instant::now();
        let window = Duration::from_millis(s.burst_window_ms);
        let mut st = self.search.lock().unwrap_or_else(|e| e.into_inner());
        let q = st.recent.entry(engine).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) > window) {
            q.pop_front();
        }
        if q.len() >= s.burst_limit as usize {
            return Some(s.retry_after_secs);
        }
        q.push_back(now);
        None
    }

    /// Rate limit and blocks of a search endpoint. Without blocks this is [`Self::over_burst`].
    /// With `ddg_block_secs`, a DuckDuckGo request over the burst limit starts a block of that
    /// many mirror-seconds (`clock_scale` of them a real second) from now, and every DuckDuckGo
    /// request until it ends is refused; requests during a block neither extend it nor count
    /// towards the next burst.
    pub fn gate(&self, engine: EngineKind) -> Gate {
        let r = &self.rules;
        if engine != EngineKind::DuckDuckGo || r.ddg_block_secs == 0 {
            return self.over_burst(engine).map_or(Gate::Open, Gate::TooMany);
        }
        let length = Duration::from_secs_f64(r.ddg_block_secs as f64 / r.clock_scale);
        {
            let mut st = self.search.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((start, refused)) = &mut st.ddg_block {
                if start.elapsed() < length {
                    let n = *refused;
                    *refused += 1;
                    return Gate::Blocked(n);
                }
                st.ddg_block = None;
            }
        }
        if self.over_burst(engine).is_none() {
            return Gate::Open;
        }
        let mut st = self.search.lock().unwrap_or_else(|e| e.into_inner());
        st.ddg_block = Some((Instant::now(), 1));
        st.recent.remove(&engine);
        tracing::info!(
            real_secs = length.as_secs_f64(),
            "DuckDuckGo blocks this client"
        );
        Gate::Blocked(0)
    }

    /// A download slot on the Commons file host for `client` (its User-Agent), or `None` when it
    /// has `commons_file_concurrency` downloads going already.
    pub fn file_slot(&self, client: &str) -> Option<FileSlot> {
        let limit = self.rules.commons_file_concurrency;
        let mut slots = self.file_slots.lock().unwrap_or_else(|e| e.into_inner());
        let n = slots.entry(client.to_string()).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(FileSlot {
            slots: Arc::clone(&self.file_slots),
            client: client.to_string(),
        })
    }

    /// The how-many-th time (0-based) this exact search request comes: the same request sequence
    /// gives the same answers, and a retry gets a fresh draw of the search noise.
    pub fn attempt(&self, engine: EngineKind, request: &str) -> u32 {
        let mut st = self.search.lock().unwrap_or_else(|e| e.into_inner());
        let n = st
            .attempts
            .entry((engine, request.to_string()))
            .or_insert(0);
        let a = *n;
        *n += 1;
        a
    }

    /// A seeded draw in `[0, 1)` for a search-noise decision.
    pub fn chance(&self, what: &str, request: &str, attempt: u32) -> f64 {
        let h = keyed_hash(
            "lennonnet mirror search noise v1",
            self.world.key(),
            &[what.as_bytes(), request.as_bytes(), &attempt.to_le_bytes()],
        );
        (u64_of(&h) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Records the image URLs of a search response for `/_mirror/truth.jsonl`.
    pub fn record(
        &self,
        engine: EngineKind,
        query: &str,
        start: u32,
        items: &[ResultItem],
        urls: &[String],
    ) {
        let mut e = self.emitted.lock().unwrap_or_else(|e| e.into_inner());
        for (i, (it, url)) in items.iter().zip(urls).enumerate() {
            if e.seen.insert(url.clone()) {
                let mut t = self.world.truth(&it.spec, url.clone());
                t.engine = Some(engine);
                t.query = Some(query.to_string());
                t.rank = Some(start + i as u32 + 1);
                e.truths.push(t);
            }
        }
    }

    /// Every image URL handed out so far, in order, with its truth.
    pub fn emitted(&self) -> Vec<Truth> {
        self.emitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .truths
            .clone()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            seed: self.world.seed(),
            cache: self.cache.stats(),
            urls_handed_out: self
                .emitted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .truths
                .len(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Renders and encodes a spec's picture (its delivery aside). A corpus original is its file's
/// bytes as they are.
pub fn render_content(world: &World, spec: &ImageSpec) -> Result<Bytes> {
    if let (Subject::Corpus(g), VariantKind::Original, Some(c)) =
        (&spec.original.subject, spec.variant.kind, &world.corpus)
    {
        let f = c.file(*g, spec.original.index);
        return std::fs::read(&f.path)
            .map(Bytes::from)
            .map_err(|source| MirrorError::Read {
                path: f.path.clone(),
                source,
            });
    }
    let look = world.look(spec);
    let pixels = crate::render::spec_pixels(world, spec)?;
    crate::encode::encode(pixels, &look).map(Bytes::from)
}

/// A Commons thumbnail of a spec's picture, `width` pixels wide (upright; JPEG for JPEG files,
/// PNG for the others), as Wikimedia's file host scales it.
pub fn render_thumb(world: &World, spec: &ImageSpec, width: u32) -> Result<Bytes> {
    use crate::spec::Format;
    let look = world.look(spec);
    let pixels = crate::render::spec_pixels(world, spec)?;
    let (w, h) = pixels.dimensions();
    let width = width.clamp(1, w.max(1));
    let height = crate::engines::thumb_height(w, h, width);
    let small = image::imageops::resize(
        &pixels,
        width,
        height,
        image::imageops::FilterType::Triangle,
    );
    let format = match look.format {
        Format::JpegBaseline | Format::JpegProgressive => Format::JpegBaseline,
        _ => Format::Png,
    };
    let thumb_look = crate::world::Look {
        width,
        height,
        format,
        orientation: 1,
        quality: 85,
        frames: 1,
    };
    crate::encode::encode(small, &thumb_look).map(Bytes::from)
}

/// The media type of [`render_thumb`]'s bytes for a spec.
pub fn thumb_mime(world: &World, spec: &ImageSpec) -> &'static str {
    use crate::spec::Format;
    match world.look(spec).format {
        Format::JpegBaseline | Format::JpegProgressive => "image/jpeg",
        _ => "image/png",
    }
}
