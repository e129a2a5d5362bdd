//! The running mirror's state: the world, the image cache, the search endpoints' rate limits and
//! the log of every image URL handed out (the ground truth served at `/_mirror/truth.jsonl`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lennonnet_core::{EngineKind, keyed_hash};

use crate::cache::{BytesCache, CacheStats};
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
    /// The port image URLs name.
    pub port: u16,
    cache: BytesCache,
    render_slots: tokio::sync::Semaphore,
    search: Mutex<SearchState>,
    emitted: Mutex<Emitted>,
    started: Instant,
}

impl Mirror {
    pub fn new(world: World, port: u16, options: &Options) -> Self {
        Self {
            world,
            port,
            cache: BytesCache::new(options.cache_bytes),
            render_slots: tokio::sync::Semaphore::new(options.render_threads.max(1)),
            search: Mutex::new(SearchState::default()),
            emitted: Mutex::new(Emitted::default()),
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
        let key = self.content_key(spec);
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
        let spec = spec.clone();
        let bytes = tokio::task::spawn_blocking(move || render_content(&this.world, &spec))
            .await
            .map_err(|e| MirrorError::Encode {
                what: "picture".into(),
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
