//! The `lennonnet` binary: a thin layer over the stage crates. It parses the command line, sets
//! up logging, runs one command and turns its result into an exit code.
//!
//! Exit codes:
//! - 0: success (also when stdout is closed early, as by `| head`);
//! - 1: the command failed (IO, network, a failed check);
//! - 2: bad usage or bad config: a wrong flag, an unreadable or invalid config file.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod logging;
mod progress;
mod table;

/// Exit code of a failed command.
const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage or bad config.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version are "errors" to clap, printed to stdout with code 0.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(args.verbose, args.quiet);
    match cmd::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let mut text = format!("error: {err}\n");
            for cause in err.chain().skip(1) {
                text += &format!("  caused by: {cause}\n");
            }
            logging::stderr_write(text.as_bytes());
            if err.chain().any(|c| {
                c.downcast_ref::<lennonnet_config::ConfigError>().is_some()
                    || c.downcast_ref::<cmd::UsageError>().is_some()
            }) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

/// A write to a closed pipe, directly or through serde_json (which wraps the IO error).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
