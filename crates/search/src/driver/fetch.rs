//! One request of a pager: paced, sent, parsed, counted against the breaker, and retried.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lennonnet_core::EngineKind;
use lennonnet_http::read_body_limited;

use super::{Pager, SearchOptions};
use crate::engine::{Cursor, Page, Request, Response, Step};
use crate::error::{EngineError, SearchError, TransportError};

impl Pager<'_> {
    /// Sends one request (paced, counted) and hands the response to the hook.
    async fn exchange(
        &mut self,
        cursor: &Cursor,
        request: &Request,
    ) -> Result<Response, TransportError> {
        self.runtime.pacer.wait().await;
        self.stats.requests += 1;
        self.runtime
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let response = self.send(request).await?;
        if let Some(hook) = &self.searcher.options.on_response {
            hook(self.adapter.kind(), cursor, request, &response);
        }
        Ok(response)
    }

    /// DuckDuckGo's token for this query, fetched afresh (after a 403 on a results page: the
    /// token may have expired). `Err` is the failure of the token request.
    async fn refresh_token(&mut self) -> Result<String, Failure> {
        let cursor = Cursor::token();
        let request = self.adapter.request(
            &self.runtime.base,
            &self.runtime.settings,
            &self.query,
            &cursor,
        );
        let response = self
            .exchange(&cursor, &request)
            .await
            .map_err(Failure::Transport)?;
        let page = self
            .adapter
            .parse(&self.runtime.settings, &cursor, &response)
            .map_err(Failure::Engine)?;
        let vqd = page
            .next
            .as_ref()
            .and_then(|c| c.param("vqd"))
            .map(str::to_string)
            .ok_or(Failure::Engine(EngineError::TokenMissing))?;
        self.remember_token(&vqd);
        Ok(vqd)
    }

    /// One request, paced and retried; the parsed page or the error of the last attempt. A
    /// DuckDuckGo token refreshed on the way is written into `cursor`.
    pub(super) async fn fetch(&mut self, cursor: &mut Cursor) -> Result<Page, SearchError> {
        let engine = self.adapter.kind();
        let options = self.searcher.options.clone();
        let mut attempts = 0;
        let mut refreshed = false;
        loop {
            self.check_up()?;
            let request = self.adapter.request(
                &self.runtime.base,
                &self.runtime.settings,
                &self.query,
                cursor,
            );
            let url = request.url.to_string();
            attempts += 1;
            let mut saved = None;
            let failure = match self.exchange(cursor, &request).await {
                Ok(response) => match self
                    .adapter
                    .parse(&self.runtime.settings, cursor, &response)
                {
                    Ok(page) => {
                        self.runtime.succeeded();
                        return Ok(page);
                    }
                    // A 403 on a DuckDuckGo results page: the token may be stale. Fetch it
                    // afresh once before counting the answer as a refusal.
                    Err(EngineError::RateLimited { .. })
                        if engine == EngineKind::DuckDuckGo
                            && cursor.step == Step::Results
                            && response.status == 403
                            && !refreshed =>
                    {
                        refreshed = true;
                        self.runtime
                            .counters
                            .token_refreshes
                            .fetch_add(1, Ordering::Relaxed);
                        match self.refresh_token().await {
                            Ok(vqd) => {
                                cursor.params.retain(|(k, _)| k != "vqd");
                                cursor.params.push(("vqd".into(), vqd));
                                attempts -= 1;
                                continue;
                            }
                            Err(f) => f,
                        }
                    }
                    Err(e) => {
                        if matches!(e, EngineError::Changed { .. }) {
                            saved = self.save_changed(cursor, &request, &response);
                        }
                        Failure::Engine(e)
                    }
                },
                Err(e) => Failure::Transport(e),
            };
            if let Failure::Engine(e) = &failure {
                self.count_failure(e, &saved, &options)?;
            }
            let retryable = match &failure {
                Failure::Engine(e) => e.is_retryable(),
                Failure::Transport(TransportError::Body(lennonnet_http::BodyError::TooLarge {
                    ..
                })) => false,
                Failure::Transport(_) => true,
            };
            let asked = match &failure {
                Failure::Engine(e) => e.retry_after(),
                Failure::Transport(_) => None,
            };
            let give_up = !retryable
                || attempts > options.max_retries
                || asked.is_some_and(|d| d > options.max_retry_after);
            if give_up {
                return Err(match failure {
                    Failure::Engine(source) => SearchError::Engine {
                        engine,
                        url,
                        attempts,
                        source,
                        saved,
                    },
                    Failure::Transport(source) => SearchError::Transport {
                        engine,
                        url,
                        attempts,
                        source,
                    },
                });
            }
            let delay = asked.unwrap_or_else(|| backoff(&options, attempts));
            tracing::warn!(
                %engine,
                %url,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                error = %failure,
                "retrying"
            );
            self.stats.retries += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// Counts an engine's failed answer against its breaker: a block or rate limit holds the
    /// engine back (and may take it down: then the error says so), a page no parser recognised
    /// counts towards `changed_threshold`.
    fn count_failure(
        &self,
        e: &EngineError,
        saved: &Option<PathBuf>,
        options: &SearchOptions,
    ) -> Result<(), SearchError> {
        let counter = match e {
            EngineError::Blocked | EngineError::TokenMissing => Some(&self.runtime.counters.blocks),
            EngineError::RateLimited { .. } => Some(&self.runtime.counters.rate_limits),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
            let hold = e
                .retry_after()
                .filter(|d| *d <= options.max_retry_after)
                .unwrap_or(options.backoff_base);
            let event = self.runtime.blocked(options.breaker, hold);
            let down = event.is_some();
            self.emit(event);
            if down {
                self.check_up()?;
            }
        }
        if matches!(e, EngineError::Changed { .. }) {
            let event = self.runtime.changed(saved.clone(), options.breaker);
            self.emit(event);
        }
        Ok(())
    }

    async fn send(&self, request: &Request) -> Result<Response, TransportError> {
        let mut builder = self
            .runtime
            .client
            .get(request.url.clone())
            .timeout(self.runtime.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_body_limited(response, self.searcher.options.max_body_bytes).await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

enum Failure {
    Engine(EngineError),
    Transport(TransportError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Engine(e) => e.fmt(f),
            Failure::Transport(e) => {
                e.fmt(f)?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}

/// `base * 2^(attempt-1)`, capped, plus up to 25 % jitter.
fn backoff(options: &SearchOptions, attempt: u32) -> Duration {
    let exp = options
        .backoff_base
        .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20))
        .min(options.backoff_max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = exp.mul_f64((nanos % 1000) as f64 / 4000.0);
    exp + jitter
}
