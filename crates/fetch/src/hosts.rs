//! Per-host limits: at most `per_host` requests in flight to one host, and new requests to one
//! host spaced at least `interval` apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

struct Host {
    slots: Arc<Semaphore>,
    /// When the next request to this host may start.
    next_start: tokio::sync::Mutex<Instant>,
}

pub(crate) struct Hosts {
    per_host: usize,
    /// Host names (without port) with their own limit (`[fetch] host_concurrency`).
    overrides: HashMap<String, usize>,
    interval: Duration,
    map: Mutex<HashMap<String, Arc<Host>>>,
}

impl Hosts {
    pub(crate) fn new(
        per_host: usize,
        requests_per_sec: f64,
        overrides: impl IntoIterator<Item = (String, usize)>,
    ) -> Self {
        let interval = if requests_per_sec.is_finite() && requests_per_sec > 0.0 {
            Duration::from_secs_f64(1.0 / requests_per_sec)
        } else {
            Duration::ZERO
        };
        Self {
            per_host: per_host.max(1),
            overrides: overrides
                .into_iter()
                .map(|(h, n)| (h.to_ascii_lowercase(), n.max(1)))
                .collect(),
            interval,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The in-flight limit of `host` (`name:port`).
    fn limit(&self, host: &str) -> usize {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        self.overrides
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.per_host)
    }

    /// Waits for a slot on `host` (`name:port`) and for its pacing; the slot is held until the
    /// permit is dropped.
    pub(crate) async fn acquire(&self, host: &str) -> OwnedSemaphorePermit {
        let entry = {
            let mut map = self.map.lock().expect("hosts map poisoned");
            map.entry(host.to_string())
                .or_insert_with(|| {
                    Arc::new(Host {
                        slots: Arc::new(Semaphore::new(self.limit(host))),
                        next_start: tokio::sync::Mutex::new(Instant::now()),
                    })
                })
                .clone()
        };
        let permit = entry
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("host semaphore never closes");
        if !self.interval.is_zero() {
            let start = {
                let mut next = entry.next_start.lock().await;
                let start = (*next).max(Instant::now());
                *next = start + self.interval;
                start
            };
            tokio::time::sleep_until(start).await;
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_with_its_own_limit_gets_that_many_slots() {
        let hosts = Hosts::new(4, 0.0, [("Upload.Wikimedia.org".to_string(), 2)]);
        let a = hosts.acquire("upload.wikimedia.org:443").await;
        let _b = hosts.acquire("upload.wikimedia.org:443").await;
        let third = tokio::time::timeout(
            Duration::from_millis(50),
            hosts.acquire("upload.wikimedia.org:443"),
        )
        .await;
        assert!(
            third.is_err(),
            "a third download to the file host must wait"
        );
        // Other hosts keep the general limit.
        let mut others = Vec::new();
        for _ in 0..4 {
            others.push(hosts.acquire("img.example:80").await);
        }
        drop(a);
        let third = tokio::time::timeout(
            Duration::from_millis(500),
            hosts.acquire("upload.wikimedia.org:443"),
        )
        .await;
        assert!(third.is_ok());
    }
}
