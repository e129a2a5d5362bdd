//! A bounded cache of encoded images: sharded LRU maps from a content key to the bytes, with a
//! byte budget split over the shards. Rendering is lazy; the cache keeps what was asked lately.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use lru::LruCache;

const SHARDS: usize = 16;

struct Shard {
    map: LruCache<[u8; 32], Bytes>,
    bytes: usize,
}

/// The cache. `get` and `insert` lock one shard for a few hundred nanoseconds.
pub struct BytesCache {
    shards: Vec<Mutex<Shard>>,
    budget_per_shard: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters for `/_mirror/stats`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: usize,
    pub budget_bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl BytesCache {
    /// A cache of at most `budget_bytes` (0 keeps nothing).
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: LruCache::unbounded(),
                        bytes: 0,
                    })
                })
                .collect(),
            budget_per_shard: budget_bytes / SHARDS,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<Shard> {
        &self.shards[key[0] as usize % SHARDS]
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<Bytes> {
        let found = self
            .shard(key)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned();
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Keeps `value` unless it alone is over an eighth of a shard's budget; evicts the least
    /// recently used entries to stay within budget.
    pub fn insert(&self, key: [u8; 32], value: Bytes) {
        if value.len() > self.budget_per_shard / 8 {
            return;
        }
        let mut s = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        let len = value.len();
        if let Some(old) = s.map.put(key, value) {
            s.bytes -= old.len();
        }
        s.bytes += len;
        while s.bytes > self.budget_per_shard {
            match s.map.pop_lru() {
                Some((_, v)) => s.bytes -= v.len(),
                None => break,
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut bytes) = (0, 0);
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            entries += s.map.len();
            bytes += s.bytes;
        }
        CacheStats {
            entries,
            bytes,
            budget_bytes: self.budget_per_shard * SHARDS,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_budget_and_keeps_recent_entries() {
        let c = BytesCache::new(16 * 1000);
        for i in 0..200u8 {
            let mut k = [0u8; 32];
            k[0] = 0; // all in one shard
            k[1] = i;
            c.insert(k, Bytes::from(vec![i; 100]));
        }
        let s = c.stats();
        assert!(s.bytes <= 1000, "{s:?}");
        let mut recent = [0u8; 32];
        recent[1] = 199;
        assert!(c.get(&recent).is_some());
        let mut old = [0u8; 32];
        old[1] = 0;
        assert!(c.get(&old).is_none());
    }
}
