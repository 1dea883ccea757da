//! Edge benchmark: each edge runtime in turn — the Cloudflare worker under `wrangler dev`
//! (local workerd) and the Spin component in the wasmtime test host (`users-spin-host`) — in
//! front of one in-process origin. Measures `/edge/health`, a refused token, a JWT-verified
//! cached profile read and a JWT-verified forwarded read, each at saturation and at a fixed
//! moderate rate, in one run, and writes `bench/edge-results.json` and the edge section of
//! `docs/benchmarks.md`.
//!
//! Needs the worker built (`scripts/build-worker.sh`), wrangler installed (`npm ci`), the Spin
//! component built (`scripts/build-spin.sh`) and the host built in release
//! (`cargo build --release -p users-spin-host`); `scripts/bench.sh --edge` does all of it.

#[path = "../cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "../figures.rs"]
#[allow(dead_code)]
mod figures;
#[path = "../load.rs"]
#[allow(dead_code)]
mod load;

use std::collections::HashMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use load::{RunStats, Target};
use serde::Serialize;

const SECRET: &str = "bench-edge-secret-0123456789";
const PUBLIC_URL: &str = "http://bench-edge.test";
/// Fixed moderate rate of every scenario, requests per second.
const RATE: f64 = 100.0;
const DURATION: Duration = Duration::from_secs(10);
const WARMUP: Duration = Duration::from_secs(2);
const CONCURRENCY: usize = 8;

#[derive(Serialize)]
struct ScenarioResult {
    name: &'static str,
    request: &'static str,
    saturation: RunStats,
    fixed_rate: RunStats,
}

#[derive(Serialize)]
struct RuntimeResults {
    runtime: &'static str,
    scenarios: Vec<ScenarioResult>,
    cached_minus_health_p50_ms: f64,
    target_met: bool,
}

#[derive(Serialize)]
struct EdgeResults {
    date: String,
    commit: String,
    rate_rps: f64,
    duration_s: f64,
    runtimes: Vec<RuntimeResults>,
}

const WRANGLER: &str = "wrangler dev 4.86.0 (local workerd), Cloudflare adapter";
const SPIN: &str = "users-spin-host (wasmtime 49.0.5), Spin adapter";

/// An edge process in its own process group, stopped on drop.
struct EdgeProcess {
    child: Child,
    /// Where the process keeps its state, removed after it stops.
    dir: Option<PathBuf>,
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The edge's variables (upper-case names; the Spin host takes them in lower case).
fn edge_vars(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ORIGIN_URL", origin.to_owned()),
        ("JWT_ISSUER", PUBLIC_URL.to_owned()),
        ("EDGE_SHARED_SECRET", SECRET.to_owned()),
        ("RATE_LIMIT_AUTH_IP", "100000000/60s".into()),
        ("RATE_LIMIT_USER", "100000000/60s".into()),
        ("PROFILE_CACHE_TTL", "3600".into()),
    ]
}

/// The production Spin component in the release-built test host.
fn start_spin(root: &Path, origin: &str) -> anyhow::Result<(EdgeProcess, String)> {
    let wasm = root.join("target/wasm32-wasip2/release/users_edge.wasm");
    let host = root.join("target/release/users-spin-host");
    if !wasm.exists() || !host.exists() {
        bail!(
            "{} or {} is missing: run scripts/build-spin.sh and cargo build --release -p users-spin-host",
            wasm.display(),
            host.display()
        );
    }
    let port = free_port()?;
    let mut cmd = Command::new(host);
    cmd.arg("--wasm")
        .arg(&wasm)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--store", "default", "--store", "profiles"]);
    for (k, v) in edge_vars(origin) {
        cmd.args(["--var", &format!("{}={v}", k.to_ascii_lowercase())]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = cmd.spawn().context("start users-spin-host")?;
    Ok((
        EdgeProcess { child, dir: None },
        format!("http://127.0.0.1:{port}"),
    ))
}

fn start_wrangler(root: &Path, origin: &str) -> anyhow::Result<(EdgeProcess, String)> {
    let shim = root.join("build/worker/shim.mjs");
    if !shim.exists() {
        bail!("{} is missing: run scripts/build-worker.sh", shim.display());
    }
    let dir = std::env::temp_dir().join(format!("users-bench-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let toml = std::fs::read_to_string(root.join("wrangler.toml"))?;
    let mut out = String::new();
    let mut skipping = false;
    for line in toml.lines() {
        if line.trim() == "[build]" {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with("command") {
            skipping = false;
            continue;
        }
        if line.starts_with("main = ") {
            out.push_str(&format!("main = \"{}\"\n", shim.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let config = dir.join("wrangler.toml");
    std::fs::write(&config, out)?;
    let port = free_port()?;
    let vars: Vec<String> = edge_vars(origin)
        .into_iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.args(["dev", "-c"]).arg(&config);
    cmd.args(["--ip", "127.0.0.1", "--port", &port.to_string()]);
    cmd.args([
        "--inspector-port",
        &free_port()?.to_string(),
        "--persist-to",
    ])
    .arg(dir.join("state"));
    for v in &vars {
        cmd.args(["--var", v]);
    }
    cmd.env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true")
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = cmd.spawn().context("start wrangler (npm ci first)")?;
    Ok((
        EdgeProcess {
            child,
            dir: Some(dir),
        },
        format!("http://127.0.0.1:{port}"),
    ))
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{url} did not become ready")
}

async fn drop_database(db: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{db}" WITH (FORCE)"#))
            .await;
    }
}

async fn measure(name: &'static str, request: &'static str, target: &Target) -> ScenarioResult {
    let _ = load::closed(target, CONCURRENCY, WARMUP).await;
    let saturation = load::closed(target, CONCURRENCY, DURATION).await;
    let fixed_rate = load::open(target, RATE, DURATION).await;
    eprintln!(
        "==> {name}: saturation {:.0} req/s p50 {:.2} ms p99 {:.2} ms; at {RATE} req/s p50 {:.2} ms p99 {:.2} ms",
        saturation.ok_rps,
        saturation.latency.p50_ms,
        saturation.latency.p99_ms,
        fixed_rate.latency.p50_ms,
        fixed_rate.latency.p99_ms
    );
    ScenarioResult {
        name,
        request,
        saturation,
        fixed_rate,
    }
}

async fn run(root: PathBuf, db: String, prefix: String) -> anyhow::Result<EdgeResults> {
    let (mut pg, conn) = tokio_postgres::connect(
        "postgres://postgres@127.0.0.1:5432/postgres",
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    pg.batch_execute(&format!(r#"CREATE DATABASE "{db}""#))
        .await?;
    let _ = &mut pg;
    let data_dir =
        std::env::temp_dir().join(format!("users-bench-edge-data-{}", std::process::id()));
    let admin_password = format!("edge-bench-{}-passphrase", uuid::Uuid::new_v4().simple());
    let vars: HashMap<String, String> = [
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{db}"),
        ),
        ("LISTEN_ADDR", "127.0.0.1:0".into()),
        ("PUBLIC_URL", PUBLIC_URL.into()),
        ("ADMIN_USERNAME", "admin".into()),
        ("ADMIN_EMAIL", "admin@bench-edge.test".into()),
        ("ADMIN_PASSWORD", admin_password.clone()),
        ("EDGE_SHARED_SECRET", SECRET.into()),
        ("REDIS_URL", "redis://127.0.0.1:6379".into()),
        ("REDIS_PREFIX", prefix),
        ("RATE_LIMIT_AUTH_IP", "100000000/60s".into()),
        ("RATE_LIMIT_USER", "100000000/60s".into()),
        ("DATA_DIR", data_dir.display().to_string()),
        ("ARGON2_M_KIB", "1024".into()),
        ("ARGON2_T", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config =
        users_origin::Config::from_lookup(|k| vars.get(k).cloned()).map_err(|e| anyhow!("{e}"))?;
    let app = users_origin::Application::build(config).await?;
    let origin = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let mut runtimes = Vec::new();
    for runtime in [WRANGLER, SPIN] {
        let (process, edge) = if runtime == WRANGLER {
            start_wrangler(&root, &origin)?
        } else {
            start_spin(&root, &origin)?
        };
        eprintln!("==> {runtime} on {edge}");
        let result = measure_runtime(&client, &edge, &admin_password, runtime).await;
        drop(process);
        runtimes.push(result?);
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(EdgeResults {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        commit: String::from_utf8_lossy(
            &Command::new("git")
                .args(["rev-parse", "HEAD"])
                .output()?
                .stdout,
        )
        .trim()
        .to_owned(),
        rate_rps: RATE,
        duration_s: DURATION.as_secs_f64(),
        runtimes,
    })
}

/// The four scenarios through one running edge.
async fn measure_runtime(
    client: &reqwest::Client,
    edge: &str,
    admin_password: &str,
    runtime: &'static str,
) -> anyhow::Result<RuntimeResults> {
    wait_ready(client, &format!("{edge}/edge/health")).await?;
    let login: serde_json::Value = client
        .post(format!("{edge}/auth/login"))
        .json(&serde_json::json!({"login": "admin", "password": admin_password}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("login failed: {login}"))?
        .to_owned();

    let health = {
        let (c, u) = (client.clone(), format!("{edge}/edge/health"));
        Target::new(200, move |_| c.get(&u))
    };
    let cached = {
        let (c, u, t) = (client.clone(), format!("{edge}/users/me"), token.clone());
        Target::new(200, move |_| c.get(&u).bearer_auth(&t))
    };
    // Same token with its signature's last character changed: verified (and refused) at the
    // edge, before any state or cache look-up: the cost of verification alone.
    let forged = {
        let last = token.chars().last().unwrap_or('A');
        let swapped = if last == 'A' { 'B' } else { 'A' };
        let bad = format!("{}{swapped}", &token[..token.len() - 1]);
        let (c, u) = (client.clone(), format!("{edge}/users/me"));
        Target::new(401, move |_| c.get(&u).bearer_auth(&bad))
    };
    let forwarded = {
        let (c, u, t) = (
            client.clone(),
            format!("{edge}/users?limit=1"),
            token.clone(),
        );
        Target::new(200, move |_| c.get(&u).bearer_auth(&t))
    };
    let probe = client
        .get(format!("{edge}/users/me"))
        .bearer_auth(&token)
        .send()
        .await?;
    if probe.status() != 200 {
        bail!("GET /users/me through the edge answered {}", probe.status());
    }
    let scenarios = vec![
        measure(
            "edge health",
            "GET /edge/health (no token, no origin)",
            &health,
        )
        .await,
        measure(
            "token refused at the edge",
            "GET /users/me with a bad signature (JWT verification only, 401)",
            &forged,
        )
        .await,
        measure(
            "cached profile read",
            "GET /users/me (JWT verified, revocation and rate-limit state, profile cache hit)",
            &cached,
        )
        .await,
        measure(
            "forwarded read",
            "GET /users?limit=1 (JWT verified, revocation and rate-limit state, forwarded to the origin)",
            &forwarded,
        )
        .await,
    ];
    let gap = scenarios[2].fixed_rate.latency.p50_ms - scenarios[0].fixed_rate.latency.p50_ms;
    Ok(RuntimeResults {
        runtime,
        cached_minus_health_p50_ms: figures::round3(gap),
        target_met: gap <= 1.0,
        scenarios,
    })
}

fn markdown(r: &EdgeResults) -> String {
    let mut md = String::from(
        "<!-- edge:begin -->\n## Edge (Cloudflare worker under `wrangler dev`, Spin component in the wasmtime host)\n\n",
    );
    md.push_str(&format!(
        "Generated by `scripts/bench.sh --edge` (`bench/src/bin/edge.rs`) at {} on commit `{}`; raw figures in \
         `bench/edge-results.json`. Both runtimes in one run, one after the other, in front of the same in-process \
         origin with Redis; the load generator, the edge, the origin, PostgreSQL and Redis share the machine's 2 cores. \
         Each scenario: saturation with {CONCURRENCY} concurrent clients for {} s, then an open loop at {RATE} req/s \
         for {} s (latency from each request's scheduled send).\n\n",
        r.date, r.commit, r.duration_s, r.duration_s
    ));
    md.push_str("| runtime | scenario | request | saturation req/s | p50 ms | p99 ms | at 100 req/s: p50 ms | p99 ms | errors |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for rt in &r.runtimes {
        for s in &rt.scenarios {
            md.push_str(&format!(
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
                rt.runtime,
                s.name,
                s.request,
                s.saturation.ok_rps,
                s.saturation.latency.p50_ms,
                s.saturation.latency.p99_ms,
                s.fixed_rate.latency.p50_ms,
                s.fixed_rate.latency.p99_ms,
                s.saturation.errors + s.fixed_rate.errors
            ));
        }
    }
    md.push_str(&format!(
        "\nTarget: the cached read adds at most 1 ms p50 over `/edge/health` (at {RATE} req/s):\n\n"
    ));
    for rt in &r.runtimes {
        md.push_str(&format!(
            "- {}: **{:+.2} ms** → **{}** (verification alone {:+.2} ms; state and cache look-ups {:+.2} ms).\n",
            rt.runtime,
            rt.cached_minus_health_p50_ms,
            if rt.target_met { "PASS" } else { "MISS" },
            rt.scenarios[1].fixed_rate.latency.p50_ms - rt.scenarios[0].fixed_rate.latency.p50_ms,
            rt.scenarios[2].fixed_rate.latency.p50_ms - rt.scenarios[1].fixed_rate.latency.p50_ms,
        ));
    }
    md.push_str(
        "\nThe refused-token row is the same request verified and answered at the edge with no further call (header \
         parsing, Ed25519 verification in wasm, the problem body). For the worker, the rest of the cached read is the \
         Durable Object round trips (the global `Revocations` object and the per-user `RateLimiter` object, run \
         concurrently) and the Cache API look-up, through workerd's local emulation. For Spin, every request gets a \
         fresh instance (as Spin does) and the rest is key-value calls into the host: the revocation view, the \
         rate-limit read and write, the profile look-up and the stored key set.\n<!-- edge:end -->\n",
    );
    md
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize()?;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let db = format!("users_bench_edge_{ts}");
    let prefix = format!("bench-edge:{db}:");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(root.clone(), db.clone(), prefix.clone()));
    rt.block_on(async {
        drop_database(&db).await;
        if let Ok(client) = redis::Client::open("redis://127.0.0.1:6379")
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
        }
    });
    let results = result?;
    std::fs::write(
        root.join("bench/edge-results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let md_path = root.join("docs/benchmarks.md");
    let existing = std::fs::read_to_string(&md_path).unwrap_or_default();
    let section = markdown(&results);
    let updated = match (
        existing.find("<!-- edge:begin -->"),
        existing.find("<!-- edge:end -->"),
    ) {
        (Some(a), Some(b)) => {
            let rest = existing[b + "<!-- edge:end -->".len()..].trim_start_matches('\n');
            format!("{}{section}{rest}", &existing[..a])
        }
        _ => format!("{existing}\n{section}"),
    };
    std::fs::write(&md_path, updated)?;
    eprintln!(
        "==> wrote bench/edge-results.json and the edge section of {}",
        md_path.display()
    );
    Ok(())
}
