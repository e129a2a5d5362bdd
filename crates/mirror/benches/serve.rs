//! Serving speed of the mirror on loopback, at founding scale.
//!
//! `cargo bench -p lennonnet-mirror --bench serve` (set `MIRROR_BENCH_IMAGES` for another
//! count, `MIRROR_BENCH_CONNECTIONS` for another concurrency). Takes the first results of a
//! founding-like set of queries (John, the other Beatles, people and 100 words) until it has
//! the wanted number of image URLs (default 16,000: 13,000 training + 3,000 evaluation images),
//! then times, over the same server and the same client:
//!
//! 1. baseline: a fixed in-memory buffer of the same mean size (`/_mirror/static`), the most
//!    the server and client can do;
//! 2. cold: every URL once, rendered on demand;
//! 3. warm: every URL again, from the cache.
//!
//! Prints images/s of each and the ratios to the baseline.

#[path = "../tests/util/client.rs"]
mod client;

use std::time::Instant;

use lennonnet_core::EngineKind;
use lennonnet_mirror::config::{NoiseConfig, WorldConfig};
use lennonnet_mirror::{Options, World, start};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn queries() -> Vec<String> {
    let mut q: Vec<String> = [
        "John Lennon",
        "John Lennon portrait",
        "John Lennon 1960s",
        "John Lennon 1970s",
        "John Lennon glasses",
        "John Lennon live",
        "young John Lennon",
        "John Lennon photo",
        "John Lennon close up",
        "John Lennon black and white",
        "Paul McCartney",
        "George Harrison",
        "Ringo Starr",
        "person",
        "person portrait",
        "man portrait",
        "woman portrait",
        "face photo",
        "Paul McCartney portrait",
        "George Harrison portrait",
        "Ringo Starr portrait",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let words = [
        "anchor",
        "apple",
        "bakery",
        "balloon",
        "banjo",
        "barn",
        "basket",
        "beach",
        "bicycle",
        "blanket",
        "boat",
        "bottle",
        "bridge",
        "bucket",
        "cabin",
        "cactus",
        "camera",
        "candle",
        "canoe",
        "carpet",
        "castle",
        "cathedral",
        "chair",
        "cherry",
        "clock",
        "cloud",
        "compass",
        "cookie",
        "crown",
        "cupcake",
        "desert",
        "diamond",
        "dolphin",
        "drum",
        "eagle",
        "engine",
        "feather",
        "fence",
        "fern",
        "flag",
        "forest",
        "fountain",
        "garden",
        "glacier",
        "guitar",
        "hammer",
        "harbor",
        "helmet",
        "honey",
        "island",
        "jacket",
        "jungle",
        "kettle",
        "kite",
        "ladder",
        "lantern",
        "lemon",
        "lighthouse",
        "lizard",
        "mango",
        "meadow",
        "mirror",
        "mountain",
        "mushroom",
        "necklace",
        "needle",
        "orchard",
        "owl",
        "paddle",
        "palace",
        "parrot",
        "pebble",
        "pepper",
        "piano",
        "pillow",
        "pumpkin",
        "quilt",
        "rabbit",
        "river",
        "rocket",
        "saddle",
        "sailboat",
        "scarf",
        "shell",
        "sofa",
        "spoon",
        "stadium",
        "statue",
        "teapot",
        "tiger",
        "tractor",
        "trumpet",
        "tulip",
        "umbrella",
        "vase",
        "violin",
        "volcano",
        "wagon",
        "whale",
        "windmill",
    ];
    q.extend(words.iter().map(|w| w.to_string()));
    q
}

async fn fetch_all(
    addr: std::net::SocketAddr,
    targets: &[(String, String)],
    connections: usize,
) -> (f64, u64) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per = targets.len().div_ceil(connections);
    for chunk in targets.chunks(per.max(1)) {
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            let mut conn = client::Conn::open(addr).await;
            let mut bytes = 0u64;
            for (host, path) in chunk {
                let r = conn.get(&host, &path, &[]).await;
                assert_eq!(r.status, 200, "{host}{path}");
                bytes += r.body.len() as u64;
            }
            bytes
        });
    }
    let mut bytes = 0;
    while let Some(b) = tasks.join_next().await {
        bytes += b.expect("client task");
    }
    (start.elapsed().as_secs_f64(), bytes)
}

fn main() {
    let n = env_or("MIRROR_BENCH_IMAGES", 16_000);
    let connections = env_or("MIRROR_BENCH_CONNECTIONS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut config = WorldConfig {
            noise: NoiseConfig::none(),
            ..WorldConfig::default()
        };
        config.search.burst_limit = 0;
        let world = World::new(config, None);
        let options = Options {
            cache_bytes: 4 << 30,
            ..Options::default()
        };
        let m = start(world, "127.0.0.1:0".parse().unwrap(), &options)
            .await
            .expect("server");
        let w = &m.mirror.world;
        let qs = queries();
        let per_query = n.div_ceil(qs.len()) as u32;
        let mut targets = Vec::with_capacity(n);
        'outer: for rank in 0..per_query * 4 {
            for q in &qs {
                if rank >= w.result_count(EngineKind::DuckDuckGo, q) {
                    continue;
                }
                let it = w.result(EngineKind::DuckDuckGo, q, rank);
                targets.push(client::split_url(&w.image_url(&it, m.addr.port())));
                if targets.len() >= n {
                    break 'outer;
                }
            }
        }
        let n = targets.len();
        println!("mirror serving benchmark: {n} image URLs, {connections} keep-alive connections, loopback");

        let (cold_s, bytes) = fetch_all(m.addr, &targets, connections).await;
        let mean = (bytes / n as u64).max(1);
        let (warm_s, _) = fetch_all(m.addr, &targets, connections).await;
        let static_targets: Vec<(String, String)> = (0..n)
            .map(|_| ("127.0.0.1".to_string(), format!("/_mirror/static?bytes={mean}")))
            .collect();
        let (base_s, _) = fetch_all(m.addr, &static_targets, connections).await;

        let rate = |s: f64| n as f64 / s;
        let (base, cold, warm) = (rate(base_s), rate(cold_s), rate(warm_s));
        println!("mean image size: {:.1} KB, total {:.1} MB", mean as f64 / 1e3, bytes as f64 / 1e6);
        println!("baseline (static {mean}-byte buffer): {base:>9.0} images/s");
        println!("cold (render + encode + serve):       {cold:>9.0} images/s  ({:.3} x baseline)", cold / base);
        println!("warm (from the cache):                {warm:>9.0} images/s  ({:.3} x baseline)", warm / base);
        let stats = m.mirror.stats();
        println!(
            "cache: {} entries, {:.1} MB, {} hits, {} misses",
            stats.cache.entries,
            stats.cache.bytes as f64 / 1e6,
            stats.cache.hits,
            stats.cache.misses
        );
        use lennonnet_core::bench::BenchLine;
        let baseline = format!("a static {mean}-byte buffer served the same way, images/s");
        for (figure, value) in [
            ("cold: render + encode + serve, images/s", cold),
            ("warm: served from the cache, images/s", warm),
        ] {
            println!("{}", BenchLine::new("mirror", figure, value, &baseline, Some(base)));
        }
        m.shutdown().await;
    });
}
