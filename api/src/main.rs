//! `ezpulze-api`: serve the HTTP API (default) or apply migrations (`migrate`).
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use ezpulze_common::{db, Config};
use ezpulze_runtime::telemetry;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "ezpulze-api", about = "EzPulze HTTP API", after_help = Config::help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Replace an account's admin token with a new one and print it (for an operator who
    /// lost it, e.g. `make up` on a database whose default account it no longer knows).
    IssueAdminToken {
        /// The account's id.
        #[arg(long)]
        account: uuid::Uuid,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    telemetry::init_tracing(config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let pool = db::connect(&config).await?;
            db::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::IssueAdminToken { account } => {
            let token = ezpulze_api::recovery::issue_admin_token(&config, account).await?;
            println!("{token}");
            Ok(())
        }
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.api_addr)
                .await
                .with_context(|| format!("binding {}", config.api_addr))?;
            let cancel = CancellationToken::new();
            ezpulze_runtime::shutdown::cancel_on_signal(cancel.clone(), "draining requests");
            ezpulze_api::run(config, listener, cancel).await
        }
    }
}
