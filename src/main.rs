//! The `magnetar` binary: thin subcommands over the library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use magnetar::config::Config;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "magnetar",
    version,
    about = "Torrent-first video streaming server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// A TOML file layered over the embedded defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print an API token for a user (signed with the server's secret).
    Token {
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. "1h", "30d".
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// `user` or `admin` (admin may list and delete every user's streams).
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the effective configuration (secrets redacted).
    Config {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Seed the bundled fixtures locally and serve them: a playable URL in one command.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder with the fixtures (default: ./fixtures).
        #[arg(long)]
        fixtures: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("magnetar: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            init_tracing();
            runtime()?.block_on(async { magnetar::run(config, shutdown_on_signal()).await })
        }
        Command::Token {
            user,
            ttl,
            role,
            config,
        } => {
            let config = Config::load(config.as_deref())?;
            if user.trim().is_empty() {
                anyhow::bail!("--user must not be empty");
            }
            let role =
                magnetar::auth::Role::from_claim(Some(&role)).unwrap_or(magnetar::auth::Role::User);
            println!("{}", magnetar::api_keys(&config)?.issue(&user, role, ttl)?);
            Ok(())
        }
        Command::Config { config } => {
            print!("{}", Config::load(config.as_deref())?.to_redacted_toml());
            Ok(())
        }
        Command::Demo { config, fixtures } => {
            let mut config = Config::load(config.as_deref())?;
            config.storage.data_dir = config.storage.data_dir.join("demo");
            init_tracing();
            let fixtures = fixtures.unwrap_or_else(magnetar::demo::default_fixtures);
            runtime()?.block_on(async {
                magnetar::demo::run(config, &fixtures, shutdown_on_signal()).await
            })
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,librqbit=warn,librqbit_dht=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

/// A token cancelled on Ctrl-C or SIGTERM. Call it inside the runtime.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        trigger.cancel();
    });
    token
}
