use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use lennonnet_config::{FetchConfig, HttpConfig};
use lennonnet_http::{ClientOptions, RefusedAddress, reqwest};
use reqwest::{StatusCode, Url, header};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::{Instant, timeout};

use crate::guard::AddressGuard;
use crate::hosts::Hosts;
use crate::outcome::{Failure, Fetched, Outcome};
use crate::sniff::sniff;

/// The downloader could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Client(#[from] lennonnet_http::ClientError),
}

/// Downloads images under the run's limits. Share one per run (`Arc<Fetcher>`); every method
/// takes `&self`.
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
    guard: AddressGuard,
    global: Semaphore,
    hosts: Hosts,
    in_flight: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
}

/// The result of one attempt, before retries are decided.
struct Attempt {
    final_url: Option<String>,
    status: Option<u16>,
    result: Result<Fetched, Failure>,
    retry_after: Option<Duration>,
}

impl Fetcher {
    pub fn new(fetch: &FetchConfig, http: &HttpConfig) -> Result<Self, FetchError> {
        let guard = AddressGuard {
            allow_private: http.allow_private_addresses,
        };
        let mut options = ClientOptions::from_config(http);
        options.connect_timeout = Duration::from_secs(fetch.connect_timeout_secs);
        options.timeout = None;
        // Redirects are followed here, so that every hop is counted and guarded.
        options.max_redirects = 0;
        options.address_policy = Arc::new(guard);
        let client = options.build()?;
        Ok(Self {
            client,
            config: fetch.clone(),
            guard,
            global: Semaphore::new(fetch.concurrency.max(1) as usize),
            hosts: Hosts::new(
                fetch.per_host_concurrency as usize,
                fetch.per_host_requests_per_sec,
                fetch
                    .host_concurrency
                    .iter()
                    .map(|(h, &n)| (h.clone(), n as usize)),
            ),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches `url`, with retries, under the limits. The same URL asked for again while a fetch
    /// of it is in flight shares that fetch.
    pub async fn fetch(&self, url: &str) -> Outcome {
        let cell = {
            let mut map = self.in_flight.lock().expect("in-flight map poisoned");
            map.entry(url.to_string())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let outcome = cell
            .get_or_init(|| self.fetch_with_retries(url))
            .await
            .clone();
        let mut map = self.in_flight.lock().expect("in-flight map poisoned");
        if map.get(url).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            map.remove(url);
        }
        outcome
    }

    async fn fetch_with_retries(&self, url: &str) -> Outcome {
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = {
                let _slot = self
                    .global
                    .acquire()
                    .await
                    .expect("global semaphore never closes");
                self.attempt(url).await
            };
            let retryable = matches!(&attempt.result, Err(f) if f.is_transient());
            let last = attempts > self.config.max_retries;
            if !retryable || last {
                let result = attempt.result;
                if let Err(failure) = &result {
                    tracing::debug!(%url, reason = failure.reason().as_str(), attempts, "download failed: {failure}");
                }
                return Outcome {
                    url: url.to_string(),
                    final_url: attempt.final_url,
                    status: attempt.status,
                    duration: started.elapsed(),
                    attempts,
                    result,
                };
            }
            let total = Duration::from_secs(self.config.total_timeout_secs);
            let delay = match attempt.retry_after {
                // A server asking for more than a whole download's time is not waited for.
                Some(wait) if wait > total => {
                    return Outcome {
                        url: url.to_string(),
                        final_url: attempt.final_url,
                        status: attempt.status,
                        duration: started.elapsed(),
                        attempts,
                        result: Err(Failure::RateLimited),
                    };
                }
                Some(wait) => wait,
                None => self.backoff(url, attempts),
            };
            tracing::trace!(%url, attempts, delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with jitter in [0.5, 1.5), capped at 30 s. The jitter comes from a hash
    /// of the URL and attempt, so it spreads retries without a random number generator.
    fn backoff(&self, url: &str, attempt: u32) -> Duration {
        let base = Duration::from_millis(self.config.retry_base_delay_ms);
        let exp = base.saturating_mul(1u32 << (attempt - 1).min(16));
        let h = blake3::hash(format!("{url}\0{attempt}").as_bytes());
        let jitter = 0.5 + (h.as_bytes()[0] as f64 / 256.0);
        exp.mul_f64(jitter).min(Duration::from_secs(30))
    }

    async fn attempt(&self, url: &str) -> Attempt {
        let total = Duration::from_secs(self.config.total_timeout_secs);
        let deadline = Instant::now() + total;
        match timeout(total, self.attempt_inner(url, deadline)).await {
            Ok(a) => a,
            Err(_) => Attempt {
                final_url: None,
                status: None,
                result: Err(Failure::TotalTimeout { secs: total }),
                retry_after: None,
            },
        }
    }

    async fn attempt_inner(&self, url: &str, deadline: Instant) -> Attempt {
        let fail = |final_url: Option<String>, status: Option<u16>, f: Failure| Attempt {
            final_url,
            status,
            result: Err(f),
            retry_after: None,
        };
        let mut current = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => {
                return fail(
                    None,
                    None,
                    Failure::BadUrl {
                        message: e.to_string(),
                    },
                );
            }
        };
        let mut visited: HashSet<Url> = HashSet::from([current.clone()]);
        let max = self.config.max_redirects;
        for hop in 0..=max {
            let moved = (hop > 0).then(|| current.to_string());
            if let Err(f) = self.check_target(&current) {
                return fail(moved, None, f);
            }
            let host = format!(
                "{}:{}",
                current.host_str().unwrap_or(""),
                current.port_or_known_default().unwrap_or(0)
            );
            let _host_slot = self.hosts.acquire(&host).await;

            let first_byte = Duration::from_secs(self.config.first_byte_timeout_secs);
            let response = match timeout(first_byte, self.client.get(current.clone()).send()).await
            {
                Err(_) => return fail(moved, None, Failure::FirstByteTimeout { secs: first_byte }),
                Ok(Err(e)) => return fail(moved, None, request_failure(&e)),
                Ok(Ok(r)) => r,
            };
            let status = response.status();
            let code = Some(status.as_u16());
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok());
                let next = match location.map(|l| current.join(l)) {
                    Some(Ok(next)) => next,
                    Some(Err(e)) => {
                        return fail(
                            moved,
                            code,
                            Failure::BadRedirect {
                                message: e.to_string(),
                            },
                        );
                    }
                    None => {
                        return fail(
                            moved,
                            code,
                            Failure::BadRedirect {
                                message: "no Location header".into(),
                            },
                        );
                    }
                };
                if !visited.insert(next.clone()) {
                    return fail(
                        moved,
                        code,
                        Failure::RedirectLoop {
                            url: next.to_string(),
                        },
                    );
                }
                current = next;
                continue;
            }
            if !status.is_success() {
                let retry_after = (status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE)
                    .then(|| retry_after(response.headers()))
                    .flatten();
                let failure = if status == StatusCode::TOO_MANY_REQUESTS {
                    Failure::RateLimited
                } else {
                    Failure::Http {
                        status: status.as_u16(),
                    }
                };
                return Attempt {
                    final_url: moved,
                    status: code,
                    result: Err(failure),
                    retry_after,
                };
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let Some(declared) = response
                .content_length()
                .filter(|n| *n > self.config.max_bytes)
            {
                return fail(
                    moved,
                    code,
                    Failure::TooLarge {
                        max_bytes: self.config.max_bytes,
                        declared: Some(declared),
                    },
                );
            }
            let body = match self.read_body(response, deadline).await {
                Ok(b) => b,
                Err(f) => return fail(moved, code, f),
            };
            let sniffed = sniff(&body);
            let result = if sniffed.is_image() {
                Ok(Fetched {
                    body,
                    sniffed,
                    content_type,
                })
            } else {
                Err(Failure::NotAnImage { sniffed })
            };
            return Attempt {
                final_url: moved,
                status: code,
                result,
                retry_after: None,
            };
        }
        fail(
            Some(current.to_string()),
            None,
            Failure::TooManyRedirects { max },
        )
    }

    /// Scheme and IP-literal checks; host names are checked by the guard in the resolver.
    fn check_target(&self, url: &Url) -> Result<(), Failure> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::BadUrl {
                message: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        match url.host() {
            None => Err(Failure::BadUrl {
                message: "no host".into(),
            }),
            Some(url::Host::Ipv4(ip)) => self
                .guard
                .check_ip(ip.into())
                .map_err(|message| Failure::AddressRefused { message }),
            Some(url::Host::Ipv6(ip)) => self
                .guard
                .check_ip(ip.into())
                .map_err(|message| Failure::AddressRefused { message }),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    /// Reads the body under the size cap, the stall rule and the attempt's deadline.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        deadline: Instant,
    ) -> Result<Bytes, Failure> {
        let max = self.config.max_bytes;
        let window = Duration::from_secs(self.config.stall_window_secs.max(1));
        let min_rate = self.config.stall_min_bytes_per_sec;
        let mut body = BytesMut::with_capacity(
            response.content_length().unwrap_or(64 * 1024).min(max) as usize,
        );
        let mut window_start = Instant::now();
        let mut window_bytes: u64 = 0;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::TotalTimeout {
                    secs: Duration::from_secs(self.config.total_timeout_secs),
                });
            }
            let wait = window.min(deadline - now);
            match timeout(wait, response.chunk()).await {
                Err(_) if Instant::now() >= deadline => {
                    return Err(Failure::TotalTimeout {
                        secs: Duration::from_secs(self.config.total_timeout_secs),
                    });
                }
                Err(_) => {
                    let elapsed = window_start.elapsed().as_secs_f64().max(1e-3);
                    return Err(Failure::Stalled {
                        bytes_per_sec: (window_bytes as f64 / elapsed) as u64,
                        min_bytes_per_sec: min_rate,
                    });
                }
                Ok(Err(e)) => {
                    return Err(Failure::Body {
                        message: error_chain(&e),
                    });
                }
                Ok(Ok(None)) => return Ok(body.freeze()),
                Ok(Ok(Some(chunk))) => {
                    if body.len() as u64 + chunk.len() as u64 > max {
                        return Err(Failure::TooLarge {
                            max_bytes: max,
                            declared: None,
                        });
                    }
                    body.extend_from_slice(&chunk);
                    window_bytes += chunk.len() as u64;
                    let elapsed = window_start.elapsed();
                    if elapsed >= window {
                        let rate = (window_bytes as f64 / elapsed.as_secs_f64()) as u64;
                        if rate < min_rate {
                            return Err(Failure::Stalled {
                                bytes_per_sec: rate,
                                min_bytes_per_sec: min_rate,
                            });
                        }
                        window_start = Instant::now();
                        window_bytes = 0;
                    }
                }
            }
        }
    }
}

/// Maps a request error to a failure, finding a refused address anywhere in its chain.
fn request_failure(e: &reqwest::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<RefusedAddress>() {
            return Failure::AddressRefused {
                message: refused.to_string(),
            };
        }
        source = s.source();
    }
    Failure::Connect {
        message: error_chain(e),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}
