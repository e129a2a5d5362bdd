//! Progress bars on stderr (indicatif), the binary's implementation of
//! [`lennonnet_core::Progress`]. Bars are drawn only when stderr is a terminal and progress is
//! not turned off; otherwise nothing is drawn and the stages' own log lines tell the story.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lennonnet_core::{NoProgress, Progress};

pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

/// Bars if stderr is a terminal and `enabled`, else a silent reporter.
pub fn reporter(enabled: bool) -> Box<dyn Progress> {
    if enabled && std::io::stderr().is_terminal() {
        Box::new(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        })
    } else {
        Box::new(NoProgress)
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{prefix:>20} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix:>20} {spinner} {pos} {per_sec} {msg}")
                    .expect("valid template"),
            ),
        };
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        let bar = self.multi.add(bar);
        self.bars
            .lock()
            .expect("bars poisoned")
            .insert(stage.to_string(), bar);
    }

    fn advance(&self, stage: &str, n: u64) {
        if let Some(bar) = self.bars.lock().expect("bars poisoned").get(stage) {
            bar.inc(n);
        }
    }

    fn finish(&self, stage: &str) {
        if let Some(bar) = self.bars.lock().expect("bars poisoned").remove(stage) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn note(&self, stage: &str, message: &str) {
        if let Some(bar) = self.bars.lock().expect("bars poisoned").get(stage) {
            bar.set_message(message.to_string());
        }
    }
}
