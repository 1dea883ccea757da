//! The test harness: a real origin on a random port over a throw-away database.
//!
//! [`spawn_app`] clones a fresh database from the migrated template ([`crate::testdb`]),
//! starts the origin in-process with cheap Argon2 parameters, an SMTP sink
//! ([`crate::smtp`]), the shared test Redis under a key prefix of its own and rate limits too
//! high to matter, and logs the bootstrap admin in. The database and the Redis keys are
//! dropped when the [`TestApp`] is. Typed request helpers (`register`, `login`, `new_user`, …) and problem
//! assertions live here too.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::scrape::{Scrape, scrape};
use crate::smtp::SmtpSink;
use crate::testdb::{Cleanup, PG_BASE, REDIS_URL, connect, create_test_database};

/// The public URL the origin is configured with: the issuer of its tokens and the base of links
/// in its mail. It is never dialled.
pub const PUBLIC_URL: &str = "http://app.test";
/// The default audience of access tokens.
pub const AUDIENCE: &str = "users-api";
/// Every permission (SPEC §2).
pub const ALL_PERMS: [&str; 6] = [
    "users:read",
    "users:create",
    "users:update",
    "users:delete",
    "roles:read",
    "roles:manage",
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

/// An account with its credentials and a current token pair.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

/// The body of a successful login or refresh.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

/// Starts an origin with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an origin after `configure` has adjusted the default test configuration. `DATA_DIR`
/// already names a fresh directory when `configure` runs, so it may put key files there.
pub async fn spawn_app_with(configure: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_logging();
    let db_name = create_test_database().await;
    let data_dir = std::env::temp_dir().join(format!("users-it-{}", Uuid::new_v4().simple()));
    let redis_prefix = format!("it:{db_name}:");
    let cleanup = Cleanup {
        db_name: db_name.clone(),
        data_dir: data_dir.clone(),
        redis_prefix: redis_prefix.clone(),
    };
    std::fs::create_dir_all(&data_dir).expect("create DATA_DIR");
    let smtp = SmtpSink::start().await;

    let admin_password = strong_password();
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", format!("{PG_BASE}/{db_name}")),
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
        ("REDIS_URL", REDIS_URL.to_owned()),
        ("REDIS_PREFIX", redis_prefix),
        ("RATE_LIMIT_AUTH_IP", UNLIMITED.to_owned()),
        ("RATE_LIMIT_USER", UNLIMITED.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    configure(&mut vars);

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
    let admin = app.admin.clone();
    let pair = app.login(&admin.username, &admin.password).await;
    app.admin.access = pair.access_token;
    app.admin.refresh = pair.refresh_token;
    app.admin.id = app.user_id_of(&app.admin.access).await;
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

/// Builds and starts an origin with `vars`; returns its port.
pub async fn start_origin(vars: &HashMap<String, String>) -> u16 {
    let config = users_origin::Config::from_lookup(|k| vars.get(k).cloned())
        .expect("the test configuration is valid");
    let app = users_origin::Application::build(config)
        .await
        .expect("the origin starts");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    port
}

/// The HTTP client of the tests: no redirects, no proxies, a generous timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build the HTTP client")
}

/// A fresh unique lower-case name with `prefix`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// A passphrase that satisfies the policy and has nothing to do with any username.
pub fn strong_password() -> String {
    let n: u32 = rand::thread_rng().r#gen();
    format!("violet-harbor-copper-lantern-{n:08x}")
}

/// A second, different strong passphrase.
pub fn other_strong_password() -> String {
    let n: u32 = rand::thread_rng().r#gen();
    format!("quartz-meadow-falcon-tundra-{n:08x}")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The prefix of every Redis key of this app (`it:<db_name>:`).
    pub fn redis_prefix(&self) -> &str {
        self.vars.get("REDIS_PREFIX").map_or("", String::as_str)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// The origin's `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Scrape {
        scrape(&self.client, &self.address).await
    }

    /// `POST /auth/register`.
    pub async fn register(&self, username: &str, email: &str, password: &str) -> Response {
        self.post("/auth/register")
            .json(&json!({"username": username, "email": email, "password": password}))
            .send()
            .await
            .expect("send register")
    }

    /// `POST /users` as the admin.
    pub async fn create_user(&self, body: &Value) -> Response {
        self.post("/users")
            .bearer_auth(&self.admin.access)
            .json(body)
            .send()
            .await
            .expect("send create user")
    }

    /// `POST /auth/login` with JSON.
    pub async fn login_raw(&self, login: &str, password: &str) -> Response {
        self.post("/auth/login")
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
            .expect("send login")
    }

    /// Logs in and expects success.
    pub async fn login(&self, login: &str, password: &str) -> TokenPair {
        let resp = self.login_raw(login, password).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "login of {login} failed: {text}");
        serde_json::from_str(&text).expect("a token pair")
    }

    /// `POST /auth/refresh`.
    pub async fn refresh_raw(&self, refresh_token: &str) -> Response {
        self.post("/auth/refresh")
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .expect("send refresh")
    }

    /// `GET /users/me` with `token`.
    pub async fn me(&self, token: &str) -> Response {
        self.get("/users/me")
            .bearer_auth(token)
            .send()
            .await
            .expect("send me")
    }

    /// `GET /users/{id}` with `token`.
    pub async fn get_user(&self, token: &str, id: Uuid) -> Response {
        self.get(&format!("/users/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("send get user")
    }

    /// `PATCH /users/{id}` with a merge patch.
    pub async fn patch_user(&self, token: &str, id: Uuid, patch: &Value) -> Response {
        self.patch(&format!("/users/{id}"))
            .bearer_auth(token)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .await
            .expect("send patch user")
    }

    /// The id (`sub`) of the user `token` belongs to, read from `GET /users/me`.
    pub async fn user_id_of(&self, token: &str) -> Uuid {
        let resp = self.me(token).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET /users/me");
        let body: Value = resp.json().await.expect("user view");
        body["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("user id")
    }

    /// Registers a fresh account and logs it in.
    pub async fn new_user(&self) -> TestUser {
        let username = unique_name("u");
        let email = format!("{username}@example.com");
        let password = strong_password();
        let resp = self.register(&username, &email, &password).await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("register body");
        assert_eq!(status, StatusCode::CREATED, "register: {body}");
        let id = body["id"].as_str().expect("id").parse().expect("uuid id");
        let pair = self.login(&username, &password).await;
        TestUser {
            id,
            username,
            email,
            password,
            access: pair.access_token,
            refresh: pair.refresh_token,
        }
    }

    /// Creates an account with `roles` as the admin and logs it in.
    pub async fn new_user_with_roles(&self, roles: &[&str]) -> TestUser {
        let username = unique_name("r");
        let email = format!("{username}@example.com");
        let password = strong_password();
        let resp = self
            .create_user(&json!({
                "username": username, "email": email, "password": password, "roles": roles
            }))
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("create body");
        assert_eq!(status, StatusCode::CREATED, "create user: {body}");
        let id = body["id"].as_str().expect("id").parse().expect("uuid id");
        let pair = self.login(&username, &password).await;
        TestUser {
            id,
            username,
            email,
            password,
            access: pair.access_token,
            refresh: pair.refresh_token,
        }
    }

    /// Creates a custom role as the admin and expects `201`.
    pub async fn create_role(&self, name: &str, permissions: &[&str]) {
        let resp = self
            .post("/roles")
            .bearer_auth(&self.admin.access)
            .json(
                &json!({"name": name, "description": "made by a test", "permissions": permissions}),
            )
            .send()
            .await
            .expect("send create role");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::CREATED, "create role {name}: {text}");
    }

    /// `PUT /users/{id}/roles/{name}` with `token`.
    pub async fn grant_role(&self, token: &str, user: Uuid, role: &str) -> Response {
        self.put(&format!("/users/{user}/roles/{role}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("send grant role")
    }

    /// Starts another origin over the same database with the same configuration (a second
    /// replica); returns its address.
    pub async fn spawn_replica(&self) -> String {
        self.spawn_replica_with(|_| {}).await
    }

    /// Like [`Self::spawn_replica`], after `configure` has adjusted the configuration.
    pub async fn spawn_replica_with(
        &self,
        configure: impl FnOnce(&mut HashMap<String, String>),
    ) -> String {
        let mut vars = self.vars.clone();
        configure(&mut vars);
        let port = start_origin(&vars).await;
        format!("http://127.0.0.1:{port}")
    }

    /// Waits up to 5 s for an audit row `action` on `target`; returns
    /// `(actor_id, request_id, ip)`.
    pub async fn wait_for_audit(
        &self,
        action: &str,
        target: Uuid,
    ) -> Option<(Option<Uuid>, Option<String>, Option<String>)> {
        for _ in 0..100 {
            let row = self
                .db
                .query_opt(
                    "SELECT actor_id, request_id, ip FROM audit_log \
                     WHERE action = $1 AND target_id = $2 ORDER BY id DESC LIMIT 1",
                    &[&action, &target],
                )
                .await
                .expect("query audit_log");
            if let Some(row) = row {
                return Some((row.get(0), row.get(1), row.get(2)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// Asserts that `resp` is an RFC 9457 problem with `status` and code `code`; returns the body.
#[track_caller]
pub fn assert_problem_parts(
    status: StatusCode,
    content_type: &str,
    body: &Value,
    expected: u16,
    code: &str,
) {
    assert_eq!(status.as_u16(), expected, "status; body {body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type:?}; body {body}"
    );
    assert_eq!(
        body["type"],
        json!(format!("/problems/{code}")),
        "type; body {body}"
    );
    assert_eq!(
        body["status"],
        json!(expected),
        "status member; body {body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title; body {body}"
    );
    assert!(body["detail"].is_string(), "detail; body {body}");
    let allowed = ["type", "title", "status", "detail", "errors", "instance"];
    for key in body.as_object().expect("an object").keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "unexpected member {key}; body {body}"
        );
    }
}

/// Reads `resp` and asserts that it is a problem with `status` and code `code`; returns the body.
pub async fn assert_problem(resp: Response, status: u16, code: &str) -> Value {
    let actual = resp.status();
    let content_type = header(&resp, "content-type").unwrap_or_default();
    let text = resp.text().await.expect("read the body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {actual}: a JSON problem, got {text:?}"));
    assert_problem_parts(actual, &content_type, &body, status, code);
    body
}

/// The fields named in a validation problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A response header as a string.
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Reads a JSON body after asserting the status.
pub async fn json_body(resp: Response, status: u16) -> Value {
    let actual = resp.status();
    let text = resp.text().await.expect("read the body");
    assert_eq!(actual.as_u16(), status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"))
}

/// Asserts the `401 invalid-token` answer to a request carrying a refused access token.
pub async fn assert_invalid_token(resp: Response) {
    let www = header(&resp, "www-authenticate").unwrap_or_default();
    assert_problem(resp, 401, "invalid-token").await;
    assert!(
        www.starts_with("Bearer") && www.contains(r#"error="invalid_token""#),
        "WWW-Authenticate: {www:?}"
    );
}
