//! `lennonnet store` and `curate`: arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::*;

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
    /// With --from-run: only suspects of these splits (train, val, test, eval; comma-separated
    /// or repeated), e.g. `--split train,val,test` to review the training data first.
    #[arg(
        long = "split",
        value_name = "SPLIT",
        value_delimiter = ',',
        requires = "from_run"
    )]
    pub splits: Vec<lennonnet_core::Split>,
    /// With --from-run: only these suspects (content ids or unique prefixes), instead of --top.
    #[arg(long = "id", value_name = "ID", requires = "from_run")]
    pub ids: Vec<String>,
    /// With --from-run: print what would be quarantined, write nothing.
    #[arg(long, requires = "from_run")]
    pub dry_run: bool,
    /// With --from-run, on a mirror world only: instead of quarantining, a simulated reviewer
    /// decides each chosen suspect from the mirror's truth recorded in suspects.jsonl (it reads
    /// the truth of those images only): relabel to the true class, or confirm the label. Its
    /// decisions are `label_review` journal records by `simulated-reviewer (mirror truth)`,
    /// which the next `snapshot create` applies. For the demo and for measuring the suspect
    /// ranking; a person reviews with `lennonnet review`.
    #[arg(long, requires = "from_run")]
    pub simulated_reviewer: bool,
    /// Lift the review quarantine of these images (content ids or unique prefixes) and their
    /// near-duplicates, then curate as usual.
    #[arg(long, value_name = "ID", num_args = 1.., conflicts_with = "explain")]
    pub release: Vec<String>,
}
