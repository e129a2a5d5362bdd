//! Lennonnet's one HTTP client.
//!
//! Every stage that talks HTTP (the search-engine adapters, later the image downloader) builds
//! its [`reqwest::Client`] here, so that the User-Agent, the proxy, the timeouts, compression,
//! TLS (rustls with the `ring` provider; never OpenSSL) and name-resolution overrides are set
//! in one place:
//!
//! - **User-Agent**: `[http] user_agent` by default (the search stage sets each engine's own).
//!   Wikimedia refuses generic agents, and an honest one is the polite thing anyway.
//! - **Compression**: gzip and brotli (Bing shortchanges clients without them).
//! - **Cookies**: optional, one jar per client ([`ClientOptions::cookies`]).
//! - **Proxy**: `[http] proxy` when set (with `NO_PROXY` still honoured); otherwise reqwest's
//!   usual `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` environment handling.
//! - **Resolve overrides**: `[http] resolve` maps a host-name *suffix* to an IP address
//!   (`"mirror.test" = "127.0.0.1"` sends `mirror.test` and `img07.mirror.test` to loopback).
//!   The port always comes from the URL. Other names go to the system resolver. See
//!   [`Resolver`].
//! - **Address policy**: every address the resolver hands out first passes an
//!   [`AddressPolicy`]. Today the client is built with [`AllowAll`]; the address guard that
//!   refuses loopback and private targets (`[http] allow_private_addresses`) plugs in there.
//!
//! This crate does no retrying and no pacing: those belong to the stage that knows what a
//! request means (see `lennonnet-search`).

mod body;
mod resolve;

use std::sync::Arc;
use std::time::Duration;

pub use body::{BodyError, read_body_limited};
pub use reqwest;
pub use resolve::{AddressPolicy, AllowAll, RefusedAddress, Resolver};

use lennonnet_config::HttpConfig;

/// Why the client could not be built. Each variant names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("[http] user_agent {value:?} is not a valid header value")]
    UserAgent { value: String },
    #[error("[http] proxy {url:?} is not a usable proxy URL")]
    Proxy {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build the HTTP client")]
    Build {
        #[source]
        source: reqwest::Error,
    },
}

/// How to build a client: the `[http]` settings plus the timeouts of the stage that uses it.
#[derive(Clone)]
pub struct ClientOptions {
    pub user_agent: String,
    /// An explicit proxy for every request. `None`: the environment's proxies apply.
    pub proxy: Option<String>,
    /// Host-name suffix overrides (see [`Resolver`]).
    pub resolve: Vec<(String, std::net::IpAddr)>,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, unless the request sets its own. `None`: no limit at
    /// the client level (stages set one per request).
    pub timeout: Option<Duration>,
    /// Redirects followed before giving up. 0: none are followed; 3xx responses are returned.
    pub max_redirects: u32,
    /// Checks every resolved address before it is connected to.
    pub address_policy: Arc<dyn AddressPolicy>,
    /// Keep cookies the servers set, in a jar of this client's own (one client per search
    /// engine, so one jar per engine).
    pub cookies: bool,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("user_agent", &self.user_agent)
            .field("proxy", &self.proxy)
            .field("resolve", &self.resolve)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_redirects", &self.max_redirects)
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// The `[http]` section's settings with default timeouts (10 s to connect, no client-wide
    /// total) and 5 redirects.
    pub fn from_config(http: &HttpConfig) -> Self {
        Self {
            user_agent: http.user_agent.clone(),
            proxy: http.proxy.clone(),
            resolve: http
                .resolve
                .iter()
                .map(|(suffix, ip)| (suffix.clone(), *ip))
                .collect(),
            connect_timeout: Duration::from_secs(10),
            timeout: None,
            max_redirects: 5,
            address_policy: Arc::new(AllowAll),
            cookies: false,
        }
    }

    /// Builds the client. Call it once per process and share the client (it is a handle to a
    /// connection pool; clones are cheap).
    pub fn build(&self) -> Result<reqwest::Client, ClientError> {
        // reqwest is compiled without a built-in crypto provider (so that aws-lc is not built);
        // install ring's. Installing twice is harmless: the first one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let user_agent =
            reqwest::header::HeaderValue::from_str(&self.user_agent).map_err(|_| {
                ClientError::UserAgent {
                    value: self.user_agent.clone(),
                }
            })?;
        let resolver = Resolver::new(self.resolve.iter().cloned(), self.address_policy.clone());
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(self.connect_timeout)
            .redirect(match self.max_redirects {
                // 0: redirects come back as responses, for a caller that follows them itself
                // (the image downloader guards and counts every hop).
                0 => reqwest::redirect::Policy::none(),
                n => reqwest::redirect::Policy::limited(n as usize),
            })
            .gzip(true)
            .brotli(true)
            .cookie_store(self.cookies)
            .tls_backend_rustls()
            .dns_resolver(resolver);
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(url) = &self.proxy {
            let proxy = reqwest::Proxy::all(url.as_str())
                .map_err(|source| ClientError::Proxy {
                    url: url.clone(),
                    source,
                })?
                .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(proxy);
        }
        let client = builder
            .build()
            .map_err(|source| ClientError::Build { source })?;
        tracing::debug!(
            user_agent = %self.user_agent,
            proxy = self.proxy.as_deref().unwrap_or("(environment)"),
            overrides = self.resolve.len(),
            "HTTP client built"
        );
        Ok(client)
    }
}

#[cfg(test)]
mod tests;
