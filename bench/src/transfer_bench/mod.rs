//! The import and export benchmark (`users-bench-transfer`, SPEC §10): the release-built
//! origin as a child process (so its memory is its own) on a database of its own; 100 000
//! accounts imported with their bcrypt hashes through `POST /admin/users/import`, 1000 rows a
//! request, one request at a time as a migration sends them; then `GET /admin/users/export
//! ?include=password_hash` read to the end, at 10 000 and at 100 000 accounts, with the origin's
//! peak resident memory during each export (`VmHWM`, reset through `/proc/<pid>/clear_refs`
//! before it). Writes `bench/transfer-results.json` and the transfer section of
//! `docs/benchmarks.md`.
//!
//! `scripts/bench.sh --transfer` builds the origin in release and runs it.

mod report;
pub use self::report::MARKERS;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::figures::round3;
use crate::host;
use crate::stack::origin::{Admin, OriginProcess, OriginVars, login};
use crate::stack::services::{self, Scratch};

/// Accounts imported in all.
pub const USERS: usize = 100_000;
/// Rows per import request (the route's limit).
pub const BATCH: usize = 1000;
/// The account counts an export is measured at.
pub const EXPORT_AT: [usize; 2] = [10_000, USERS];
/// bcrypt's cost in the imported hashes (passlib's default).
const BCRYPT_COST: u32 = 12;

/// What `bench/transfer-results.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferResults {
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub import: ImportFigures,
    pub exports: Vec<ExportFigures>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportFigures {
    pub rows: usize,
    pub rows_per_request: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub request_p50_ms: f64,
    pub request_p99_ms: f64,
    /// The format of the imported hashes.
    pub hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportFigures {
    /// Accounts in the database (and lines in the export).
    pub accounts: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub mib_per_s: f64,
    /// The origin's resident memory just before the export.
    pub rss_before_mib: f64,
    /// Its peak resident memory during the export.
    pub peak_rss_mib: f64,
}

/// The whole of `users-bench-transfer` (it takes no options).
pub fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let db = format!("users_bench_transfer_{}", host::unix_secs());
    let scratch = Scratch {
        redis_prefix: format!("bench-transfer:{db}:"),
        data_dir: std::env::temp_dir()
            .join(format!("users-bench-transfer-data-{}", std::process::id())),
        db,
    };
    let rt = host::multi_thread("bench-transfer", host::cores())?;
    let result = rt.block_on(host::until_interrupted(run(root.clone(), scratch.clone())));
    let _ = rt.block_on(scratch.remove());
    let results = result?;
    std::fs::write(
        root.join("bench/transfer-results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let md = root.join("docs/benchmarks.md");
    report::write(&results, &md)?;
    eprintln!(
        "==> wrote bench/transfer-results.json and the transfer section of {}",
        md.display()
    );
    Ok(())
}

async fn run(root: PathBuf, scratch: Scratch) -> anyhow::Result<TransferResults> {
    services::create_database(&scratch.db).await?;
    let admin = Admin {
        username: "admin",
        email: "admin@bench-transfer.test",
        password: format!(
            "transfer-bench-{}-passphrase",
            uuid::Uuid::new_v4().simple()
        ),
    };
    let vars = OriginVars::new(&scratch, &admin).with("PUBLIC_URL", "http://bench-transfer.test");
    let (origin, base) = OriginProcess::start(&root, &vars).await?;
    eprintln!("==> users-origin (release) on {base}, pid {}", origin.pid());
    let client = reqwest::Client::new();
    let token = login(&client, &base, admin.username, &admin.password).await?;

    let hash = bcrypt::hash("a password the bench never types", BCRYPT_COST)?;
    let mut latencies = Histogram::<u64>::new(3)?;
    let mut exports = Vec::new();
    let mut import_time = 0.0;
    for (n, first) in (0..USERS).step_by(BATCH).enumerate() {
        let body = batch(first, &hash);
        let started = Instant::now();
        let resp = client
            .post(format!("{base}/admin/users/import"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        let took = started.elapsed();
        import_time += took.as_secs_f64();
        latencies.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX))?;
        let summary = text.lines().last().unwrap_or_default();
        if !status.is_success() || !summary.contains(&format!("\"created\":{BATCH}")) {
            bail!("import request {n}: {status} {summary}");
        }
        let accounts = first + BATCH;
        if EXPORT_AT.contains(&accounts) {
            // The bootstrap admin is exported too.
            exports.push(export(&client, &base, &token, origin.pid(), accounts + 1).await?);
        }
    }
    drop(origin);
    Ok(TransferResults {
        date: host::now_rfc3339(),
        commit: host::git_head().unwrap_or_default(),
        machine: format!(
            "{} ({} cores, {} MiB)",
            host::cpu_model(),
            host::cores(),
            host::mem_total_mb().unwrap_or(0)
        ),
        import: ImportFigures {
            rows: USERS,
            rows_per_request: BATCH,
            seconds: round3(import_time),
            rows_per_s: round3(f64_of(USERS) / import_time),
            request_p50_ms: round3(ms(latencies.value_at_quantile(0.5))),
            request_p99_ms: round3(ms(latencies.value_at_quantile(0.99))),
            hash: format!("bcrypt $2b$, cost {BCRYPT_COST}"),
        },
        exports,
    })
}

/// Rows `first..first + BATCH` as NDJSON, each with `hash`.
fn batch(first: usize, hash: &str) -> String {
    (first..first + BATCH)
        .map(|i| {
            let row = serde_json::json!({
                "username": format!("moved{i}"),
                "email": format!("moved{i}@bench-transfer.test"),
                "display_name": format!("Moved User {i}"),
                "external_id": i.to_string(),
                "email_verified": true,
                "password_hash": hash,
            });
            format!("{row}\n")
        })
        .collect()
}

/// Reads a whole export with hashes; its throughput and the origin's memory meanwhile.
async fn export(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pid: u32,
    accounts: usize,
) -> anyhow::Result<ExportFigures> {
    let rss_before = status_kib(pid, "VmRSS")?;
    // Writing 5 resets the peak (`VmHWM`) to the current resident size.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .context("reset the origin's peak memory (/proc/<pid>/clear_refs)")?;
    let started = Instant::now();
    let mut resp = client
        .get(format!("{base}/admin/users/export?include=password_hash"))
        .bearer_auth(token)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("export: {}", resp.status());
    }
    let (mut bytes, mut lines) = (0u64, 0usize);
    while let Some(chunk) = resp.chunk().await? {
        bytes += u64::try_from(chunk.len()).unwrap_or(0);
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = status_kib(pid, "VmHWM")?;
    if lines != accounts {
        bail!("export: {lines} lines, {accounts} accounts");
    }
    let mib = |kib: u64| round3(f64_of_u64(kib) / 1024.0);
    eprintln!(
        "==> export of {accounts}: {seconds:.2} s, peak {:.1} MiB",
        mib(peak)
    );
    Ok(ExportFigures {
        accounts,
        bytes,
        seconds: round3(seconds),
        rows_per_s: round3(f64_of(accounts) / seconds),
        mib_per_s: round3(f64_of_u64(bytes) / 1_048_576.0 / seconds),
        rss_before_mib: mib(rss_before),
        peak_rss_mib: mib(peak),
    })
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = Path::new("/proc").join(pid.to_string()).join("status");
    let status = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} in {}", path.display()))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn f64_of(n: usize) -> f64 {
    n as f64
}

fn f64_of_u64(n: u64) -> f64 {
    n as f64
}
