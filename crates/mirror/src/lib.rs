//! Lennonnet's offline mirror: a local web that behaves like the real one.
//!
//! It serves the real engines' wire formats (DuckDuckGo `i.js`, Bing `images/async`, Wikimedia
//! Commons `api.php`) and hosts images on many virtual hosts of one socket, for a synthetic world
//! that is deterministic from a seed: rendered faces of four look-alike identities, random
//! people, word scenes, and the web's noise (copies, dead links, slow hosts, bombs, redirects,
//! rate limits). Every image URL carries its ground truth. See `docs/mirror.md`.
//!
//! Invariants: the same seed and world file give the same bytes for the same URL, on every
//! machine; nothing here depends on the clock or on hash-map order (decisions come from keyed
//! blake3 hashes and seeded ChaCha RNGs); the server only listens where it is told (loopback by
//! default) and never makes a request itself.

pub mod cache;
pub mod config;
pub mod corpus;
pub mod encode;
pub mod engines;
pub mod error;
pub mod font;
pub mod generate;
pub mod render;
pub mod server;
pub mod sheet;
pub mod spec;
pub mod state;
pub mod truth;
pub mod world;

pub use config::{EngineRules, Profile, WorldConfig};
pub use corpus::Corpus;
pub use error::{MirrorError, Result};
pub use server::{Running, start};
pub use state::{Mirror, Options};
pub use world::{IMAGE_HOSTS, Truth, World};

use std::path::Path;

/// The `[http]` and `[engines]` sections of a Lennonnet config that point `engines` (by config
/// name: `duckduckgo`, `bing`, `wikimedia_commons`) at a mirror listening on 127.0.0.1:`port`,
/// unpaced, for tests and benchmarks to splice into their configs.
pub fn client_config(port: u16, engines: &[&str]) -> String {
    let host = |e: &str| {
        match e {
            "wikimedia_commons" => "commons",
            other => other,
        }
        .to_string()
    };
    let order = engines
        .iter()
        .map(|e| format!("{e:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        "[http]\nuser_agent = \"lennonnet-test/0.1 (+https://example.invalid/lennonnet)\"\n\
         allow_private_addresses = true\nresolve = {{ \"mirror.test\" = \"127.0.0.1\" }}\n\n\
         [engines]\norder = [{order}]\n"
    );
    for e in engines {
        out += &format!(
            "\n[engines.{e}]\nbase_url = \"http://{}.mirror.test:{port}\"\nrequests_per_sec = 1000.0\n",
            host(e)
        );
    }
    out
}

/// Builds a world from an optional world file, an optional seed that overrides the file's, and
/// an optional corpus folder.
pub fn load_world(
    world_file: Option<&Path>,
    seed: Option<u64>,
    corpus: Option<&Path>,
) -> Result<World> {
    load_world_with(
        world_file,
        corpus,
        &Overrides {
            seed,
            ..Overrides::default()
        },
    )
}

/// What the command line sets over a world file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--profile`: the defaults of the real engines' behaviours (`[search] profile`).
    pub profile: Option<config::Profile>,
    /// `--changed`: engines that answer in a changed format, added to `[search] changed`.
    pub changed: Vec<lennonnet_core::EngineKind>,
}

/// Builds a world from an optional world file with the command line's overrides, and an
/// optional corpus folder.
pub fn load_world_with(
    world_file: Option<&Path>,
    corpus: Option<&Path>,
    overrides: &Overrides,
) -> Result<World> {
    let mut config = match world_file {
        Some(p) => WorldConfig::load(p)?,
        None => WorldConfig::default(),
    };
    if let Some(s) = overrides.seed {
        config.seed = s;
    }
    if let Some(p) = overrides.profile {
        config.search.profile = p;
    }
    for e in &overrides.changed {
        if !config.search.changed.contains(e) {
            config.search.changed.push(*e);
        }
    }
    config.validate()?;
    let corpus = corpus.map(Corpus::load).transpose()?;
    Ok(World::new(config, corpus))
}

/// Serves `world` on `addr` until Ctrl-C or SIGTERM, on a runtime of its own.
/// `on_listening` is called once with the bound address (port 0 resolved).
pub fn serve_until_signal(
    world: World,
    addr: std::net::SocketAddr,
    options: &Options,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| MirrorError::Bind { addr, source })?;
    let result = rt.block_on(async {
        let running = start(world, addr, options).await?;
        on_listening(running.addr);
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.shutdown().await;
        Ok(())
    });
    // Do not wait for open keep-alive connections or renders in flight.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
