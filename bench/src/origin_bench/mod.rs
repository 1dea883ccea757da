//! The origin benchmark (`users-bench`).
//!
//! Creates its own database `users_bench_<ts>`, applies the migrations, seeds a million users
//! with SQL, starts the origin in-process (its own tokio runtime, the OWASP Argon2 parameters,
//! Redis under a key prefix of its own, rate limits too high to matter), drives HTTP load at it
//! (closed-loop saturation, then an open-loop fixed rate at half of it) for each scenario,
//! measures the Argon2 hashing limit, overloads login, and writes `bench/results.json` and
//! `docs/benchmarks.md`. The database, the Redis keys and the data directory are removed at the
//! end, also on error or Ctrl-C.
//!
//! [`main`] parses the command line (`args`), starts the two runtimes and cleans up; `run`
//! walks the steps. The scenarios: `reads` (cache hit and miss, listing), `auth` (login,
//! registration, overload), each measured by `scenario` with the shared `env`; `hashing`
//! times the Argon2 limit. `results` is what a run records; `report` writes it.

mod args;
mod auth;
mod env;
mod floor;
mod hashing;
mod reads;
mod report;
mod results;
mod run;
mod scenario;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use self::args::{Args, USAGE};
use self::results::Results;
use crate::host;
use crate::stack::services::Scratch;

/// The whole of `users-bench`: options from the command line, exit code 2 for bad options.
pub fn main() -> ExitCode {
    let args = match Args::parse_from(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(json) = &args.render {
        return render(json, &args.md);
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error,tower_http=off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();

    let cores = host::cores();
    let (loadgen_rt, origin_rt) = match (
        host::multi_thread("loadgen", cores),
        host::multi_thread("origin", cores),
    ) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start the runtimes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scratch = run::scratch(host::unix_secs());
    let origin = origin_rt.handle().clone();
    let outcome = loadgen_rt.block_on(host::until_interrupted(run::run(
        args.clone(),
        scratch.clone(),
        origin,
        cores,
    )));

    // Cleanup, whatever happened: stop the origin, then drop what the run created.
    origin_rt.shutdown_timeout(Duration::from_secs(5));
    loadgen_rt.block_on(remove(&scratch));
    loadgen_rt.shutdown_timeout(Duration::from_secs(2));
    finish(outcome, &args)
}

/// `--render`: only rewrites the markdown report from an earlier results file.
fn render(json: &Path, md: &Path) -> ExitCode {
    match report::render(json, md) {
        Ok(summary) => {
            eprintln!("==> wrote {} from {}", md.display(), json.display());
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("!! {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Removes what the run created, saying how it went.
async fn remove(scratch: &Scratch) {
    let removal = scratch.remove().await;
    match removal.database {
        Ok(()) => eprintln!("==> dropped database {}", scratch.db),
        Err(e) => eprintln!("!! could not drop database {}: {e:#}", scratch.db),
    }
    match removal.redis_keys {
        Ok(n) => eprintln!("==> deleted {n} Redis keys under {}", scratch.redis_prefix),
        Err(e) => eprintln!(
            "!! could not clean Redis prefix {}: {e:#}",
            scratch.redis_prefix
        ),
    }
}

/// Writes the results of a finished run, or says why there are none.
fn finish(outcome: anyhow::Result<Results>, args: &Args) -> ExitCode {
    match outcome {
        Ok(results) => match report::write(&results, &args.out, &args.md) {
            Ok(()) => {
                eprintln!("==> wrote {} and {}", args.out.display(), args.md.display());
                println!("{}", report::markdown_summary(&results));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("!! cannot write the results: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("!! benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
