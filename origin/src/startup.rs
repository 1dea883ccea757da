//! Building and running the service: pool, migrations, keys, admin bootstrap, listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Hook, HookError, Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use users_core::fields::{Email, Username};
use users_core::password::{self, Identity};
use users_core::perms::ADMIN_ROLE;
use users_core::token::Expectations;

use crate::config::Config;
use crate::db;
use crate::hashing::Hasher;
use crate::redis_store::Redis;
use crate::state::{AppState, Shared};

/// A bound, ready-to-serve origin.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

/// A pooled connection last handed out at least this long ago is checked with a round trip
/// before reuse.
const CHECK_IF_IDLE: Duration = Duration::from_secs(1);
/// How long that check may take before the connection is replaced.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn pool(config: &Config) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config = config.database_url.expose().parse()?;
    pg.connect_timeout(Duration::from_secs(5));
    pg.keepalives_idle(Duration::from_secs(30));
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            // A closed connection is always replaced; see `check_if_idle` for the rest.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(config.database_pool_size)
        // The connection returned last is handed out first: under light load the same few
        // PostgreSQL backends serve every request and stay warm (a backend woken from idle for
        // each query costs several times the CPU), and the others idle until they are needed.
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(CHECK_TIMEOUT))
        .pre_recycle(Hook::async_fn(|client, metrics| {
            Box::pin(check_if_idle(client, metrics.last_used()))
        }))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()?)
}

/// Before a pooled connection is reused: one last handed out [`CHECK_IF_IDLE`] or longer ago
/// (`idle`) is checked with an empty query, so a dead or hung one is replaced instead of
/// hanging a request. One handed out more recently has just worked: under load connections skip
/// the round trip, and a request that meets one failing meanwhile ends at the request deadline.
async fn check_if_idle(client: &mut ClientWrapper, idle: Duration) -> Result<(), HookError> {
    if idle < CHECK_IF_IDLE {
        return Ok(());
    }
    match tokio::time::timeout(CHECK_TIMEOUT, client.simple_query("")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HookError::Backend(e)),
        Err(_) => Err(HookError::message("the connection check timed out")),
    }
}

/// Applies pending migrations over a dedicated connection.
pub async fn migrate(config: &Config) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) =
        tokio_postgres::connect(config.database_url.expose(), tokio_postgres::NoTls)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => anyhow::anyhow!("cannot connect to DATABASE_URL: {}", db.message()),
                None => anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"),
            })?;
    let task = tokio::spawn(connection);
    let applied = users_migrations::run(&mut client).await?;
    drop(client);
    let _ = task.await;
    for name in &applied {
        tracing::info!(migration = %name, "migration applied");
    }
    Ok(applied)
}

/// The state a replica serves from (and the command-line tools work with): the pool, the
/// hashing pool, the keys, the cache and the limiter, from `config`. Connects lazily.
pub fn state(config: Config) -> anyhow::Result<AppState> {
    let keys = crate::keys::load(&config.keys)?;
    let mfa_keys = crate::mfa_keys::MfaKeys::load(&config.keys)?;
    let metrics = crate::metrics::Metrics::new()?;
    let hasher = Hasher::new(&config.hashing, metrics.hash_rejections.clone())?;
    let expect = Expectations {
        issuer: config.tokens.issuer.clone(),
        audience: config.tokens.audience.clone(),
    };
    let errors = metrics.redis_errors.clone();
    let prefix = &config.redis.prefix;
    let redis = match (&config.redis.url, &config.redis.cluster_urls) {
        (Some(url), _) => Some(Redis::new(url.expose(), prefix, errors)?),
        (None, Some(seeds)) => Some(Redis::cluster(seeds.expose(), prefix, errors)?),
        (None, None) => None,
    };
    let ttl = std::time::Duration::from_secs(config.redis.cache_ttl);
    let cache = match &redis {
        Some(r) => crate::cache::UserCache::redis(r.clone(), ttl),
        None => crate::cache::UserCache::memory(ttl),
    };
    let limiter = crate::ratelimit::Limiter::new(
        redis.clone(),
        config.limits.login_failure_window,
        crate::ratelimit::Counters {
            refused: metrics.rate_limited.clone(),
            login_failures: metrics.login_failures.clone(),
            lockouts: metrics.login_lockouts.clone(),
        },
    );
    // The bounds the queue and pool gauges are read against.
    metrics
        .hash_queue_capacity
        .set(i64::try_from(hasher.capacity()).unwrap_or(i64::MAX));
    metrics
        .db_pool_max_size
        .set(i64::try_from(config.database_pool_size).unwrap_or(i64::MAX));
    let state = AppState::new(Shared {
        mfa_keys: Arc::new(mfa_keys),
        redis,
        cache: Arc::new(cache),
        follower: Arc::new(crate::listen::Follower::new(Arc::new(
            crate::memo::Memo::new(crate::memo::Bounds::default()),
        ))),
        limiter: Arc::new(limiter),
        db: pool(&config)?,
        hasher: Arc::new(hasher),
        keys: Arc::new(keys),
        expect: Arc::new(expect),
        metrics: Arc::new(metrics),
        mail_ready: Arc::new(Notify::new()),
        config: Arc::new(config),
    });
    Ok(state)
}

impl Application {
    /// Connects, migrates, bootstraps the admin and binds `LISTEN_ADDR`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        migrate(&config).await?;
        let state = state(config)?;
        if state.redis.is_none() {
            tracing::info!(
                "neither REDIS_URL nor REDIS_CLUSTER_URLS is set: user views are cached and rate limits kept in process"
            );
        }
        bootstrap_admin(&state).await?;
        let listener = TcpListener::bind(state.config.listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", state.config.listen_addr))?;
        Ok(Self { listener, state })
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen_addr)
    }

    /// Serves until SIGTERM or ctrl-c, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serves until `signal` completes.
    pub async fn run_with_shutdown(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mail = crate::mail::spawn_sender(self.state.clone())?;
        let monitor = crate::monitor::spawn(self.state.clone());
        let idempotency = crate::idempotency::spawn_cleanup(self.state.clone());
        let stand_ins = crate::stand_ins::spawn(self.state.clone());
        let follow = crate::listen::spawn(
            Arc::clone(&self.state.follower),
            self.state.config.database_listen_url.expose().clone(),
            self.listener.local_addr()?.port(),
            Arc::clone(&self.state.metrics),
        );
        let cache = Arc::clone(&self.state.cache);
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                cache.flush_pending().await;
            }
        });
        let app = crate::http::router(self.state);
        tracing::info!(addr = %self.listener.local_addr()?, "listening");
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await?;
        if let Some(mail) = mail {
            mail.abort();
        }
        flusher.abort();
        monitor.abort();
        idempotency.abort();
        stand_ins.abort();
        follow.abort();
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Creates the configured admin if no user has that username or email. Idempotent.
async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    let Some(admin) = &state.config.admin else {
        return Ok(());
    };
    let username =
        Username::parse(&admin.username).map_err(|e| anyhow::anyhow!("ADMIN_USERNAME {e}"))?;
    let email = Email::parse(&admin.email).map_err(|e| anyhow::anyhow!("ADMIN_EMAIL {e}"))?;
    let identity = Identity {
        username: username.as_str(),
        email: email.as_str(),
        display_name: None,
    };
    password::check(admin.password.expose(), identity)
        .map_err(|e| anyhow::anyhow!("ADMIN_PASSWORD {e}"))?;
    let mut client = state.db.get().await?;
    if db::users::get_by_login(&client, username.as_str(), &[])
        .await?
        .is_some()
        || db::users::get_by_email(&client, email.as_str())
            .await?
            .is_some()
    {
        tracing::info!(username = %username, "admin account present");
        return Ok(());
    }
    let hash = state
        .hasher
        .hash(admin.password.expose().clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tx = client.transaction().await?;
    let new = db::users::NewUser {
        username: username.as_str(),
        email: email.as_str(),
        display_name: Some("Administrator"),
        password_hash: &hash,
        is_active: true,
    };
    let id = match db::users::insert(&tx, &new).await {
        Ok(id) => id,
        // Another replica created it meanwhile.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    db::users::set_roles(&tx, id, &[ADMIN_ROLE.to_owned()]).await?;
    // The operator chose the address: it needs no verification mail.
    db::email::set_verified(&tx, id, true).await?;
    tx.commit().await?;
    tracing::info!(username = %username, "admin account created");
    Ok(())
}
