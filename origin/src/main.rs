//! The `users-origin` binary: `users-origin` serves; `users-origin migrate` only migrates.

use tracing_subscriber::EnvFilter;
use users_origin::{Application, Config, startup};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let dotenv = dotenvy::dotenv();
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    if let Ok(path) = dotenv {
        tracing::info!(path = %path.display(), "loaded environment file");
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match std::env::args().nth(1).as_deref() {
        Some("migrate") => startup::migrate(&config).await.map(|applied| {
            tracing::info!(count = applied.len(), "migrations applied");
        }),
        None | Some("serve") => match Application::build(config).await {
            Ok(app) => app.run_until_stopped().await,
            Err(e) => Err(e),
        },
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}: use `serve` (default) or `migrate`"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "users-origin failed");
            std::process::ExitCode::FAILURE
        }
    }
}
