//! `store verify` throughput: re-hashing every object in parallel.
//!
//! `cargo bench -p lennonnet-store --bench verify` (LENNONNET_BENCH_MB sets the size).
//! Measured from the page cache (the objects were just written: hashing and file handling
//! alone) and from the disk (this store's objects evicted from the cache first). The headline
//! (a `BENCH` line for `make bench`) is verify from the page cache on 2 threads against the bare
//! work it cannot avoid, measured in the same run: reading and blake3-hashing the same files on
//! 2 threads.

use std::time::Instant;

use lennonnet_core::bench::BenchLine;
use lennonnet_core::{ContentId, NoProgress};
use lennonnet_store::{Rules, Store};
use rayon::prelude::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total_mb: usize = std::env::var("LENNONNET_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Rules::default()).unwrap();
    // Objects of 50 kB to 1.5 MB, like web images.
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut written = 0usize;
    let mut count = 0;
    while written < total_mb << 20 {
        let len = 50_000 + (next() % 1_450_000) as usize;
        let bytes: Vec<u8> = (0..len / 8).flat_map(|_| next().to_le_bytes()).collect();
        store
            .objects()
            .write(&ContentId::of(&bytes), &bytes)
            .unwrap();
        written += bytes.len();
        count += 1;
    }
    let mut headline = None;
    for (threads, cold) in [(1, false), (2, false), (2, true)] {
        if cold {
            evict(&store);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let t = Instant::now();
        let report = pool.install(|| store.verify(&NoProgress).unwrap());
        let s = t.elapsed().as_secs_f64();
        assert_eq!(report.objects, count);
        assert!(report.corrupt.is_empty() && report.missing.is_empty());
        let mb_per_s = report.bytes as f64 / 1e6 / s;
        if threads == 2 && !cold {
            headline = Some(mb_per_s);
        }
        println!(
            "verify, {threads} thread(s), {}: {count} objects, {:.0} MB in {s:.2} s: {:.0} MB/s",
            if cold {
                "read from the disk"
            } else {
                "from the page cache"
            },
            report.bytes as f64 / 1e6,
            mb_per_s
        );
    }
    // The baseline: read and hash every object file on 2 threads, nothing else (best of 3, from
    // the page cache after the cold pass above read them back in).
    let paths: Vec<std::path::PathBuf> = store
        .objects()
        .list()
        .unwrap()
        .into_iter()
        .filter_map(|f| match f {
            lennonnet_store::objects::Found::Object { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut bare = 0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let bytes: usize = pool.install(|| {
            paths
                .par_iter()
                .map(|p| {
                    let b = std::fs::read(p).unwrap();
                    std::hint::black_box(ContentId::of(&b));
                    b.len()
                })
                .sum()
        });
        bare = bare.max(bytes as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    println!("read + blake3 alone, 2 threads, from the page cache: {bare:.0} MB/s");
    let r = |x: f64| x.round();
    println!(
        "{}",
        BenchLine::new(
            "store",
            "store verify, 2 threads, from the page cache, MB/s",
            r(headline.expect("the 2-thread page-cache pass ran")),
            "read + blake3 of the same files alone, 2 threads, MB/s",
            Some(r(bare)),
        )
    );
}

/// Drops this store's object files (only them: posix_fadvise) from the page cache, so that
/// verify reads them from the disk.
fn evict(store: &Store) {
    use std::os::unix::io::AsRawFd;
    for f in store.objects().list().unwrap() {
        if let lennonnet_store::objects::Found::Object { path, .. } = f {
            let file = std::fs::File::open(&path).unwrap();
            file.sync_all().unwrap();
            // SAFETY: an advisory call on a descriptor we own.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}
