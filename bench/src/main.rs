//! `users-bench`: a load benchmark of the origin.
//!
//! Creates its own database `users_bench_<ts>`, applies the migrations, seeds a million users
//! with SQL, starts the origin in-process (its own tokio runtime, the OWASP Argon2 parameters,
//! Redis under a key prefix of its own, rate limits too high to matter), drives HTTP load at it
//! (closed-loop saturation, then an open-loop fixed rate at half of it) for each scenario,
//! measures the Argon2 hashing limit, overloads login, and writes `bench/results.json` and
//! `docs/benchmarks.md`. The database, the Redis keys and the data directory are removed at the
//! end, also on error or Ctrl-C.
//!
//! Run it with `scripts/bench.sh` (a release build); `--help` lists the options.

mod cpu;
mod figures;
mod load;
mod report;
mod seed;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use users_core::cursor::{Cursor, CursorKey, Sort};
use uuid::Uuid;

use crate::figures::{median, round3};
use crate::load::{RunStats, Target};
use crate::seed::{SEED_PASSWORD, seeded_id, seeded_username};

const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Rate limits far above anything the bench sends.
const UNLIMITED: &str = "100000000/60s";
const PAGE_LIMIT: u64 = 20;
const DEEP_PAGE: u64 = 10_000;
const USAGE: &str = "\
users-bench: load benchmark of the origin (see docs/benchmarks.md)

usage: users-bench [options]
  --out PATH              JSON results (default bench/results.json)
  --md PATH               markdown report (default docs/benchmarks.md)
  --render JSON           only rewrite the markdown report from an earlier results file
  --users N               seeded users (default 1000000)
  --duration S            seconds of each measured run (default 15)
  --warmup S              seconds of warm-up before each scenario (default 3)
  --concurrency C         workers of the read scenarios' saturation runs (default 16)
  --auth-concurrency C    workers of the login/register saturation runs (default 8)
  --overload-duration S   seconds of the login overload run (default 8)
Environment: RUST_LOG filters the origin's logs (default error,tower_http=off).";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Args {
    #[serde(skip)]
    out: PathBuf,
    #[serde(skip)]
    md: PathBuf,
    #[serde(skip)]
    render: Option<PathBuf>,
    users: u64,
    duration_s: f64,
    warmup_s: f64,
    concurrency: usize,
    auth_concurrency: usize,
    overload_duration_s: f64,
    pause_s: f64,
}

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let mut a = Self {
            out: "bench/results.json".into(),
            md: "docs/benchmarks.md".into(),
            render: None,
            users: 1_000_000,
            duration_s: 15.0,
            warmup_s: 3.0,
            concurrency: 16,
            auth_concurrency: 8,
            overload_duration_s: 8.0,
            pause_s: 1.0,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = it
                .next()
                .ok_or_else(|| anyhow!("{flag} needs a value\n\n{USAGE}"))?;
            let bad = |e: &dyn std::fmt::Display| anyhow!("{flag} {value:?}: {e}");
            match flag.as_str() {
                "--out" => a.out = value.into(),
                "--md" => a.md = value.into(),
                "--render" => a.render = Some(value.into()),
                "--users" => a.users = value.parse().map_err(|e| bad(&e))?,
                "--duration" => a.duration_s = value.parse().map_err(|e| bad(&e))?,
                "--warmup" => a.warmup_s = value.parse().map_err(|e| bad(&e))?,
                "--concurrency" => a.concurrency = value.parse().map_err(|e| bad(&e))?,
                "--auth-concurrency" => a.auth_concurrency = value.parse().map_err(|e| bad(&e))?,
                "--overload-duration" => {
                    a.overload_duration_s = value.parse().map_err(|e| bad(&e))?;
                }
                _ => bail!("unknown option {flag}\n\n{USAGE}"),
            }
        }
        if a.users < 2 * PAGE_LIMIT + 2 {
            bail!("--users must be at least {}", 2 * PAGE_LIMIT + 2);
        }
        if a.concurrency == 0 || a.auth_concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        Ok(a)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s)
    }
    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }
    fn pause(&self) -> Duration {
        Duration::from_secs_f64(self.pause_s)
    }
}

/// What this run owns and must remove.
#[derive(Debug, Clone)]
struct Names {
    db: String,
    redis_prefix: String,
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(json) = &args.render {
        return match report::render(json, &args.md) {
            Ok(summary) => {
                eprintln!("==> wrote {} from {}", args.md.display(), json.display());
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("!! {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "error,tower_http=off".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let build = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name(name)
            .enable_all()
            .build()
    };
    let (loadgen_rt, origin_rt) = match (build("loadgen"), build("origin")) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot start the runtimes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let db = format!("users_bench_{ts}");
    let names = Names {
        redis_prefix: format!("bench:{db}:"),
        data_dir: std::env::temp_dir().join(format!("users-bench-{ts}-{}", std::process::id())),
        db,
    };

    let origin = origin_rt.handle().clone();
    let outcome = loadgen_rt.block_on({
        let names = names.clone();
        let args = args.clone();
        async move {
            let run = tokio::spawn(run(args, names, origin, cores));
            tokio::select! {
                joined = run => joined.unwrap_or_else(|e| Err(anyhow!("the bench panicked: {e}"))),
                _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
            }
        }
    });

    // Cleanup, whatever happened: stop the origin, then drop what the run created.
    origin_rt.shutdown_timeout(Duration::from_secs(5));
    loadgen_rt.block_on(async {
        match seed::drop_database(&names.db).await {
            Ok(()) => eprintln!("==> dropped database {}", names.db),
            Err(e) => eprintln!("!! could not drop database {}: {e:#}", names.db),
        }
        match seed::delete_redis_keys(REDIS_URL, &names.redis_prefix).await {
            Ok(n) => eprintln!("==> deleted {n} Redis keys under {}", names.redis_prefix),
            Err(e) => eprintln!(
                "!! could not clean Redis prefix {}: {e:#}",
                names.redis_prefix
            ),
        }
    });
    let _ = std::fs::remove_dir_all(&names.data_dir);
    loadgen_rt.shutdown_timeout(Duration::from_secs(2));

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

fn log(msg: impl std::fmt::Display) {
    eprintln!("==> {msg}");
}

/// Everything the scenarios share.
struct Env {
    args: Args,
    cores: usize,
    client: reqwest::Client,
    base: String,
    admin_token: String,
    db: String,
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get_as_admin(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header(AUTHORIZATION, format!("Bearer {}", self.admin_token))
    }

    /// One run with its CPU use.
    async fn measure<F: Future<Output = RunStats>>(&self, run: F) -> RunStats {
        let before = cpu::snapshot(&self.db);
        let mut stats = run.await;
        let after = cpu::snapshot(&self.db);
        if let (Some(b), Some(a)) = (before, after) {
            stats.cpu = cpu::between(&b, &a, self.cores);
        }
        stats
    }

    /// The origin's counters (`name value` lines without labels).
    async fn metrics(&self) -> HashMap<String, f64> {
        let Ok(resp) = self.client.get(self.url("/metrics")).send().await else {
            return HashMap::new();
        };
        let text = resp.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_owned(), v.trim().parse().ok()?))
            })
            .collect()
    }
}

/// A pseudo-random permutation of the seeded users 2..=n (user 1 is the cache-hit target):
/// sequence number `k` maps to a distinct user for every `k < n - 1`.
#[derive(Debug, Clone, Copy)]
struct Permutation {
    a: u128,
    b: u128,
    m: u128,
}

impl Permutation {
    fn new(n: u64) -> Self {
        let m = u128::from(n - 1);
        let gcd = |mut x: u128, mut y: u128| {
            while y != 0 {
                (x, y) = (y, x % y);
            }
            x
        };
        let mut a = 2_654_435_761_u128 % m;
        while a < 2 || gcd(a, m) != 1 {
            a += 1;
        }
        Self { a, b: 7_919 % m, m }
    }

    fn user(&self, k: u64) -> u64 {
        let i = (u128::from(k) * self.a + self.b) % self.m;
        2 + u64::try_from(i).unwrap_or(0)
    }
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    pub request: String,
    pub saturation: RunStats,
    pub half_rate: RunStats,
    pub extra: Value,
}

/// The Argon2 hashing limit measured in this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hashing {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    /// One Argon2id hash on one thread into a reused memory buffer
    /// (`hash_password_into_with_memory`): the algorithm's own cost. Samples in ms.
    pub single_thread_ms: Vec<f64>,
    /// The same, timed again right after the login runs: the machine's speed drifts on shared
    /// hosts, so the limit is taken from the samples on both sides of the login measurement.
    #[serde(default)]
    pub single_thread_after_ms: Vec<f64>,
    /// Median of `single_thread_ms` and `single_thread_after_ms` together.
    pub median_ms: f64,
    /// CPU time per hash of those samples, from `/proc` (10 ms ticks over all samples); above
    /// the wall time never, below it when other processes took the core meanwhile.
    pub cpu_ms_per_hash: Option<f64>,
    /// `cores ÷ median`: logins per second if every core did nothing but hash.
    pub limit_rps: f64,
    /// One hash through the PHC API the origin calls (`PasswordHasher::hash_password`), which
    /// allocates and fills the 19 MiB of blocks on every call. Samples in ms.
    pub phc_single_thread_ms: Vec<f64>,
    pub phc_median_ms: f64,
    /// `cores ÷ phc_median`.
    pub phc_limit_rps: f64,
    /// Hashes per second with one thread per core hashing at once into reused buffers
    /// (caches and memory bandwidth shared; buffers faulted in before the clock starts).
    pub parallel_rps: f64,
    pub hash_workers: usize,
    pub hash_queue: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overload {
    pub rate_rps: f64,
    pub stats: RunStats,
    pub share_503: f64,
    pub p50_503_ms: Option<f64>,
    pub p99_503_ms: Option<f64>,
    /// Requests refused because the hashing queue was full (origin counter).
    pub hash_rejections: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub date: String,
    pub git_commit: String,
    pub command: String,
    pub build: String,
    pub machine: Value,
    pub params: Value,
    pub seed: seed::SeedReport,
    pub scenarios: Vec<Scenario>,
    pub hashing: Hashing,
    pub overload: Overload,
    pub targets: Vec<TargetCheck>,
    pub total_s: f64,
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_once(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("argon2: {e}"))?
        .to_string())
}

/// The origin's configuration.
fn origin_vars(names: &Names, admin_password: &str) -> HashMap<String, String> {
    [
        ("DATABASE_URL", format!("{}/{}", seed::PG_BASE, names.db)),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("DATA_DIR", names.data_dir.display().to_string()),
        ("ADMIN_USERNAME", "benchadmin".to_owned()),
        ("ADMIN_EMAIL", "benchadmin@bench.test".to_owned()),
        ("ADMIN_PASSWORD", admin_password.to_owned()),
        ("ARGON2_M_KIB", "19456".to_owned()),
        ("ARGON2_T", "2".to_owned()),
        ("ARGON2_P", "1".to_owned()),
        ("REDIS_URL", REDIS_URL.to_owned()),
        ("REDIS_PREFIX", names.redis_prefix.clone()),
        ("RATE_LIMIT_AUTH_IP", UNLIMITED.to_owned()),
        ("RATE_LIMIT_USER", UNLIMITED.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn run(
    args: Args,
    names: Names,
    origin: tokio::runtime::Handle,
    cores: usize,
) -> anyhow::Result<Results> {
    let started = Instant::now();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let loadavg_start = cpu::loadavg();
    log(format!(
        "load average {loadavg_start:?} on {cores} cores; database {}",
        names.db
    ));

    std::fs::create_dir_all(&names.data_dir).context("create DATA_DIR")?;
    let admin_password = format!(
        "violet-harbor-copper-lantern-{}",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let vars = origin_vars(&names, &admin_password);
    let config =
        users_origin::Config::from_lookup(|k| vars.get(k).cloned()).map_err(|e| anyhow!("{e}"))?;
    let params = Params::new(
        config.hashing.m_kib,
        config.hashing.t,
        config.hashing.p,
        None,
    )
    .map_err(|e| anyhow!("argon2 params: {e}"))?;

    // The database and the seed.
    seed::create_database(&names.db).await?;
    let seed_hash = {
        let params = params.clone();
        tokio::task::spawn_blocking(move || hash_once(&params, SEED_PASSWORD)).await??
    };
    log(format!("seeding {} users", args.users));
    let seed_report = seed::seed(&names.db, args.users, &seed_hash).await?;
    log(format!(
        "seeded in {:.1} s (insert {:.1} s, roles {:.1} s, indexes {:.1} s, vacuum+analyze {:.1} s)",
        seed_report.total_s,
        seed_report.insert_users_s,
        seed_report.insert_roles_s,
        seed_report.create_indexes_s,
        seed_report.vacuum_analyze_s
    ));
    let pg = seed::connect(&names.db).await?;
    let pg_version: String = pg.query_one("SHOW server_version", &[]).await?.get(0);

    // The origin, in-process on its own runtime.
    let hash_workers = config.hashing.workers;
    let hash_queue = config.hashing.queue;
    let pool_size = config.database_pool_size;
    let cache_ttl = config.redis.cache_ttl;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = origin.spawn(async move {
        let app = users_origin::Application::build(config).await?;
        let _ = addr_tx.send(app.local_addr());
        app.run_with_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
    });
    let addr = match addr_rx.await {
        Ok(addr) => addr,
        Err(_) => {
            return Err(match server.await {
                Ok(Err(e)) => e.context("the origin did not start"),
                Ok(Ok(())) => anyhow!("the origin stopped at once"),
                Err(e) => anyhow!("the origin panicked: {e}"),
            });
        }
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let base = format!("http://{addr}");
    log(format!("origin listening on {base}"));
    let resp = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"login": "benchadmin", "password": admin_password}))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::OK {
        bail!("admin login: {status} {body}");
    }
    let admin_token = body["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("admin login: no access_token in {body}"))?
        .to_owned();
    let env = Env {
        args,
        cores,
        client,
        base,
        admin_token,
        db: names.db.clone(),
    };

    let perm = Permutation::new(env.args.users);
    // Shared by every target that takes a fresh seeded user, so none is used twice.
    let fresh = Arc::new(AtomicU64::new(0));
    let mut scenarios = Vec::new();

    // Cached read: always the same user, so after the first request it is a cache hit.
    let hit_id = seeded_id(1);
    let target = {
        let env_client = env.client.clone();
        let url = env.url(&format!("/users/{hit_id}"));
        let auth = format!("Bearer {}", env.admin_token);
        Target::new(200, move |_| {
            env_client.get(&url).header(AUTHORIZATION, &auth)
        })
    };
    probe(&target, "cache hit").await?;
    scenarios.push(
        cache_scenario(
            &env,
            "get_user_cache_hit",
            "GET /users/{id}, cache hit",
            format!("GET /users/{hit_id} (seeded user #1, admin token), the same id every time"),
            &target,
        )
        .await?,
    );

    // Cache miss: a different seeded user each request, never one requested before.
    let target = {
        let env_client = env.client.clone();
        let base = env.base.clone();
        let auth = format!("Bearer {}", env.admin_token);
        let mut t = Target::new(200, move |k| {
            env_client
                .get(format!("{base}/users/{}", seeded_id(perm.user(k))))
                .header(AUTHORIZATION, &auth)
        });
        t.seq = Arc::clone(&fresh);
        t
    };
    probe(&target, "cache miss").await?;
    scenarios.push(
        cache_scenario(
            &env,
            "get_user_cache_miss",
            "GET /users/{id}, cache miss",
            "GET /users/{id} with a different seeded user each request (a pseudo-random \
             permutation of the seeded users: no id is requested twice in the run, so the \
             cache never holds it)"
                .to_owned(),
            &target,
        )
        .await?,
    );

    // Listing: page 1 and the page DEEP_PAGE pages deep.
    let page1_path = format!("/users?limit={PAGE_LIMIT}");
    let deep_page = DEEP_PAGE.min(env.args.users / PAGE_LIMIT).max(2);
    let offset = i64::try_from(PAGE_LIMIT * (deep_page - 1))? - 1;
    let (micros, id) = seed::row_at(&pg, offset).await?;
    let cursor = Cursor {
        sort: Sort::CreatedAsc,
        key: CursorKey::Micros(micros),
        id,
    };
    let deep_path = format!("/users?limit={PAGE_LIMIT}&cursor={}", cursor.encode());
    check_listing(&env, &pg, &page1_path, &deep_path, offset).await?;
    for (name, title, path, request) in [
        (
            "list_page_1",
            "GET /users?limit=20, page 1",
            page1_path.clone(),
            format!("GET {page1_path} (admin token)"),
        ),
        (
            "list_deep_page",
            "GET /users?limit=20, page 10 000",
            deep_path.clone(),
            format!(
                "GET /users?limit={PAGE_LIMIT}&cursor=… (admin token): page {deep_page}, the \
                 cursor of row #{} in (created_at, id) order, exactly what following \
                 next_cursor {} times sends; answers {PAGE_LIMIT} items",
                offset + 1,
                deep_page - 1
            ),
        ),
    ] {
        let target = {
            let env_client = env.client.clone();
            let url = env.url(&path);
            let auth = format!("Bearer {}", env.admin_token);
            Target::new(200, move |_| {
                env_client.get(&url).header(AUTHORIZATION, &auth)
            })
        };
        let mut s = scenario(&env, name, title, request, &target, env.args.concurrency).await?;
        s.extra = if name == "list_deep_page" {
            json!({
                "page": deep_page,
                "cursor_row": offset + 1,
                "plan": explain_listing(&pg, Some((micros, id))).await?,
            })
        } else {
            json!({"page": 1, "plan": explain_listing(&pg, None).await?})
        };
        scenarios.push(s);
    }

    // The hashing limit, measured now, on one thread, with the origin idle.
    log("timing Argon2id hashes");
    let hashing = {
        let params = params.clone();
        tokio::task::spawn_blocking(move || time_hashing(&params, cores)).await??
    };
    let hashing = Hashing {
        m_kib: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
        hash_workers,
        hash_queue,
        ..hashing
    };
    log(format!(
        "one hash {:.1} ms (median of {}; {:.1} ms through the PHC API); limit {:.1} logins/s on \
         {cores} cores; {:.1} hashes/s measured with {cores} threads",
        hashing.median_ms,
        hashing.single_thread_ms.len(),
        hashing.phc_median_ms,
        hashing.limit_rps,
        hashing.parallel_rps
    ));

    // Login as seeded users, each at most once.
    let login_target = {
        let env_client = env.client.clone();
        let url = env.url("/auth/login");
        let mut t = Target::new(200, move |k| {
            env_client
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(format!(
                    r#"{{"login":"{}","password":"{SEED_PASSWORD}"}}"#,
                    seeded_username(perm.user(k))
                ))
        });
        t.seq = Arc::clone(&fresh);
        t
    };
    probe(&login_target, "login").await?;
    let mut login = scenario(
        &env,
        "login",
        "POST /auth/login",
        format!(
            "POST /auth/login JSON as a seeded user (a different one each request; password \
             known, hash seeded with m={} KiB, t={}, p={})",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ),
        &login_target,
        env.args.auth_concurrency,
    )
    .await?;
    // Timed again now: the limit is the median of the samples on both sides of the login runs.
    let after = {
        let params = params.clone();
        tokio::task::spawn_blocking(move || single_hashes(&params))
            .await??
            .0
    };
    let hashing = hashing.with_samples_after(after, cores);
    log(format!(
        "one hash {:.1} ms after the login runs (median of {:?}); limit over both sides {:.1} \
         logins/s",
        median(&hashing.single_thread_after_ms),
        hashing.single_thread_after_ms,
        hashing.limit_rps
    ));
    login.extra = json!({
        "hash_limit_rps": hashing.limit_rps,
        "share_of_limit": round3(login.saturation.ok_rps / hashing.limit_rps),
        "phc_limit_rps": hashing.phc_limit_rps,
        "share_of_phc_limit": round3(login.saturation.ok_rps / hashing.phc_limit_rps),
    });
    let login_sat_rps = login.saturation.ok_rps;
    scenarios.push(login);

    // Registration with fresh usernames.
    let run_tag = format!("{:x}", (ts_secs() % 0xf_ffff));
    let target = {
        let env_client = env.client.clone();
        let url = env.url("/auth/register");
        Target::new(201, move |k| {
            let username = format!("rg{run_tag}x{k}");
            env_client
                .post(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(format!(
                    r#"{{"username":"{username}","email":"{username}@bench.test","password":"quartz-meadow-falcon-tundra-7319"}}"#
                ))
        })
    };
    probe(&target, "register").await?;
    scenarios.push(
        scenario(
            &env,
            "register",
            "POST /auth/register",
            "POST /auth/register JSON with a fresh username each request (zxcvbn policy check, \
             Argon2id hash, insert, role grant, audit)"
                .to_owned(),
            &target,
            env.args.auth_concurrency,
        )
        .await?,
    );

    // Overload: logins at twice the hashing limit (or twice what login sustained, if more:
    // on a machine shared with other work the timed hash can come out slow, and the overload
    // must still exceed what the origin can serve).
    let rate = 2.0 * hashing.limit_rps.max(login_sat_rps);
    log(format!(
        "overload: logins at {rate:.0}/s (2 × max(hashing limit, login saturation)) for {} s",
        env.args.overload_duration_s
    ));
    let before = env.metrics().await;
    let stats = env
        .measure(load::open(
            &login_target,
            rate,
            Duration::from_secs_f64(env.args.overload_duration_s),
        ))
        .await;
    let after = env.metrics().await;
    let counter = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let s503 = stats.status(503).cloned();
    let overload = Overload {
        rate_rps: round3(rate),
        share_503: round3(
            s503.as_ref().map_or(0, |l| l.count) as f64 / stats.requests.max(1) as f64,
        ),
        p50_503_ms: s503.as_ref().map(|l| l.p50_ms),
        p99_503_ms: s503.as_ref().map(|l| l.p99_ms),
        hash_rejections: counter(&after, "users_hash_rejections_total")
            - counter(&before, "users_hash_rejections_total"),
        stats,
    };
    log(format!(
        "overload: {} requests, {:.1} % 503 (p50 {:?} ms, p99 {:?} ms), {:?}",
        overload.stats.requests,
        overload.share_503 * 100.0,
        overload.p50_503_ms,
        overload.p99_503_ms,
        overload.stats.error_kinds
    ));

    // Stop the origin.
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => log(format!("the origin stopped with an error: {e:#}")),
        Ok(Err(e)) => log(format!("the origin panicked: {e}")),
        Err(_) => log("the origin did not stop within 30 s"),
    }

    let targets = report::check_targets(&scenarios, &hashing, &overload);
    let machine = json!({
        "nproc": cores,
        "cpu_model": cpu_model(),
        "mem_total_mb": mem_total_mb(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "postgres": pg_version,
        "redis": seed::redis_version(REDIS_URL).await,
        "loadavg_start": loadavg_start,
        "loadavg_end": cpu::loadavg(),
    });
    let params_json = json!({
        "users": env.args.users,
        "run": env.args,
        "origin": {
            "argon2": {"m_kib": params.m_cost(), "t": params.t_cost(), "p": params.p_cost()},
            "hash_workers": hash_workers,
            "hash_queue": hash_queue,
            "database_pool_size": pool_size,
            "cache": "redis",
            "cache_ttl_s": cache_ttl,
            "rate_limit_auth_ip": UNLIMITED,
            "rate_limit_user": UNLIMITED,
            "runtime_worker_threads": cores,
        },
        "loadgen": {
            "client": "reqwest (HTTP/1.1 keep-alive), in the same process on its own tokio runtime",
            "runtime_worker_threads": cores,
            "half_rate": "open loop at half the measured saturation throughput (ok answers)",
        },
        "page_limit": PAGE_LIMIT,
        "deep_page": deep_page,
    });
    Ok(Results {
        date,
        git_commit: git_commit(),
        command: "scripts/bench.sh".to_owned(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
        machine,
        params: params_json,
        seed: seed_report,
        scenarios,
        hashing,
        overload,
        targets,
        total_s: round3(started.elapsed().as_secs_f64()),
    })
}

fn ts_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sends one request of `target` and fails unless it gets the expected status.
async fn probe(target: &Target, what: &str) -> anyhow::Result<()> {
    let k = target
        .seq
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let resp = (target.make)(k).send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status != target.expect {
        bail!("{what}: expected {}, got {status}: {text}", target.expect);
    }
    Ok(())
}

/// Checks that the hand-built cursor is what the API itself issues and that the deep page
/// holds the rows it should.
async fn check_listing(
    env: &Env,
    pg: &tokio_postgres::Client,
    page1: &str,
    deep: &str,
    offset: i64,
) -> anyhow::Result<()> {
    let body: Value = env.get_as_admin(page1).send().await?.json().await?;
    let issued = body["next_cursor"]
        .as_str()
        .ok_or_else(|| anyhow!("page 1 has no next_cursor: {body}"))?;
    let (micros, id) = seed::row_at(pg, i64::try_from(PAGE_LIMIT)? - 1).await?;
    let built = Cursor {
        sort: Sort::CreatedAsc,
        key: CursorKey::Micros(micros),
        id,
    }
    .encode();
    if built != issued {
        bail!(
            "the cursor built from the database ({built}) differs from page 1's next_cursor ({issued})"
        );
    }
    let resp = env.get_as_admin(deep).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if !status.is_success() || items.len() != usize::try_from(PAGE_LIMIT)? {
        bail!(
            "the deep page answered {status} with {} items (expected {PAGE_LIMIT}): {body}",
            items.len()
        );
    }
    let (_, first) = seed::row_at(pg, offset + 1).await?;
    if items[0]["id"].as_str() != Some(first.to_string().as_str()) {
        bail!(
            "the deep page starts at {}, expected {first}",
            items[0]["id"]
        );
    }
    Ok(())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the listing query the origin runs (`db::users::list` with
/// no filter, `created_at` order, `LIMIT 21`), after the cursor if any: the plan's nodes, the
/// planning and execution times and the buffers touched (the third of three runs, so warm).
async fn explain_listing(
    pg: &tokio_postgres::Client,
    after: Option<(i64, Uuid)>,
) -> anyhow::Result<Value> {
    const COLUMNS: &str = "u.id, u.username, u.email, u.display_name, u.is_active, \
        u.security_version, u.version, u.created_at, u.updated_at, \
        ARRAY(SELECT ur.role_name FROM user_roles ur WHERE ur.user_id = u.id \
        ORDER BY ur.role_name) AS roles";
    let limit = i64::try_from(PAGE_LIMIT)? + 1;
    let mut plan = Value::Null;
    for _ in 0..3 {
        let row = match after {
            None => {
                let sql = format!(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT {COLUMNS} FROM users u \
                     ORDER BY u.created_at ASC, u.id ASC LIMIT $1"
                );
                pg.query_one(&sql, &[&limit]).await?
            }
            Some((micros, id)) => {
                let at =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)?;
                let sql = format!(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT {COLUMNS} FROM users u \
                     WHERE (u.created_at, u.id) > ($1, $2) \
                     ORDER BY u.created_at ASC, u.id ASC LIMIT $3"
                );
                pg.query_one(&sql, &[&at, &id, &limit]).await?
            }
        };
        plan = row.get(0);
    }
    let top = &plan[0];
    let mut nodes = Vec::new();
    walk_plan(&top["Plan"], &mut nodes);
    Ok(json!({
        "nodes": nodes.join(" → "),
        "planning_ms": top["Planning Time"],
        "execution_ms": top["Execution Time"],
        "shared_hit_blocks": top["Plan"]["Shared Hit Blocks"],
        "shared_read_blocks": top["Plan"]["Shared Read Blocks"],
    }))
}

fn walk_plan(node: &Value, out: &mut Vec<String>) {
    let Some(kind) = node["Node Type"].as_str() else {
        return;
    };
    out.push(match node["Index Name"].as_str() {
        Some(index) => format!("{kind} using {index}"),
        None => kind.to_owned(),
    });
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            walk_plan(child, out);
        }
    }
}

/// Warm-up, saturation (closed loop), then a fixed rate at half the saturation throughput.
async fn scenario(
    env: &Env,
    name: &'static str,
    title: &'static str,
    request: String,
    target: &Target,
    concurrency: usize,
) -> anyhow::Result<Scenario> {
    log(format!("{name}: warm-up {} s", env.args.warmup_s));
    let _ = load::closed(target, concurrency, env.args.warmup()).await;
    tokio::time::sleep(env.args.pause()).await;
    let saturation = env
        .measure(load::closed(target, concurrency, env.args.duration()))
        .await;
    log(format!(
        "{name}: saturation {:.0} req/s (ok {:.0}), p50 {} ms, p99 {} ms, errors {}",
        saturation.throughput_rps,
        saturation.ok_rps,
        saturation.latency.p50_ms,
        saturation.latency.p99_ms,
        saturation.errors
    ));
    if saturation.ok == 0 {
        bail!(
            "{name}: no successful answer at saturation: {:?}",
            saturation.error_kinds
        );
    }
    tokio::time::sleep(env.args.pause()).await;
    let rate = saturation.ok_rps / 2.0;
    let half_rate = env
        .measure(load::open(target, rate, env.args.duration()))
        .await;
    log(format!(
        "{name}: at {rate:.0} req/s: achieved {:.0}, p50 {} ms, p99 {} ms, errors {}",
        half_rate.throughput_rps,
        half_rate.latency.p50_ms,
        half_rate.latency.p99_ms,
        half_rate.errors
    ));
    tokio::time::sleep(env.args.pause()).await;
    Ok(Scenario {
        name: name.to_owned(),
        title: title.to_owned(),
        request,
        saturation,
        half_rate,
        extra: Value::Null,
    })
}

/// A scenario of `GET /users/{id}` with the origin's cache counters around it.
async fn cache_scenario(
    env: &Env,
    name: &'static str,
    title: &'static str,
    request: String,
    target: &Target,
) -> anyhow::Result<Scenario> {
    let before = env.metrics().await;
    let mut s = scenario(env, name, title, request, target, env.args.concurrency).await?;
    let after = env.metrics().await;
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let (hits, misses) = (
        delta("users_cache_hits_total"),
        delta("users_cache_misses_total"),
    );
    s.extra = json!({
        "cache_hits": hits,
        "cache_misses": misses,
        "hit_ratio": if hits + misses > 0.0 { round3(hits / (hits + misses)) } else { 0.0 },
    });
    Ok(s)
}

/// Single-thread hash samples per timing.
const HASH_SAMPLES: usize = 9;

/// One Argon2id hash of the seed password into `blocks`.
fn raw_hash(params: &Params, blocks: &mut [argon2::Block]) -> anyhow::Result<()> {
    let mut out = [0_u8; 32];
    argon2(params)
        .hash_password_into_with_memory(
            SEED_PASSWORD.as_bytes(),
            b"bench-salt-16-by",
            &mut out,
            blocks,
        )
        .map_err(|e| anyhow!("argon2: {e}"))
}

/// Times single hashes on this thread into a reused buffer (after one untimed hash that
/// faults the buffer in): wall-time samples in ms, and the CPU time per hash.
fn single_hashes(params: &Params) -> anyhow::Result<(Vec<f64>, Option<f64>)> {
    let mut blocks = vec![argon2::Block::default(); params.block_count()];
    raw_hash(params, &mut blocks)?;
    let mut samples = Vec::with_capacity(HASH_SAMPLES);
    let cpu_before = cpu::thread_ticks();
    for _ in 0..HASH_SAMPLES {
        let t = Instant::now();
        raw_hash(params, &mut blocks)?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu_ms = match (cpu_before, cpu::thread_ticks()) {
        // Clock ticks are 10 ms (USER_HZ = 100).
        (Some(a), Some(b)) => Some(round3((b - a) as f64 * 10.0 / HASH_SAMPLES as f64)),
        _ => None,
    };
    Ok((samples, cpu_ms))
}

impl Hashing {
    /// Adds the samples timed after the login runs; the median and limit then cover both.
    fn with_samples_after(mut self, after: Vec<f64>, cores: usize) -> Self {
        self.single_thread_after_ms = after.into_iter().map(round3).collect();
        let all: Vec<f64> = self
            .single_thread_ms
            .iter()
            .chain(&self.single_thread_after_ms)
            .copied()
            .collect();
        self.median_ms = round3(median(&all));
        self.limit_rps = round3(cores as f64 * 1000.0 / self.median_ms);
        self
    }
}

/// Times single Argon2id hashes on this thread (into a reused buffer, then through the PHC
/// API), then `cores` threads hashing at once.
fn time_hashing(params: &Params, cores: usize) -> anyhow::Result<Hashing> {
    const PARALLEL_EACH: usize = 8;
    let (samples, cpu_ms) = single_hashes(params)?;
    hash_once(params, SEED_PASSWORD)?;
    let mut phc = Vec::with_capacity(HASH_SAMPLES);
    for _ in 0..HASH_SAMPLES {
        let t = Instant::now();
        hash_once(params, SEED_PASSWORD)?;
        phc.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // Each thread faults its buffer in with an untimed hash, as the origin's threads have long
    // done; the clock starts when all are ready.
    let ready = std::sync::Barrier::new(cores + 1);
    let t = std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                let mut blocks = vec![argon2::Block::default(); params.block_count()];
                let _ = raw_hash(params, &mut blocks);
                ready.wait();
                for _ in 0..PARALLEL_EACH {
                    let _ = raw_hash(params, &mut blocks);
                }
            });
        }
        ready.wait();
        Instant::now()
    });
    let parallel_rps = (cores * PARALLEL_EACH) as f64 / t.elapsed().as_secs_f64();
    let (median_ms, phc_median_ms) = (median(&samples), median(&phc));
    Ok(Hashing {
        m_kib: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
        single_thread_ms: samples.into_iter().map(round3).collect(),
        single_thread_after_ms: Vec::new(),
        median_ms: round3(median_ms),
        cpu_ms_per_hash: cpu_ms,
        limit_rps: round3(cores as f64 * 1000.0 / median_ms),
        phc_single_thread_ms: phc.into_iter().map(round3).collect(),
        phc_median_ms: round3(phc_median_ms),
        phc_limit_rps: round3(cores as f64 * 1000.0 / phc_median_ms),
        parallel_rps: round3(parallel_rps),
        hash_workers: 0,
        hash_queue: 0,
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// `HEAD`'s commit, with `-dirty` when the work tree has changes.
fn git_commit() -> String {
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = out(&["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty = out(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}
