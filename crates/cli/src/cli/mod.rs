use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Lennonnet turns image search results into a clean, reproducible training set and a trained
/// classifier.
///
/// Data goes to stdout, logs to stderr. Exit codes: 0 success, 1 the command failed,
/// 2 bad usage or an invalid config.
#[derive(Debug, Parser)]
#[command(
    name = "lennonnet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the queries a config asks for, one JSON object per line.
    ///
    /// Each row is one search text on one engine for one group: id, text, group, label, engine,
    /// wanted (the group's wanted image count), purpose (train or eval) and tier (0 for the first
    /// engines, 1.. for fallbacks). The output is byte-identical between runs and machines.
    Plan(PlanArgs),
    /// Search, download and store every group of a plan, resumably.
    ///
    /// Works the plan's groups (several at once), each in result order, until every group holds
    /// its wanted number of distinct valid images or its queries run out. Every URL ends stored,
    /// a duplicate, or failed with a reason, all recorded in the dataset's journal. Interrupted
    /// (Ctrl-C, or even a kill), the same command continues where it stopped: URLs with a recorded
    /// outcome are not fetched again. Prints a summary table per group and one per engine
    /// (requests, blocks, rate limits, cool-downs, changed pages) at the end.
    ///
    /// An engine that blocks `block_threshold` times in a row is left alone for its
    /// `cooldown_secs` and its groups go on with the next engine; a page no parser recognises is
    /// saved under `<dataset>/engines/changed/` and fails only its query. Exits 1 if
    /// interrupted, if every engine was down (the message says when to rerun), or if an engine
    /// answered `changed_threshold` queries in a row with unrecognised pages (naming the saved
    /// page); exits 2 if the User-Agent sent to the real Wikimedia Commons names no contact.
    Scrape(ScrapeArgs),
    /// Split the curated store into train/val/test (and eval) as an immutable snapshot.
    ///
    /// A snapshot's manifest lists every kept image with its label, group, split and
    /// near-duplicate cluster, sorted by content id; its id is the blake3 of that file. Split
    /// membership comes from a keyed hash of each cluster, so the same store and policy give a
    /// byte-identical manifest, and `--parent` keeps every earlier assignment.
    Snapshot(SnapshotArgs),
    /// Train a classifier on a snapshot's train split, validating on its val split.
    ///
    /// Images are decoded once into a pixel cache; `--strategy head` (the default, the practical
    /// path on a CPU) freezes the backbone, computes its features once (feature cache) and trains
    /// the classifier head on them; `partial` also trains the last stages, `full` everything.
    /// AdamW with warm-up and cosine decay, label smoothing, gradient clipping, class balance by
    /// loss weights or sampling; validation every epoch, early stopping on the validation loss,
    /// and the decision threshold tuned on validation. Defaults come from the config's `[train]`
    /// section; the flags override them.
    ///
    /// Writes runs/<run>/: run.json (snapshot, model, weights and their blake3, settings, seed,
    /// versions, device, threshold), metrics.jsonl (per step and per epoch; wall-clock figures
    /// only under `time`), best.safetensors, last.safetensors and resume.safetensors; points
    /// runs/latest at the run. The same seed and snapshot on the CPU give the same metrics.jsonl
    /// (apart from `time`). Killed at any moment, the same command with --resume continues from
    /// the last checkpoint and ends where an uninterrupted run ends. Prints a summary table. See
    /// docs/training.md.
    Train(TrainArgs),
    /// Write a run's report: one self-contained HTML page and its plots as PNG files.
    ///
    /// Reads the run folder (run.json, metrics.jsonl) and what `lennonnet eval --run DIR` wrote
    /// to its eval/ folder, and the evaluated snapshot and the store of the config's dataset.
    /// Writes report.html (CSS inline, every image a data: URI: it opens offline and makes no
    /// request) with the run summary, loss and accuracy curves, the test split's tables,
    /// confusion matrix, ROC curve and reliability diagram, per-group figures, the eval sets'
    /// P(positive) histograms (25 bins and right/wrong), the misclassified and suspect-label
    /// galleries with provenance, and the dataset summary; and every plot as a PNG beside it.
    /// Files are written to temporary names and renamed into place, the page last; the same
    /// inputs give the same bytes. See docs/report.md.
    Report(ReportArgs),
    /// Evaluate a run: the test split at the validation threshold, per group, the eval sets.
    ///
    /// Scores every image of the run's snapshot (or `--snapshot`) with the run's best model,
    /// preprocessed as validation did, and prints the founding study's table ("96/100 john"),
    /// accuracy, precision/recall/F1 of the positive class, ROC AUC, the confusion matrix and
    /// calibration (ECE) on the test split; accuracy and mean P(positive) per group; a 25-bin
    /// P(positive) histogram per eval set with its right/wrong counts. On a mirror world each
    /// image's true identity is read off its URLs, so the same table is also given against the
    /// truth, and label noise shows. Suspect labels (confident learning on train and val) and the
    /// most confident errors go to a gallery of thumbnails with their provenance.
    ///
    /// Writes <run>/eval/: metrics.json (deterministic apart from its `timing` object),
    /// predictions.jsonl, suspects.jsonl, gallery/index.json and thumbnails. See docs/eval.md.
    Eval(EvalArgs),
    /// P(positive) of image files, folders (recursively) or URLs with a run's best model.
    ///
    /// Preprocesses as validation and `eval` do, so a stored image gets the probability eval
    /// gives it. URLs are downloaded with the scraper's guarded fetcher (size caps, timeouts,
    /// address guard; `[http]`/`[fetch]` of `--config` when given). Prints a table, or one JSON
    /// object per input with `--json`. An input that cannot be read, fetched or decoded gets its
    /// error on its own row and the rest go on; the exit code is then 1.
    Predict(PredictArgs),
    /// Review a run's suspect labels on a local page: relabel, exclude or confirm each image.
    ///
    /// Serves a page on 127.0.0.1 (`--bind`, default a free port) and prints its address, with a
    /// random token that every request must carry; runs until Ctrl-C. The page shows the
    /// suspects of `lennonnet eval --run DIR` (eval/suspects.jsonl), most suspect first, as a
    /// grid of thumbnails, with each one's evidence (label, suggested class, score, P values,
    /// signals, training margin, cluster, neighbours, where it came from, and on a mirror world
    /// its simulated truth). Keys: arrows or j/k move, 1..n set class n, x excludes, c confirms
    /// the label, u undoes, ? shows help. Every action is journaled in the dataset's store at
    /// once (a `label_review` record naming the reviewer, `[curate] reviewer` or $USER, and
    /// the run); reviews already in force show when the page loads. The "try it" tab scores a dropped picture or a URL (fetched with the
    /// scraper's guarded downloader) with the run's best model and shows the nearest training
    /// pictures (eval/features.safetensors). See docs/commands.md.
    Review(ReviewArgs),
    /// Search one engine for one query and print its candidates, one JSON object per line.
    ///
    /// Each line is a candidate: image_url, thumbnail_url, page_url, title, width, height,
    /// licence (Wikimedia Commons), engine, query_id and rank (1-based, in the order first
    /// seen). Paging stops at --limit, at the engine's `max_results`, when the engine has no
    /// more pages, when a page brings nothing new, or when the engine repeats a page cursor.
    /// Requests are paced at the engine's `requests_per_sec` and rate limits are retried up to
    /// `engines.max_retries` times, honouring Retry-After. Base URLs, User-Agent, proxy and
    /// resolve overrides come from the config, so the same command runs against the offline
    /// mirror.
    ///
    /// Exits 1 when the engine fails: a rate limit that outlasts the retries, a block, an
    /// unrecognised answer ("structure not recognised": the engine changed; save the response
    /// with --save-responses and check it with `lennonnet engines parse`). Candidates printed
    /// before the failure stay printed.
    Search(SearchArgs),
    /// Tools for the search-engine adapters: run a parser on a saved response.
    Engines(EnginesArgs),
    /// The offline mirror: local search engines and image hosts serving a synthetic world.
    ///
    /// `mirror serve` speaks the wire formats of DuckDuckGo, Bing and Wikimedia Commons on
    /// loopback and hosts the images on virtual hosts `img00.mirror.test` .. `img23.mirror.test`
    /// (point the config's `[http] resolve` at it); `mirror generate` writes a world's pictures
    /// and their ground truth to a folder. See docs/mirror.md.
    Mirror(MirrorArgs),
    /// Draw a contact sheet: a grid of labelled thumbnails of image files or folders, as PNG.
    ///
    /// Folders are searched recursively for .jpg, .jpeg, .png, .webp, .gif and .bmp files, taken
    /// in byte order of their paths. Each cell shows the picture as a viewer would (EXIF
    /// orientation applied), its size, its folder and its file name; an unreadable file gets a
    /// red cell saying why. Use it to eyeball a class: `lennonnet sheet datasets/x/john --out
    /// john.png`. With `--snapshot ID [--group G] [--split S]` it draws a snapshot's images:
    /// `lennonnet sheet --config config/demo.toml --snapshot latest --group george --split test
    /// --out george-test.png`.
    Sheet(SheetArgs),
    /// The dataset's image store: add files, count, verify, gc, repair, reindex.
    ///
    /// The store keeps each accepted image's original bytes once, named by their blake3 hash
    /// (`objects/`), an append-only journal of where every image came from and what became of
    /// it (`journal/`, the source of truth), and an index derived from the journal (`index/`).
    /// Only one process can have a store open at a time.
    Store(StoreArgs),
    /// Find near-duplicate clusters, label conflicts and eval leaks; journal every decision.
    ///
    /// Clusters are formed from the images' perceptual hashes (thresholds in `[curate]`). A
    /// cluster found under several labels is relabelled to `curate.prefer_label` (default: the
    /// first class) or quarantined, per `curate.conflict_policy`. An eval image whose cluster
    /// holds training images is excluded from eval. Each image gets one decision with its
    /// reasons; only changed decisions are journaled, so a rerun writes nothing. Prints a summary
    /// (`--json`: the full report). Objects are never deleted.
    ///
    /// `--explain ID` prints instead the story of one image (a content id or a unique prefix of
    /// at least 4 hex digits): validation, hashes, every provenance, fetch outcomes, cluster
    /// members with their distances, every decision with its reasons, and its label reviews.
    ///
    /// `--from-run DIR` quarantines reviewed suspect labels of a run evaluated with `lennonnet
    /// eval` (see docs/eval.md), or with `--simulated-reviewer` (mirror worlds only) journals a
    /// simulated review of them from the mirror's truth; `--release ID...` lifts quarantines.
    Curate(CurateArgs),
    /// The model zoo: list the architectures, show one's tensors and parameter count.
    ///
    /// The ResNets (resnet10t, resnet18d, resnet26d, resnet34d, resnet50d) are timm's, with timm's
    /// tensor names and shapes, so timm's weights (`hub:timm/resnet50d.ra2_in1k`) load as they
    /// are; efficientnet_lite0 is the TensorFlow EfficientNet-Lite0 with timm's names. See
    /// docs/models.md.
    Model(ModelArgs),
    /// Model weights: convert PyTorch checkpoints to safetensors, fetch weights from the hub.
    ///
    /// `weights import` reads `.pth` files in both PyTorch formats (zip, from PyTorch 1.6 on, and
    /// the older legacy format) and writes safetensors; `weights fetch` downloads
    /// `hub:ORG/REPO[/FILE]` into the Hugging Face cache and prints its path. See docs/models.md.
    Weights(WeightsArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file. Global: it may follow a subcommand (`snapshot show -c FILE ID`).
    #[arg(
        long,
        short = 'c',
        default_value = "config/lennonnet.toml",
        value_name = "FILE",
        global = true
    )]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `jsonl`: one query per line (data). `table`: wanted images per class, purpose and group.
    #[arg(long, value_enum, default_value_t = PlanFormat::Jsonl)]
    pub format: PlanFormat,
}

#[derive(Debug, Args)]
pub struct ScrapeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Fetch again the URLs whose recorded failure may pass (timeouts, stalls, 5xx, 429,
    /// connection errors). Other failures (404, not an image, too large, ...) stay final.
    #[arg(long)]
    pub retry_failed: bool,
    /// Draw no progress bars (they are drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// `table`: the per-group summary. `json`: the full report.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Create a snapshot of the curated store; prints its id (the counts go to stderr).
    ///
    /// Run `lennonnet curate` first. With `--parent ID`, every image already in the parent keeps
    /// its split and the parent's test holdout is frozen: only new images are assigned, and
    /// holdout shortfalls filled. Creating the same snapshot twice gives the same id.
    Create {
        /// A snapshot id (or unique prefix, or `latest`) whose assignments to keep.
        #[arg(long, value_name = "ID")]
        parent: Option<String>,
    },
    /// List the snapshots: id, parent and images per split.
    List,
    /// Show a snapshot's counts per class, group and split (`latest` for the newest).
    Show {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// The images added, removed and moved from snapshot A to B, with reasons, as JSON Lines.
    Diff {
        #[arg(value_name = "A")]
        a: String,
        #[arg(value_name = "B")]
        b: String,
    },
    /// Check the manifest still hashes to the id and every object is present and intact.
    /// Exits 1 otherwise.
    Verify {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Write a snapshot for other tools: an ImageFolder tree or WebDataset tar shards, both with
    /// a metadata.csv.
    Export {
        #[arg(value_name = "ID")]
        id: String,
        /// `imagefolder`: OUT/<split>/<label>/<id>.<ext>. `webdataset`: OUT/<split>-NNNNNN.tar.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// A new or empty folder.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Samples per WebDataset shard.
        #[arg(long, default_value_t = 1000, value_name = "N")]
        per_shard: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Imagefolder,
    Webdataset,
}

/// A command's output: for people, or for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Jsonl,
    Table,
}

mod engines;
mod models;
mod store;

pub use engines::*;
pub use models::*;
pub use store::*;
