//! `ezpulze-worker`: sends queued messages to the WhatsApp Graph API and applies status
//! webhooks. Configuration from the environment (`--help` lists every setting).
#![forbid(unsafe_code)]

use ezpulze_common::Config;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "ezpulze-worker: sends queued WhatsApp messages and applies status webhooks.

Usage: ezpulze-worker [--help]

Runs until SIGTERM or Ctrl-C: then it stops taking jobs, lets sends already started finish
and hands jobs not started yet back to the queue.
";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}\n{}", Config::help());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(a) = args.first() {
        eprintln!("unknown argument {a:?} (try --help)");
        return std::process::ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    ezpulze_runtime::telemetry::init_tracing(config.log_format);
    let cancel = CancellationToken::new();
    ezpulze_runtime::shutdown::cancel_on_signal(cancel.clone(), "finishing sends in flight");
    match ezpulze_worker::run(config, cancel).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            std::process::ExitCode::FAILURE
        }
    }
}
