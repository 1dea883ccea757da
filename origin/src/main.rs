//! The `users-origin` binary: `users-origin` serves; `users-origin migrate` only migrates;
//! `users-origin import --from-seed-db URL [--dry-run]` moves the seed design's users in.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use users_origin::import::seed;
use users_origin::{Application, Config, startup};

/// mimalloc rather than the system allocator: a request makes many small short-lived
/// allocations across the runtime's threads, where glibc's malloc spent a sixth of a cached
/// read's CPU (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: users-origin [serve | migrate | import --from-seed-db URL [--dry-run]]";

#[tokio::main]
async fn main() -> ExitCode {
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
            return ExitCode::from(2);
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
        Some("import") => return import(config).await,
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}: {USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "users-origin failed");
            ExitCode::FAILURE
        }
    }
}

/// `import --from-seed-db URL [--dry-run]`: exit 0 when every user came in, 1 when some
/// failed (each is named), 2 when nothing could be read (bad arguments, URL or schema).
async fn import(config: Config) -> ExitCode {
    let mut url = None;
    let mut dry_run = false;
    let mut args = std::env::args().skip(2);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--from-seed-db" => url = args.next(),
            "--dry-run" => dry_run = true,
            other => match other.strip_prefix("--from-seed-db=") {
                Some(value) => url = Some(value.to_owned()),
                None => {
                    eprintln!("unknown argument {other:?}\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let Some(url) = url else {
        eprintln!("import needs --from-seed-db URL\n{USAGE}");
        return ExitCode::from(2);
    };
    let seed_db = match seed::parse_url(&url) {
        Ok(seed_db) => seed_db,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = startup::migrate(&config).await {
        eprintln!("{e:#}");
        return ExitCode::from(2);
    }
    let state = match startup::state(config) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} users ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = match seed::run(&state, &seed_db, dry_run, &bar).await {
        Ok(report) => report,
        Err(e) => {
            bar.abandon();
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    bar.finish();
    for (name, why) in &report.roles_refused {
        eprintln!("role {name:?} not imported ({why}): its holders came without it");
    }
    for (id, errors) in &report.failures {
        let why: Vec<String> = errors
            .iter()
            .map(|p| format!("{}: {}", p.field, p.detail))
            .collect();
        eprintln!("seed user {id} failed: {}", why.join("; "));
    }
    let s = &report.summary;
    let created = if report.roles_created.is_empty() {
        String::new()
    } else {
        format!("; roles created: {}", report.roles_created.join(", "))
    };
    println!(
        "{}{} users: {} created, {} updated, {} unchanged, {} failed{created}",
        if s.dry_run { "dry run: " } else { "" },
        s.rows,
        s.created,
        s.updated,
        s.skipped,
        s.failed
    );
    if s.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
