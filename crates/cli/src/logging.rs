use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Logs go to stderr, never stdout (stdout carries data). `RUST_LOG` wins over `-v`/`-q`.
///
/// Logs come from any thread, the index's own (sled logs through the `log` crate, bridged
/// here) among them, so writing one must never fail or panic: a closed stderr (`2>&-`, a pipe
/// whose reader left) silently drops the message instead. tracing-subscriber's own report of
/// a failed write (an `eprintln!`, which panics on a closed stderr) is switched off for the
/// same reason.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QuietStderr)
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .compact()
        .init();
}

/// Set once stderr refused a write: later messages are not even attempted.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `bytes` to stderr, ignoring every error (a closed stderr drops them). Never panics.
pub fn stderr_write(bytes: &[u8]) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut e = std::io::stderr().lock();
    if e.write_all(bytes).and_then(|()| e.flush()).is_err() {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// `eprint!` that never panics: a closed stderr drops the text.
#[macro_export]
macro_rules! eprint_quiet {
    ($($arg:tt)*) => {
        $crate::logging::stderr_write(format!($($arg)*).as_bytes())
    };
}

/// The log writer: stderr, errors ignored.
struct QuietStderr;

impl<'a> MakeWriter<'a> for QuietStderr {
    type Writer = QuietWriter;

    fn make_writer(&'a self) -> Self::Writer {
        QuietWriter
    }
}

struct QuietWriter;

impl Write for QuietWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        stderr_write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
