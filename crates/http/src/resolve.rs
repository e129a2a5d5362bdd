use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Decides whether an address a host name resolved to may be connected to.
///
/// The resolver calls it for every address, overridden or from the system. The address guard
/// (refusing loopback, private, link-local, multicast and unspecified targets unless
/// `[http] allow_private_addresses`) is an implementation of this trait. Note that URLs whose
/// host is an IP literal never reach a resolver: a guard must also check those before sending.
pub trait AddressPolicy: Send + Sync + 'static {
    /// `Ok(())` to allow `addr` for `host`, or the reason it is refused.
    fn check(&self, host: &str, addr: IpAddr) -> Result<(), String>;
}

/// The policy that allows every address.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAll;

impl AddressPolicy for AllowAll {
    fn check(&self, _host: &str, _addr: IpAddr) -> Result<(), String> {
        Ok(())
    }
}

/// A host name resolved to an address that the [`AddressPolicy`] refused. It reaches the caller
/// as the source of the request's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves to {addr}, which is refused: {reason}")]
pub struct RefusedAddress {
    pub host: String,
    pub addr: IpAddr,
    pub reason: String,
}

/// The client's name resolver: host-name suffix overrides first, then the system resolver.
///
/// An override `("mirror.test", 127.0.0.1)` applies to `mirror.test` itself and to every name
/// under it (`img07.mirror.test`), on label boundaries (`notmirror.test` is not under it). When
/// several suffixes match, the longest wins. Names compare without case and without a trailing
/// dot. The resolver returns port 0, so the port always comes from the URL.
///
/// With a proxy in use, the proxy resolves the target's name, so overrides apply only to
/// direct connections.
#[derive(Clone)]
pub struct Resolver {
    /// Normalised suffixes, longest first.
    overrides: Arc<Vec<(String, IpAddr)>>,
    policy: Arc<dyn AddressPolicy>,
}

impl Resolver {
    pub fn new(
        overrides: impl IntoIterator<Item = (String, IpAddr)>,
        policy: Arc<dyn AddressPolicy>,
    ) -> Self {
        let mut overrides: Vec<(String, IpAddr)> = overrides
            .into_iter()
            .map(|(suffix, ip)| (normalise(&suffix), ip))
            .filter(|(suffix, _)| !suffix.is_empty())
            .collect();
        overrides.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Self {
            overrides: Arc::new(overrides),
            policy,
        }
    }

    /// The override address for `host`, if a suffix matches.
    pub fn override_for(&self, host: &str) -> Option<IpAddr> {
        let host = normalise(host);
        self.overrides
            .iter()
            .find(|(suffix, _)| {
                host == *suffix
                    || (host.len() > suffix.len()
                        && host.ends_with(suffix.as_str())
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
            })
            .map(|(_, ip)| *ip)
    }

    /// Resolves `host` to addresses with port 0, applying overrides and the policy.
    pub async fn lookup(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs: Vec<SocketAddr> = match self.override_for(host) {
            Some(ip) => {
                tracing::trace!(host, %ip, "resolve override");
                vec![SocketAddr::new(ip, 0)]
            }
            None => tokio::net::lookup_host((normalise(host), 0))
                .await?
                .collect(),
        };
        for addr in &addrs {
            if let Err(reason) = self.policy.check(host, addr.ip()) {
                return Err(Box::new(RefusedAddress {
                    host: host.to_string(),
                    addr: addr.ip(),
                    reason,
                }));
            }
        }
        Ok(addrs)
    }
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.lookup(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn normalise(name: &str) -> String {
    name.trim_matches('.').to_ascii_lowercase()
}
