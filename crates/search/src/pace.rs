use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests to one engine at least `1 / requests_per_sec` apart, across every task that
/// shares it. Each caller reserves the next free slot, then sleeps until it; no lock is held
/// while sleeping, so callers are served in the order they asked.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for `requests_per_sec` (at most one request per `1 / requests_per_sec` seconds).
    /// Non-finite or non-positive rates mean no pacing.
    pub fn per_second(requests_per_sec: f64) -> Self {
        let interval = if requests_per_sec.is_finite() && requests_per_sec > 0.0 {
            Duration::from_secs_f64((1.0 / requests_per_sec).min(86_400.0))
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next: Mutex::new(None),
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Holds every request back until `until` (the engine asked to wait: `Retry-After`): the
    /// next slot is no earlier than it.
    pub fn hold_until(&self, until: Instant) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        *next = Some(next.map_or(until, |n| n.max(until)));
    }

    /// Waits for this caller's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_interval() {
        let pacer = std::sync::Arc::new(Pacer::per_second(4.0));
        assert_eq!(pacer.interval(), Duration::from_millis(250));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let p = pacer.clone();
            tasks.push(tokio::spawn(async move {
                p.wait().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        times.sort();
        let ms: Vec<u128> = times.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 250, 500, 750, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_does_not_bank_slots() {
        let pacer = Pacer::per_second(2.0);
        pacer.wait().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t = Instant::now();
        pacer.wait().await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        pacer.wait().await;
        assert_eq!(t.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_later_slot() {
        let pacer = Pacer::per_second(10.0);
        let t = Instant::now();
        pacer.hold_until(t + Duration::from_secs(5));
        pacer.wait().await;
        assert_eq!(t.elapsed(), Duration::from_secs(5));
        pacer.wait().await;
        assert_eq!(t.elapsed(), Duration::from_millis(5100));
        // A hold already passed changes nothing.
        pacer.hold_until(t);
        pacer.wait().await;
        assert_eq!(t.elapsed(), Duration::from_millis(5200));
    }

    #[test]
    fn odd_rates_mean_no_pacing() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Pacer::per_second(rate).interval(), Duration::ZERO, "{rate}");
        }
    }
}
