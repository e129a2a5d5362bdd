//! `lennonnet predict --run DIR IMAGE|FOLDER|URL...`: P(positive) per input.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use lennonnet_eval::Scorer;
use lennonnet_eval::stats::decide;

use super::{load_config, stdout_error};
use crate::cli::PredictArgs;

/// File extensions taken from folders.
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "jfif",
];

/// One input after expanding folders.
enum Input {
    File(PathBuf),
    Url(String),
    /// An argument that names nothing usable: the reason.
    Bad(String, String),
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Url(u) => u.clone(),
            Input::Bad(a, _) => a.clone(),
        }
    }
}

pub fn run(args: PredictArgs) -> anyhow::Result<()> {
    lennonnet_models::tune_allocator();
    let device = lennonnet_models::device::parse_device(&args.device)?;
    let scorer = Scorer::load(&args.run, &device)?;
    let classes = scorer.record.classes.clone();
    let threshold = scorer.record.threshold.unwrap_or(0.5);

    let mut inputs = Vec::new();
    for a in &args.inputs {
        expand(a, &mut inputs);
    }
    let bytes = load_all(&inputs, args.config.as_deref())?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the decoding threads")?;
    let scored = scorer.score_all(
        inputs.len(),
        |i| bytes[i].clone(),
        args.batch_size,
        &pool,
        &|_| {},
    )?;

    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut failed = 0usize;
    if !args.json {
        writeln!(
            out,
            "{:>9}  {:<10}  input",
            format!("P({})", classes[0]),
            "predicted"
        )
        .map_err(stdout_error)?;
    }
    for (input, r) in inputs.iter().zip(&scored) {
        let line = match r {
            Ok(p) => {
                let predicted = &classes[decide(p, threshold)];
                if args.json {
                    let probs: serde_json::Map<String, serde_json::Value> = classes
                        .iter()
                        .zip(p)
                        .map(|(c, &v)| (c.clone(), serde_json::json!(v)))
                        .collect();
                    serde_json::json!({
                        "input": input.name(),
                        "p_positive": p[0],
                        "predicted": predicted,
                        "threshold": threshold,
                        "probabilities": probs,
                    })
                    .to_string()
                } else {
                    format!("{:>9.4}  {:<10}  {}", p[0], predicted, input.name())
                }
            }
            Err(e) => {
                failed += 1;
                if args.json {
                    serde_json::json!({ "input": input.name(), "error": e }).to_string()
                } else {
                    format!("{:>9}  {:<10}  {}: {e}", "-", "error", input.name())
                }
            }
        };
        writeln!(out, "{line}").map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    if failed > 0 {
        anyhow::bail!("{failed} of {} inputs could not be scored", inputs.len());
    }
    Ok(())
}

fn expand(arg: &str, out: &mut Vec<Input>) {
    if arg.starts_with("http://") || arg.starts_with("https://") {
        out.push(Input::Url(arg.to_string()));
        return;
    }
    let p = Path::new(arg);
    if p.is_dir() {
        let mut found = Vec::new();
        if let Err(e) = walk(p, &mut found) {
            out.push(Input::Bad(arg.to_string(), e));
            return;
        }
        found.sort();
        if found.is_empty() {
            out.push(Input::Bad(
                arg.to_string(),
                format!("no images ({}) in this folder", IMAGE_EXTENSIONS.join(", ")),
            ));
        }
        out.extend(found.into_iter().map(Input::File));
    } else if p.exists() {
        out.push(Input::File(p.to_path_buf()));
    } else {
        out.push(Input::Bad(
            arg.to_string(),
            "no such file or folder (URLs must start with http:// or https://)".into(),
        ));
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// The bytes of every input: files read, URLs fetched concurrently with the guarded fetcher.
fn load_all(
    inputs: &[Input],
    config: Option<&Path>,
) -> anyhow::Result<Vec<Result<Vec<u8>, String>>> {
    let urls: Vec<&str> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Url(u) => Some(u.as_str()),
            _ => None,
        })
        .collect();
    let mut fetched = std::collections::HashMap::new();
    if !urls.is_empty() {
        let (fetch, http) = match config {
            Some(c) => {
                let c = load_config(c)?;
                (c.fetch.clone(), c.http.clone())
            }
            None => Default::default(),
        };
        let fetcher =
            lennonnet_fetch::Fetcher::new(&fetch, &http).context("cannot set up the downloader")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let outcomes = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            let fetcher = std::sync::Arc::new(fetcher);
            for u in &urls {
                let (f, u) = (fetcher.clone(), u.to_string());
                set.spawn(async move { f.fetch(&u).await });
            }
            let mut v = Vec::new();
            while let Some(o) = set.join_next().await {
                v.push(o);
            }
            v
        });
        for o in outcomes {
            let o = o.context("a download task failed")?;
            let r = match o.result {
                Ok(f) => Ok(f.body.to_vec()),
                Err(e) => Err(format!("cannot fetch: {e} ({})", e.reason())),
            };
            fetched.insert(o.url, r);
        }
    }
    Ok(inputs
        .iter()
        .map(|i| match i {
            Input::File(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
            Input::Url(u) => fetched
                .get(u)
                .cloned()
                .unwrap_or_else(|| Err("not fetched".into())),
            Input::Bad(_, why) => Err(why.clone()),
        })
        .collect())
}
