//! The test harness: a real origin on a random port over a throw-away database.
//!
//! [`spawn_app`] clones a fresh database from a template that is migrated once per migration
//! set (guarded by an advisory lock, so parallel test processes agree), starts the origin
//! in-process with cheap Argon2 parameters and an SMTP sink, and logs the bootstrap admin in.
//! The database is dropped when the [`TestApp`] is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::smtp::SmtpSink;

/// The server PostgreSQL runs on (trust authentication).
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
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

/// Key of the advisory lock held while the template database is created.
const TEMPLATE_LOCK_KEY: i64 = 0x7573_6572_735f_7470; // "users_tp"

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
    data_dir: PathBuf,
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
    let template = ensure_template().await;
    let db_name = format!("users_test_{}", Uuid::new_v4().simple());
    let admin_conn = connect("postgres").await;
    admin_conn
        .batch_execute(&format!(
            r#"CREATE DATABASE "{db_name}" TEMPLATE "{template}""#
        ))
        .await
        .expect("create the test database from the template");
    drop(admin_conn);

    let smtp = SmtpSink::start().await;
    let data_dir = std::env::temp_dir().join(format!("users-it-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).expect("create DATA_DIR");

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
        data_dir,
    };
    let admin = app.admin.clone();
    let pair = app.login(&admin.username, &admin.password).await;
    app.admin.access = pair.access_token;
    app.admin.refresh = pair.refresh_token;
    app.admin.id = app.user_id_of(&app.admin.access).await;
    app
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

/// Connects to database `name` on the test server.
pub async fn connect(name: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&format!("{PG_BASE}/{name}"), NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to database {name}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The directory of the SQL migrations.
fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sql")
}

/// `users_tpl_<first 12 hex digits of the SHA-256 of the migration files>`.
pub fn template_name() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(migrations_dir())
        .expect("read migrations/sql")
        .map(|e| e.expect("read a migrations/sql entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).expect("read a migration"));
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("users_tpl_{}", &hex[..12])
}

async fn database_exists(client: &tokio_postgres::Client, name: &str) -> bool {
    client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("look the template up")
        .is_some()
}

/// Creates the migrated template database unless it exists; returns its name.
async fn ensure_template() -> String {
    let name = template_name();
    let client = connect("postgres").await;
    if database_exists(&client, &name).await {
        return name;
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .expect("take the template lock");
    if !database_exists(&client, &name).await {
        let tmp = format!("{name}_tmp");
        client
            .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{tmp}" WITH (FORCE)"#))
            .await
            .expect("drop a leftover template");
        client
            .batch_execute(&format!(r#"CREATE DATABASE "{tmp}""#))
            .await
            .expect("create the template");
        {
            let (mut tpl, connection) = tokio_postgres::connect(&format!("{PG_BASE}/{tmp}"), NoTls)
                .await
                .expect("connect to the template");
            let conn_task = tokio::spawn(connection);
            users_migrations::run(&mut tpl)
                .await
                .expect("migrate the template");
            drop(tpl);
            let _ = conn_task.await;
        }
        // The server may need a moment to see the session gone before it allows a rename.
        let mut attempt = 0;
        loop {
            match client
                .batch_execute(&format!(r#"ALTER DATABASE "{tmp}" RENAME TO "{name}""#))
                .await
            {
                Ok(()) => break,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rename the template: {e}"),
            }
        }
    }
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK_KEY])
        .await
        .expect("release the template lock");
    name
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let db_name = self.db_name.clone();
        let data_dir = self.data_dir.clone();
        // Dropping runs inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the drop runtime");
            rt.block_on(async move {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&format!("{PG_BASE}/postgres"), NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!(
                        r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#
                    ))
                    .await;
            });
            let _ = std::fs::remove_dir_all(data_dir);
        });
        let _ = dropper.join();
    }
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

/// A random 32-byte seed.
pub fn random_seed() -> [u8; 32] {
    rand::thread_rng().r#gen()
}

/// Writes `seed` as the origin's signing key (base64url, in `DATA_DIR`) and points
/// `SIGNING_KEY_FILE` at it.
pub fn use_signing_seed(vars: &mut HashMap<String, String>, seed: [u8; 32]) {
    let path = Path::new(&vars["DATA_DIR"]).join("test-signing-key");
    std::fs::write(&path, URL_SAFE_NO_PAD.encode(seed)).expect("write the signing key");
    vars.insert("SIGNING_KEY_FILE".into(), path.display().to_string());
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
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
        let port = start_origin(&self.vars).await;
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

/// The decoded header and claims of a JWT (no verification).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = |what: &str| -> Value {
        let part = parts.next().unwrap_or_else(|| panic!("JWT {what}"));
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url"))
            .expect("JSON part")
    };
    let header = decode("header");
    let claims = decode("claims");
    (header, claims)
}

/// Builds a compact JWS from a header and claims and signs `header.claims` with `sign`.
pub fn compact_jws(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An EdDSA JWT over `claims`, signed with the key of `seed`, naming `kid`.
pub fn sign_eddsa(seed: [u8; 32], kid: &str, claims: &Value) -> String {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    compact_jws(&header, claims, |input| pair.sk.sign(input, None).to_vec())
}

/// The raw public key of `seed`.
pub fn public_key_of(seed: [u8; 32]) -> [u8; 32] {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    *pair.pk
}

/// The RFC 7638 thumbprint of an Ed25519 public key.
pub fn thumbprint(public_key: &[u8]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public_key);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
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
