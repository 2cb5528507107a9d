//! The `event-host` binary: parse the configuration, start logging, run the
//! host until SIGINT or SIGTERM; or, with `new`, create a handler crate.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use event_host::Config;
use event_host::scaffold::Template;

#[derive(Parser)]
#[command(
    name = "event-host",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create a handler crate under handlers/ from a template: it builds as
    /// it is, has a test, and `--dev` serves it within seconds.
    New {
        /// The crate's name, e.g. audit-log (also the handler's name).
        name: String,
        /// The topic it consumes.
        #[arg(long, default_value = "user-events")]
        topic: String,
        /// The event type it handles.
        #[arg(long, default_value = "USER_REGISTERED")]
        event_type: String,
        /// The event-host repository to create it in.
        #[arg(long, default_value = ".")]
        workspace_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::New {
        name,
        topic,
        event_type,
        workspace_dir,
    }) = cli.command
    {
        let dir = Template::new(&name, &topic, &event_type)?.write(&workspace_dir)?;
        println!(
            "created {dir}\n\n  test it:   cargo test -p {name}\n  run it:    cargo run -- --dev   (already running? it is live in a few seconds)\n  edit it:   {dir}/src/lib.rs",
            dir = dir.display()
        );
        return Ok(());
    }
    let mut config = cli.config;
    config.kafka_client_vars = event_host::kafka_config::ClientVars::from_env();
    // Kept to the end: dropping it exports the last spans.
    let telemetry = event_host::telemetry::init(config.log_format)?;
    tracing::info!(
        ?config,
        exporting_traces = telemetry.is_exporting(),
        "starting event-host"
    );
    let addr = config.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is the port in use? set PORT)"))?;
    tracing::info!("API listening on http://{}", listener.local_addr()?);
    event_host::run(config, listener, shutdown_signal()).await
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
