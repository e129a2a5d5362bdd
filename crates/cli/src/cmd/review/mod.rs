//! `lennonnet review --run DIR`: a local page to review a run's suspect labels, each action
//! journaled in the dataset's store as a `label_review` record.
//!
//! `state.rs` holds the reviews in force and the undo stack, `server.rs` the socket, the token
//! and the routes, `api.rs` the handlers, `thumbs.rs` the thumbnails, `tryit.rs` the "try it"
//! tab's scoring and nearest pictures, `page.html` the page.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use lennonnet_dataset::{Dataset, RunPaths};
use lennonnet_records::eval::{SUSPECTS_JSONL, Suspect};

use super::{load_config, stdout_error};
use crate::cli::ReviewArgs;

mod api;
mod server;
mod state;
mod thumbs;
mod tryit;

pub fn run(args: ReviewArgs) -> anyhow::Result<()> {
    if args.bind.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        crate::usage!(
            "--bind {}: the review page listens on 127.0.0.1 only",
            args.bind
        );
    }
    let device = lennonnet_models::device::parse_device(&args.device)?;
    let config = load_config(&args.config.config)?;
    let dataset = Dataset::of_config(&config);
    let record = lennonnet_records::run::read_record(&args.run)?.ok_or_else(|| {
        anyhow!(
            "no run.json in {} (a run folder as `lennonnet train` writes it)",
            args.run.display()
        )
    })?;
    let suspects = read_suspects(&args.run)?;
    let truth_source = if suspects.iter().any(|s| s.truth.is_some()) {
        "mirror"
    } else {
        "none"
    };
    let known = snapshot_rows(&dataset, &record.snapshot);
    let (store, _) = dataset.open_store(false).with_context(|| {
        format!(
            "cannot open the store of {} (reviews are journaled there)",
            dataset.root().display()
        )
    })?;
    let run_name = args
        .run
        .file_name()
        .map_or_else(|| record.name.clone(), |n| n.to_string_lossy().into_owned());
    let state = state::ReviewState::new(
        store,
        record.classes.clone(),
        run_name,
        state::reviewer(config.curate.reviewer.as_deref()),
        &suspects,
    )?;
    let app = Arc::new(api::App {
        token: server::Token::random()?,
        state,
        thumbs: thumbs::Thumbs::new(dataset),
        tryit: tryit::TryIt::new(&args.run, device, known),
        fetch: config.fetch.clone(),
        http: config.http.clone(),
        fetcher: tokio::sync::OnceCell::new(),
        truth_source: truth_source.into(),
    });
    tracing::info!(suspects = suspects.len(), reviewer = %app.state.reviewer, "review page ready");
    serve(Arc::clone(&app), args.bind, !args.no_open)?;
    match Arc::try_unwrap(app) {
        Ok(app) => app.state.close(),
        // A request still holds it: the store closes when that ends.
        Err(_) => Ok(()),
    }
}

/// Serves until Ctrl-C or SIGTERM, printing the page's address (with its token) on stdout.
fn serve(app: Arc<api::App>, bind: std::net::SocketAddr, open: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}/?token={}", app.token.as_str());
        let mut out = std::io::stdout().lock();
        writeln!(out, "{url}")
            .and_then(|()| out.flush())
            .map_err(stdout_error)?;
        drop(out);
        tracing::info!(%addr, "serving the review page until Ctrl-C");
        if open {
            open_browser(&url);
        }
        tokio::select! {
            () = server::serve(listener, app) => {},
            () = shutdown_signal() => tracing::info!("stopping"),
        }
        anyhow::Ok(())
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

/// Asks the desktop to open `url` (`$BROWSER`, else `xdg-open`); a failure is only logged.
fn open_browser(url: &str) {
    let program = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    let spawned = std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        tracing::info!(%program, error = %e, "cannot open a browser: open the address by hand");
    }
}

/// `<run>/eval/suspects.jsonl`, most suspect first (also `curate --from-run`'s input).
pub(crate) fn read_suspects(run: &Path) -> anyhow::Result<Vec<Suspect>> {
    let path = RunPaths::at(run).eval_dir().join(SUSPECTS_JSONL);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (run `lennonnet eval --run {}` first)",
            path.display(),
            run.display()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a suspect", path.display(), i + 1))
        })
        .collect()
}

/// The run's snapshot's rows by id (label, split, group), for the try-it tab's neighbours;
/// empty, with a warning, when the snapshot cannot be read.
fn snapshot_rows(dataset: &Dataset, snapshot: &str) -> HashMap<String, tryit::Known> {
    let rows = dataset
        .snapshot(snapshot)
        .map_err(anyhow::Error::from)
        .and_then(|s| s.rows().map_err(anyhow::Error::from));
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|r| {
                let known = tryit::Known {
                    label: r.label.to_string(),
                    split: r.split.as_str().to_string(),
                    group: r.group.to_string(),
                };
                (r.id.to_hex(), known)
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the try-it tab's neighbours will have no labels");
            HashMap::new()
        }
    }
}
