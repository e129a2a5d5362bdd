//! `hub:ORG/REPO[/FILE]` weights from the Hugging Face hub, cached by `hf-hub` (in `$HF_HOME`,
//! default `~/.cache/huggingface`).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The file a hub spec names when it names none: timm's weights.
pub const DEFAULT_FILE: &str = "model.safetensors";

/// Where the hub is and where its cache lives; `None` means hf-hub's defaults (the `HF_ENDPOINT`
/// and `HF_HOME` environment variables, then `https://huggingface.co` and
/// `~/.cache/huggingface`).
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    pub endpoint: Option<String>,
    pub cache_dir: Option<PathBuf>,
}

/// `ORG/REPO[/FILE]` → (repo, file).
pub fn parse(spec: &str, rest: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = rest.splitn(3, '/').collect();
    match parts.as_slice() {
        [org, repo] if !org.is_empty() && !repo.is_empty() => {
            Ok((format!("{org}/{repo}"), DEFAULT_FILE.to_string()))
        }
        [org, repo, file] if !org.is_empty() && !repo.is_empty() && !file.is_empty() => {
            Ok((format!("{org}/{repo}"), file.to_string()))
        }
        _ => Err(Error::BadWeightsSpec {
            spec: spec.into(),
            reason: "expected hub:ORG/REPO or hub:ORG/REPO/FILE".into(),
        }),
    }
}

/// The local path of `file` in `repo`: from the cache when present, else downloaded.
pub fn fetch(repo: &str, file: &str, opts: &HubOptions) -> Result<PathBuf> {
    let cache = match &opts.cache_dir {
        Some(dir) => hf_hub::Cache::new(dir.clone()),
        None => hf_hub::Cache::from_env(),
    };
    if let Some(path) = cache.model(repo.to_string()).get(file) {
        tracing::debug!(repo, file, path = %path.display(), "hub weights from the cache");
        return Ok(path);
    }
    let hub_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Hub {
        repo: repo.into(),
        file: file.into(),
        source,
    };
    let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(false);
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok());
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build().map_err(|e| hub_error(Box::new(e)))?;
    tracing::info!(repo, file, "downloading weights from the Hugging Face hub");
    api.model(repo.to_string())
        .get(file)
        .map_err(|e| hub_error(Box::new(e)))
}
