/// How a library stage reports progress. Libraries call it; only the binary draws bars, so a
/// library never writes to the terminal itself.
///
/// `stage` is a short fixed name ("scrape", "verify", ...); `total` may be unknown.
pub trait Progress: Send + Sync {
    /// A unit of work with `total` items (if known) has started.
    fn start(&self, stage: &str, total: Option<u64>) {
        let _ = (stage, total);
    }
    /// `n` more items of `stage` are done.
    fn advance(&self, stage: &str, n: u64) {
        let _ = (stage, n);
    }
    /// `stage` finished.
    fn finish(&self, stage: &str) {
        let _ = stage;
    }
    /// A short status for `stage`, shown beside it until replaced (empty clears it): which
    /// search engines are down and until when, say.
    fn note(&self, stage: &str, message: &str) {
        let _ = (stage, message);
    }
}

/// A [`Progress`] that shows nothing, for tests and for callers that do not care.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
