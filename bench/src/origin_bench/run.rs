//! One run of the origin benchmark, step by step: prepare the origin's configuration, create and
//! seed the database, start the origin, measure the reads, the listing, the hashing limit, login,
//! registration and the overload, stop the origin, and describe the machine and the parameters.

use std::time::Instant;

use anyhow::{Context as _, anyhow};
use argon2::Params;
use serde_json::{Value, json};
use tokio::runtime::Handle;
use uuid::Uuid;

use super::args::{Args, PAGE_LIMIT};
use super::env::{Env, log};
use super::results::Results;
use super::{auth, hashing, reads, report};
use crate::figures::round3;
use crate::seed::{self, SeedReport};
use crate::stack::origin::{Admin, InProcessOrigin, OriginVars, UNLIMITED};
use crate::stack::services::{self, Scratch};
use crate::{cpu, host};

/// What this run owns, named from the start time `ts`: database `users_bench_<ts>`, Redis prefix
/// `bench:users_bench_<ts>:` and a data directory in the temporary directory.
pub fn scratch(ts: u64) -> Scratch {
    let db = format!("users_bench_{ts}");
    Scratch {
        redis_prefix: format!("bench:{db}:"),
        data_dir: std::env::temp_dir().join(format!("users-bench-{ts}-{}", std::process::id())),
        db,
    }
}

/// Runs every step; the origin runs on `origin`, the load on the caller's runtime.
pub async fn run(
    args: Args,
    scratch: Scratch,
    origin: Handle,
    cores: usize,
) -> anyhow::Result<Results> {
    let started = Instant::now();
    let date = host::now_rfc3339();
    let loadavg_start = cpu::loadavg();
    log(format!(
        "load average {loadavg_start:?} on {cores} cores; database {}",
        scratch.db
    ));
    let setup = Setup::prepare(&scratch)?;
    let (seed, pg) = seed_database(&scratch.db, args.users, &setup.params).await?;
    let pg_version: String = pg.query_one("SHOW server_version", &[]).await?.get(0);

    // The origin, in-process on its own runtime.
    let server = InProcessOrigin::start_with(&origin, setup.config).await?;
    let env = Env::connect(
        args,
        cores,
        &server,
        &setup.admin.password,
        &scratch.db,
        origin.clone(),
    )
    .await?;

    let mut scenarios = vec![
        reads::cache_hit(&env).await?,
        reads::seed_read(&env).await?,
        reads::cache_miss(&env).await?,
    ];
    let (listing, deep_page) = reads::listing(&env, &pg).await?;
    scenarios.extend(listing);
    // The hashing limit, measured now, on one thread, with the origin idle.
    let (hash_workers, hash_queue) = (setup.settings.hash_workers, setup.settings.hash_queue);
    let hashing =
        hashing::time_before_logins(&setup.params, cores, hash_workers, hash_queue).await?;
    let (mut login, login_target) = auth::login(&env, &setup.params).await?;
    let hashing = hashing::time_after_logins(hashing, &setup.params, cores).await?;
    login.extra = auth::login_extra(&login, &hashing);
    let login_saturation_rps = login.saturation.ok_rps;
    scenarios.push(login);
    scenarios.push(auth::register(&env).await?);
    let overload =
        auth::overload(&env, &login_target, hashing.limit_rps, login_saturation_rps).await;

    if let Err(e) = server.stop().await {
        log(format!("{e:#}"));
    }
    let targets = report::check_targets(&scenarios, &hashing, &overload);
    Ok(Results {
        date,
        git_commit: host::git_commit(),
        command: "scripts/bench.sh".to_owned(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_owned(),
        machine: machine(cores, &pg_version, loadavg_start).await,
        params: params(&env.args, &setup.params, &setup.settings, cores, deep_page),
        seed,
        scenarios,
        hashing,
        overload,
        targets,
        total_s: round3(started.elapsed().as_secs_f64()),
    })
}

/// The origin's settings the report records, read before the configuration moves into it.
#[derive(Debug)]
struct OriginSettings {
    hash_workers: usize,
    hash_queue: usize,
    pool_size: usize,
    cache_ttl: u64,
}

/// The origin's configuration and what the run needs to know of it.
struct Setup {
    admin: Admin,
    config: users_origin::Config,
    settings: OriginSettings,
    /// The Argon2 parameters of the origin, for the seed hash and the timing.
    params: Params,
}

impl Setup {
    /// The data directory, the admin, and the origin's configuration: the OWASP Argon2
    /// parameters, Redis under the run's prefix, rate limits too high to matter.
    fn prepare(scratch: &Scratch) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&scratch.data_dir).context("create DATA_DIR")?;
        let admin = Admin {
            username: "benchadmin",
            email: "benchadmin@bench.test",
            password: format!(
                "violet-harbor-copper-lantern-{}",
                &Uuid::new_v4().simple().to_string()[..8]
            ),
        };
        let config = OriginVars::new(scratch, &admin)
            .with("ARGON2_M_KIB", "19456")
            .with("ARGON2_T", "2")
            .with("ARGON2_P", "1")
            .config()?;
        let params = Params::new(
            config.hashing.m_kib,
            config.hashing.t,
            config.hashing.p,
            None,
        )
        .map_err(|e| anyhow!("argon2 params: {e}"))?;
        let settings = OriginSettings {
            hash_workers: config.hashing.workers,
            hash_queue: config.hashing.queue,
            pool_size: config.database_pool_size,
            cache_ttl: config.redis.cache_ttl,
        };
        Ok(Self {
            admin,
            config,
            settings,
            params,
        })
    }
}

/// Creates the database and seeds `users` users with one hash made with `params`; returns the
/// seed's figures and a connection to the database.
async fn seed_database(
    db: &str,
    users: u64,
    params: &Params,
) -> anyhow::Result<(SeedReport, tokio_postgres::Client)> {
    services::create_database(db).await?;
    let seed_hash = hashing::seed_hash(params).await?;
    log(format!("seeding {users} users"));
    let report = seed::seed(db, users, &seed_hash).await?;
    log(format!(
        "seeded in {:.1} s (insert {:.1} s, roles {:.1} s, indexes {:.1} s, vacuum+analyze {:.1} s)",
        report.total_s,
        report.insert_users_s,
        report.insert_roles_s,
        report.create_indexes_s,
        report.vacuum_analyze_s
    ));
    Ok((report, services::connect(db).await?))
}

/// The machine the run happened on.
async fn machine(cores: usize, pg_version: &str, loadavg_start: Option<[f64; 3]>) -> Value {
    json!({
        "nproc": cores,
        "cpu_model": host::cpu_model(),
        "mem_total_mb": host::mem_total_mb(),
        "kernel": host::kernel(),
        "postgres": pg_version,
        "redis": services::redis_version(&services::redis_url()).await,
        "loadavg_start": loadavg_start,
        "loadavg_end": cpu::loadavg(),
    })
}

/// The run's parameters: the options, the origin's settings, the load generator.
fn params(args: &Args, p: &Params, s: &OriginSettings, cores: usize, deep_page: u64) -> Value {
    json!({
        "users": args.users,
        "run": args,
        "origin": {
            "argon2": {"m_kib": p.m_cost(), "t": p.t_cost(), "p": p.p_cost()},
            "hash_workers": s.hash_workers,
            "hash_queue": s.hash_queue,
            "database_pool_size": s.pool_size,
            "cache": "redis",
            "cache_ttl_s": s.cache_ttl,
            "rate_limit_auth_ip": UNLIMITED,
            "rate_limit_user": UNLIMITED,
            "runtime_worker_threads": cores,
        },
        "loadgen": {
            "client": "hyper's HTTP/1.1 client connection, one kept alive per worker (no pool), in \
                       the same process on its own tokio runtime",
            "runtime_worker_threads": cores,
            "half_rate": "open loop at half the measured saturation throughput (ok answers)",
            "half_rate_max_in_flight": super::args::OPEN_CONNECTIONS,
            "overload_max_in_flight": super::args::OVERLOAD_CONNECTIONS,
        },
        "page_limit": PAGE_LIMIT,
        "deep_page": deep_page,
    })
}
