//! `lennonnet search`, `engines`, `mirror` and `sheet`: arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::*;

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
