//! The test harness: a real origin on a random port over a throw-away database.
//!
//! [`spawn_app`] clones a fresh database from the migrated template ([`crate::testdb`]),
//! starts the origin in-process with cheap Argon2 parameters, an SMTP sink
//! ([`crate::smtp`]), the shared test Redis under a key prefix of its own and rate limits too
//! high to matter, and logs the bootstrap admin in. The database and the Redis keys are
//! dropped when the [`TestApp`] is.
//!
//! - [`api`]: the request API of every suite and tier ([`Api`], [`Call`], [`Endpoint`]);
//!   a [`TestApp`] is an [`Api`].
//! - [`reply`]: a read answer ([`Reply`]) and its assertions (problems, refused tokens).
//! - [`accounts`]: test users and roles, fresh names and passphrases.
//! - [`db`]: assertions on the app's database (counts, audit rows).
//! - [`record`]: the traffic log every answer goes to, checked against the OpenAPI document.
//! - [`redis`]: the test Redis server or the test Redis Cluster ([`RedisKind`],
//!   [`spawn_app_on`], [`redis_test!`]) and what an origin keeps there.

use std::collections::HashMap;
use std::time::Duration;

use users_harness::InProcessOrigin;
use uuid::Uuid;

use crate::scrape::{Scrape, scrape};
use crate::smtp::SmtpSink;
use crate::testdb::{Cleanup, connect, create_test_database, database_url, redis_url};

mod accounts;
mod api;
mod db;
mod record;
mod redis;
mod reply;

pub use accounts::{
    Credentials, TestUser, TokenPair, account_json, other_strong_password, strong_password,
    unique_name,
};
pub use api::{Api, Bearer, Call, Endpoint, http_client_with_timeout};
pub use record::STUB_HEADER;
pub(crate) use redis::redis_test;
pub use redis::{RedisKind, test_cluster_urls, use_redis};
pub use reply::{Reply, error_fields};

/// The public URL the origin is configured with: the issuer of its tokens and the base of links
/// in its mail. It is never dialled.
pub const PUBLIC_URL: &str = "http://app.test";
/// The default audience of access tokens.
pub const AUDIENCE: &str = "users-api";
/// Every permission (SPEC §2).
pub const ALL_PERMS: [&str; 7] = [
    "users:read",
    "users:create",
    "users:update",
    "users:delete",
    "roles:read",
    "roles:manage",
    "users:export_secrets",
];
/// The rate limits of the default test configuration: far above what any test sends, so only
/// the tests of limits (which set their own) ever meet one.
pub const UNLIMITED: &str = "1000000/60s";

/// A running origin with its own database and mailbox.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Follows no redirects.
    pub client: reqwest::Client,
    pub db_name: String,
    /// A direct connection to the app's database, for assertions.
    pub db: tokio_postgres::Client,
    pub smtp: SmtpSink,
    /// The bootstrap admin, logged in.
    pub admin: TestUser,
    /// The configuration the origin was started with.
    pub vars: HashMap<String, String>,
    /// Drops the database and the data directory; declared last, so dropped last.
    _cleanup: Cleanup,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp")
            .field("address", &self.address)
            .field("db_name", &self.db_name)
            .finish_non_exhaustive()
    }
}

impl Api for TestApp {
    fn base(&self) -> &str {
        &self.address
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// Starts an origin with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an origin with the default test configuration and a registered, logged-in user.
pub async fn spawn_app_and_user() -> (TestApp, TestUser) {
    let app = spawn_app().await;
    let user = app.new_user().await;
    (app, user)
}

/// Starts an origin with the default test configuration changed by `settings` (see
/// [`apply_settings`]).
pub async fn spawn_app_set(settings: &[(&str, &str)]) -> TestApp {
    spawn_app_with(|vars| apply_settings(vars, settings)).await
}

/// Starts an origin over the Redis of `redis` (the test server or the test cluster) with the
/// default test configuration changed by `settings` (see [`apply_settings`]). On the cluster,
/// fails at once when `TEST_REDIS_CLUSTER_URLS` is unset.
pub async fn spawn_app_on(redis: RedisKind, settings: &[(&str, &str)]) -> TestApp {
    if redis == RedisKind::Cluster {
        test_cluster_urls();
    }
    spawn_app_with(|vars| {
        use_redis(vars, redis);
        apply_settings(vars, settings);
    })
    .await
}

/// [`spawn_app_on`] with a registered, logged-in user.
pub async fn spawn_app_and_user_on(redis: RedisKind) -> (TestApp, TestUser) {
    let app = spawn_app_on(redis, &[]).await;
    let user = app.new_user().await;
    (app, user)
}

/// Sets each `(name, value)` of `settings` in `vars`; an empty value removes the variable
/// (`("REDIS_URL", "")`: no Redis).
pub fn apply_settings(vars: &mut HashMap<String, String>, settings: &[(&str, &str)]) {
    for (name, value) in settings {
        if value.is_empty() {
            vars.remove(*name);
        } else {
            vars.insert((*name).to_owned(), (*value).to_owned());
        }
    }
}

/// Starts an origin after `configure` has adjusted the default test configuration. `DATA_DIR`
/// already names a fresh directory when `configure` runs, so it may put key files there.
pub async fn spawn_app_with(configure: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_logging();
    let db_name = create_test_database().await;
    let data_dir = std::env::temp_dir().join(format!("users-it-{}", Uuid::new_v4().simple()));
    let redis_prefix = format!("it:{db_name}:");
    let mut cleanup = Cleanup {
        db_name: db_name.clone(),
        data_dir: data_dir.clone(),
        redis_prefix: redis_prefix.clone(),
        redis_cluster: None,
    };
    std::fs::create_dir_all(&data_dir).expect("create DATA_DIR");
    let smtp = SmtpSink::start().await;

    let admin_password = strong_password();
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", database_url(&db_name)),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("SMTP_URL", smtp.url()),
        ("MAIL_FROM", "noreply@app.test".to_owned()),
        ("ADMIN_USERNAME", "admin".to_owned()),
        ("ADMIN_EMAIL", "admin@app.test".to_owned()),
        ("ADMIN_PASSWORD", admin_password.clone()),
        ("DATA_DIR", data_dir.display().to_string()),
        ("ARGON2_M_KIB", "1024".to_owned()),
        ("ARGON2_T", "1".to_owned()),
        ("MAIL_POLL_MS", "50".to_owned()),
        ("REDIS_URL", redis_url()),
        ("REDIS_PREFIX", redis_prefix),
        ("RATE_LIMIT_AUTH_IP", UNLIMITED.to_owned()),
        ("RATE_LIMIT_USER", UNLIMITED.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    configure(&mut vars);
    cleanup.redis_cluster = vars.get("REDIS_CLUSTER_URLS").cloned();

    let port = start_origin(&vars).await;
    let db = connect(&db_name).await;
    let mut app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: http_client(),
        db_name,
        db,
        smtp,
        admin: TestUser {
            id: Uuid::nil(),
            username: vars["ADMIN_USERNAME"].clone(),
            email: vars["ADMIN_EMAIL"].clone(),
            password: vars["ADMIN_PASSWORD"].clone(),
            access: String::new(),
            refresh: String::new(),
        },
        vars,
        _cleanup: cleanup,
    };
    let pair = app.login(&app.admin.username, &app.admin.password).await;
    app.admin.access = pair.access_token;
    app.admin.refresh = pair.refresh_token;
    app.admin.id = app.as_admin().user_id().await;
    app
}

/// Sends the origin's logs to the test output when `TEST_LOG` is set (its value is the filter,
/// e.g. `TEST_LOG=debug`); silent otherwise.
fn init_logging() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let filter = if filter.is_empty() {
            "info".to_owned()
        } else {
            filter
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Builds and starts an origin with `vars` on the test's runtime, serving until the test ends
/// ([`InProcessOrigin::start`]; panics if it does not start).
pub async fn start_origin_process(vars: &HashMap<String, String>) -> InProcessOrigin {
    InProcessOrigin::start(&tokio::runtime::Handle::current(), vars)
        .await
        .unwrap_or_else(|e| panic!("the origin starts with the test configuration: {e:#}"))
}

/// Builds and starts an origin with `vars` that serves until the test ends; returns its port.
pub async fn start_origin(vars: &HashMap<String, String>) -> u16 {
    let origin = start_origin_process(vars).await;
    let port = origin.addr().port();
    origin.detach();
    port
}

/// The HTTP client of the tests: no redirects, no proxies, a generous timeout.
pub fn http_client() -> reqwest::Client {
    http_client_with_timeout(Duration::from_secs(60))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl TestApp {
    /// The prefix of every Redis key of this app (`it:<db_name>:`).
    pub fn redis_prefix(&self) -> &str {
        self.vars.get("REDIS_PREFIX").map_or("", String::as_str)
    }

    /// This origin as a plain [`Endpoint`], to sit in one list with its replicas.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::with_client(&self.address, self.client.clone())
    }

    /// The origin's `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Scrape {
        scrape(self).await
    }

    /// Starts another origin over the same database with the same configuration (a second
    /// replica).
    pub async fn spawn_replica(&self) -> Endpoint {
        self.spawn_replica_with(|_| {}).await
    }

    /// Like [`Self::spawn_replica`], after `configure` has adjusted the configuration.
    pub async fn spawn_replica_with(
        &self,
        configure: impl FnOnce(&mut HashMap<String, String>),
    ) -> Endpoint {
        let mut vars = self.vars.clone();
        configure(&mut vars);
        let port = start_origin(&vars).await;
        Endpoint::with_client(&format!("http://127.0.0.1:{port}"), self.client.clone())
    }
}
