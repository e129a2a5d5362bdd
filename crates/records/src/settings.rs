//! The settings that decide a training run's results, as recorded in `run.json`: one type per
//! concept, shared by the config (`[train]`), the training stage and the command line.

use serde::{Deserialize, Serialize};

/// What is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// A frozen backbone: its features are computed once and cached; only the head trains.
    Head,
    /// The last stages and the head train (`trainable_prefixes`, default the last stage).
    Partial,
    /// Everything trains.
    Full,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Head, Strategy::Partial, Strategy::Full];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Partial => "partial",
            Self::Full => "full",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown strategy `{s}`: expected head, partial or full"))
    }
}

/// How class imbalance is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Plain loss, plain shuffling.
    None,
    /// Each class's loss weighted by `images / (classes × class images)`.
    WeightedLoss,
    /// Each epoch draws as many images as the train split holds, with replacement, every class
    /// equally often.
    Sampler,
}

/// The settings that decide a run's results: recorded in run.json, and checked on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// The architecture (`lennonnet model list`).
    pub model: String,
    /// Pretrained weights: a safetensors or .pth file, or `hub:ORG/REPO[/FILE]`; none: random
    /// initialisation from the seed.
    pub weights: Option<String>,
    pub strategy: Strategy,
    /// `partial`: the name prefixes that train besides the head; empty: the model's last stage.
    pub trainable_prefixes: Vec<String>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Input side in pixels, a multiple of 32; none: the model's pretrained input size.
    pub input_px: Option<usize>,
    pub seed: u64,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub warmup_epochs: f64,
    /// The learning rate at the end of the cosine decay, as a fraction of `learning_rate`.
    pub final_lr_fraction: f64,
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this; none: no clipping.
    pub grad_clip_norm: Option<f64>,
    pub balance: Balance,
    pub patience_epochs: usize,
    pub threshold_metric: ThresholdMetric,
    /// `head`, and `partial` with `cache_boundary`: cached views per training image (1: the
    /// centre crop only).
    pub feature_views: usize,
    /// `partial`: compute the frozen layers once per view and cache their output (the input of
    /// the first trainable block), then train the rest on the cache.
    #[serde(default)]
    pub cache_boundary: bool,
    pub augment: AugmentOptions,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// bf16 compute (CUDA only).
    pub bf16: bool,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            model: "efficientnet_lite0".into(),
            weights: None,
            strategy: Strategy::Head,
            trainable_prefixes: Vec::new(),
            epochs: 30,
            batch_size: 32,
            input_px: None,
            seed: 0,
            learning_rate: 1e-3,
            weight_decay: 0.05,
            warmup_epochs: 1.0,
            final_lr_fraction: 0.01,
            label_smoothing: 0.1,
            grad_clip_norm: Some(1.0),
            balance: Balance::WeightedLoss,
            patience_epochs: 10,
            threshold_metric: ThresholdMetric::BalancedAccuracy,
            feature_views: 1,
            cache_boundary: false,
            augment: AugmentOptions::default(),
            device: "cpu".into(),
            bf16: false,
        }
    }
}

/// What the decision threshold maximises on the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMetric {
    /// The mean of the two classes' recalls: right for imbalanced classes.
    BalancedAccuracy,
    /// F1 of the positive class.
    F1,
}

impl ThresholdMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BalancedAccuracy => "balanced_accuracy",
            Self::F1 => "f1",
        }
    }
}

/// The training augmentation's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentOptions {
    /// Off: training images get the eval transform.
    pub enabled: bool,
    /// Smallest crop area, as a fraction of the cached square.
    pub crop_scale_min: f64,
    pub crop_ratio_min: f64,
    pub crop_ratio_max: f64,
    pub hflip_prob: f64,
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub grayscale_prob: f64,
}

impl Default for AugmentOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            crop_scale_min: 0.25,
            crop_ratio_min: 3.0 / 4.0,
            crop_ratio_max: 4.0 / 3.0,
            hflip_prob: 0.5,
            brightness: 0.3,
            contrast: 0.3,
            saturation: 0.3,
            grayscale_prob: 0.1,
        }
    }
}

impl AugmentOptions {
    /// Checks ranges; the error names the option.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let unit_interval = |name, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err((name, format!("expected a number in [0, 1], found {v}")))
            }
        };
        unit_interval("crop_scale_min", self.crop_scale_min)?;
        if self.crop_scale_min <= 0.0 {
            return Err(("crop_scale_min", "expected more than 0".into()));
        }
        unit_interval("hflip_prob", self.hflip_prob)?;
        unit_interval("grayscale_prob", self.grayscale_prob)?;
        unit_interval("brightness", self.brightness)?;
        unit_interval("contrast", self.contrast)?;
        unit_interval("saturation", self.saturation)?;
        if !(self.crop_ratio_min > 0.0 && self.crop_ratio_min <= self.crop_ratio_max) {
            return Err((
                "crop_ratio_min",
                format!(
                    "expected 0 < crop_ratio_min <= crop_ratio_max, found {} and {}",
                    self.crop_ratio_min, self.crop_ratio_max
                ),
            ));
        }
        Ok(())
    }
}
