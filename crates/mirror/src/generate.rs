//! `mirror generate`: the world's pictures and their ground truth, written to a folder.
//!
//! Layout of the output folder:
//!
//! ```text
//! truth.jsonl                  one line per image URL the queries return, in query then rank order
//! world.json                   the world settings used (seed included)
//! images/<who>/<file>          every picture those URLs serve, once per distinct content:
//!                              <who> is john, paul, george, ringo, person, group, word_<word>
//!                              (or the corpus folder); <file> is <original>[__<variant>-<n>].<ext>
//! ```
//!
//! Only URLs that end in the picture (no noise, slow, trickling, mislabelled, redirected) get a
//! file; the others are in `truth.jsonl` with their noise kind and no `file`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use lennonnet_core::{EngineKind, Progress};
use serde::Serialize;

use crate::error::{MirrorError, Result};
use crate::spec::{ImageSpec, Subject, VariantKind};
use crate::world::{Truth, World, original_id};

/// The truths of a query's results (at most `limit`), with their URLs on `port`.
pub fn query_truths(
    world: &World,
    port: u16,
    engine: EngineKind,
    query: &str,
    limit: u32,
) -> Vec<Truth> {
    let n = world.result_count(engine, query).min(limit);
    (0..n)
        .map(|rank| {
            let it = world.result(engine, query, rank);
            let url = match engine {
                EngineKind::WikimediaCommons => {
                    let name = format!("{}.{}", it.slug, it.look.format.ext());
                    world.commons_url(&it.spec, &name, port)
                }
                _ => world.image_url(&it, port),
            };
            let mut t = world.truth(&it.spec, url);
            t.engine = Some(engine);
            t.query = Some(query.to_string());
            t.rank = Some(rank + 1);
            t
        })
        .collect()
}

/// What `generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub out: PathBuf,
    pub queries: usize,
    pub urls: usize,
    pub files: usize,
    pub bytes: u64,
    /// Files per folder under `images/`.
    pub folders: BTreeMap<String, usize>,
}

/// The folder of `images/` a spec's picture goes to.
pub fn folder_of(world: &World, spec: &ImageSpec) -> String {
    match &spec.original.subject {
        Subject::Beatle(b) => b.as_str().to_string(),
        Subject::Person => "person".to_string(),
        Subject::Group { .. } => "group".to_string(),
        Subject::Word(w) => format!("word_{}", w.replace(' ', "_")),
        Subject::Corpus(g) => world
            .corpus
            .as_ref()
            .map(|c| c.groups[*g as usize].name.clone())
            .unwrap_or_default(),
    }
}

fn file_name(world: &World, spec: &ImageSpec) -> String {
    let ext = world.look(spec).format.ext();
    let id = original_id(&spec.original, world).replace(['/', '\\', ' '], "_");
    match spec.variant.kind {
        VariantKind::Original => format!("{id}.{ext}"),
        k => format!("{id}__{}-{:08x}.{ext}", k.as_str(), spec.variant.nonce),
    }
}

/// Writes the pictures of `queries` (each at most `limit_per_query` results) and their truth
/// to `out`, rendering on `threads` threads. URLs name `port`, so they match a server started
/// with `--addr 127.0.0.1:<port>`.
pub fn generate(
    world: &World,
    queries: &[(EngineKind, String)],
    limit_per_query: u32,
    port: u16,
    out: &Path,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Summary> {
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| MirrorError::Write {
            path: p.to_path_buf(),
            source,
        })
    };
    mkdir(&out.join("images"))?;
    let mut truths = Vec::new();
    let mut specs = Vec::new();
    for (engine, q) in queries {
        let n = world.result_count(*engine, q).min(limit_per_query);
        for (rank, t) in query_truths(world, port, *engine, q, n)
            .into_iter()
            .enumerate()
        {
            let it = world.result(*engine, q, rank as u32);
            specs.push(it.spec);
            truths.push(t);
        }
    }
    // One file per distinct content.
    let mut files: BTreeMap<String, ImageSpec> = BTreeMap::new();
    for (t, spec) in truths.iter_mut().zip(&specs) {
        if !spec.delivery.yields_image() {
            continue;
        }
        let rel = format!(
            "images/{}/{}",
            folder_of(world, spec),
            file_name(world, spec)
        );
        t.file = Some(rel.clone());
        files.entry(rel).or_insert_with(|| spec.clone());
    }
    let jobs: Vec<(&String, &ImageSpec)> = files.iter().collect();
    progress.start("generate", Some(jobs.len() as u64));
    let next = AtomicUsize::new(0);
    let written = std::sync::Mutex::new(0u64);
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((rel, spec)) = jobs.get(i) else {
                        break;
                    };
                    let r = crate::state::render_content(world, spec).and_then(|bytes| {
                        let path = out.join(rel);
                        if let Some(dir) = path.parent() {
                            mkdir(dir)?;
                        }
                        write_atomic(&path, &bytes)?;
                        Ok(bytes.len() as u64)
                    });
                    match r {
                        Ok(n) => *written.lock().unwrap_or_else(|e| e.into_inner()) += n,
                        Err(e) => {
                            *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            break;
                        }
                    }
                    progress.advance("generate", 1);
                }
            });
        }
    });
    progress.finish("generate");
    if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut jsonl = String::new();
    for t in &truths {
        jsonl += &serde_json::to_string(t).expect("plain data serialises");
        jsonl.push('\n');
    }
    write_atomic(&out.join("truth.jsonl"), jsonl.as_bytes())?;
    let world_json = serde_json::to_string_pretty(&world.config).expect("plain data serialises");
    write_atomic(&out.join("world.json"), world_json.as_bytes())?;
    let mut folders = BTreeMap::new();
    for rel in files.keys() {
        let folder = rel.split('/').nth(1).unwrap_or("").to_string();
        *folders.entry(folder).or_insert(0) += 1;
    }
    Ok(Summary {
        out: out.to_path_buf(),
        queries: queries.len(),
        urls: truths.len(),
        files: files.len(),
        bytes: written.into_inner().unwrap_or_else(|e| e.into_inner()),
        folders,
    })
}

/// Writes to a temporary file beside `path`, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |source| MirrorError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
