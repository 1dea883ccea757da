//! The edge benchmark (`users-bench-edge`): each edge runtime in turn — the Cloudflare worker
//! under `wrangler dev` (local workerd) and the Spin component in the wasmtime test host
//! (`users-spin-host`) — in front of one in-process origin. Measures `/edge/health`, a refused
//! token, a JWT-verified cached profile read and a JWT-verified forwarded read, each at
//! saturation and at a fixed moderate rate, in one run, and writes `bench/edge-results.json` and
//! the edge section of `docs/benchmarks.md`.
//!
//! Needs the worker built (`scripts/build-worker.sh`), wrangler installed (`npm ci`), the Spin
//! component built (`scripts/build-spin.sh`) and the host built in release
//! (`cargo build --release -p users-spin-host`); `scripts/bench.sh --edge` does all of it.
//!
//! [`main`] names what the run owns and cleans up; `run` starts the origin and each edge
//! ([`crate::stack`]); `scenarios` measures through one edge; `report` writes the section.

mod report;
pub use self::report::MARKERS;
mod scenarios;

use std::path::PathBuf;

use self::scenarios::{DURATION, EdgeResults, RATE, measure_runtime};
use crate::host;
use crate::stack::edge::{start_spin, start_wrangler};
use crate::stack::origin::{Admin, InProcessOrigin, OriginVars, UNLIMITED};
use crate::stack::services::{self, Scratch};

const SECRET: &str = "bench-edge-secret-0123456789";
const PUBLIC_URL: &str = "http://bench-edge.test";
const WRANGLER: &str = "wrangler dev 4.86.0 (local workerd), Cloudflare adapter";
const SPIN: &str = "users-spin-host (wasmtime 49.0.5), Spin adapter";

/// The whole of `users-bench-edge` (it takes no options).
pub fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize()?;
    let db = format!("users_bench_edge_{}", host::unix_secs());
    let scratch = Scratch {
        redis_prefix: format!("bench-edge:{db}:"),
        data_dir: std::env::temp_dir()
            .join(format!("users-bench-edge-data-{}", std::process::id())),
        db,
    };
    let rt = host::multi_thread("bench-edge", host::cores())?;
    let result = rt.block_on(host::until_interrupted(run(root.clone(), scratch.clone())));
    // Whatever happened; failures to remove are not reported.
    let _ = rt.block_on(scratch.remove());
    let results = result?;
    std::fs::write(
        root.join("bench/edge-results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let md_path = root.join("docs/benchmarks.md");
    report::write(&results, &md_path)?;
    eprintln!(
        "==> wrote bench/edge-results.json and the edge section of {}",
        md_path.display()
    );
    Ok(())
}

/// The edge's variables (upper-case names; the Spin host takes them in lower case).
fn edge_vars(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ORIGIN_URL", origin.to_owned()),
        ("JWT_ISSUER", PUBLIC_URL.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("RATE_LIMIT_AUTH_IP", UNLIMITED.into()),
        ("RATE_LIMIT_USER", UNLIMITED.into()),
        ("PROFILE_CACHE_TTL", "3600".into()),
    ]
}

/// The origin (cheap Argon2 parameters: the edge is measured, not hashing), then each runtime
/// in front of it, one after the other.
async fn run(root: PathBuf, scratch: Scratch) -> anyhow::Result<EdgeResults> {
    services::create_database(&scratch.db).await?;
    let admin = Admin {
        username: "admin",
        email: "admin@bench-edge.test",
        password: format!("edge-bench-{}-passphrase", uuid::Uuid::new_v4().simple()),
    };
    let config = OriginVars::new(&scratch, &admin)
        .with("PUBLIC_URL", PUBLIC_URL)
        .with("EDGE_SHARED_SECRET", SECRET)
        .with("ARGON2_M_KIB", "1024")
        .with("ARGON2_T", "1")
        .config()?;
    let origin = InProcessOrigin::start_with(&tokio::runtime::Handle::current(), config).await?;
    let vars = edge_vars(&origin.url());

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut runtimes = Vec::new();
    for runtime in [WRANGLER, SPIN] {
        let start = if runtime == WRANGLER {
            start_wrangler
        } else {
            start_spin
        };
        let (process, edge) = start(&root, &vars)?;
        eprintln!("==> {runtime} on {edge}");
        let admin = (admin.username, admin.password.as_str());
        let result = measure_runtime(&client, &edge, admin, runtime).await;
        drop(process);
        runtimes.push(result?);
    }
    if let Err(e) = origin.stop().await {
        eprintln!("==> {e:#}");
    }
    Ok(EdgeResults {
        date: host::now_rfc3339(),
        commit: host::git_head().unwrap_or_default(),
        rate_rps: RATE,
        duration_s: DURATION.as_secs_f64(),
        runtimes,
    })
}
