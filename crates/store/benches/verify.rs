//! `store verify` throughput: re-hashing every object in parallel.
//!
//! `cargo bench -p lennonnet-store --bench verify` (LENNONNET_BENCH_MB sets the size).
//! Measured from the page cache (the objects were just written: hashing and file handling
//! alone) and from the disk (this store's objects evicted from the cache first).

use std::time::Instant;

use lennonnet_core::{ContentId, NoProgress};
use lennonnet_store::{Rules, Store};

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
        println!(
            "verify, {threads} thread(s), {}: {count} objects, {:.0} MB in {s:.2} s: {:.0} MB/s",
            if cold {
                "read from the disk"
            } else {
                "from the page cache"
            },
            report.bytes as f64 / 1e6,
            report.bytes as f64 / 1e6 / s
        );
    }
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
