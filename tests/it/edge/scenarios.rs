//! The edge scenarios, written once for every [`EdgeRuntime`].
//!
//! Each scenario starts its own origin (with `EDGE_SHARED_SECRET`, over a fresh database) and
//! an edge in front of it, talks to the edge as a client would, and looks behind it where it
//! must: the origin's `http_requests_total` (did the origin see that request?), its audit log
//! (which client address and request id did it record?) and its SMTP sink.
//!
//! The edge gets every variable the scenarios rely on ([`edge_vars`]); quotas are far above
//! what a scenario sends except where a scenario sets its own, and the revocation feed is
//! polled at most every second.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{EdgeHandle, EdgeRuntime};
use crate::helpers::{
    AUDIENCE, PUBLIC_URL, TestApp, TestUser, TokenPair, UNLIMITED, assert_problem_parts,
    http_client, other_strong_password, spawn_app_with, strong_password, unique_name,
};
use crate::jwt::{
    compact_jws, jwt_parts, now_secs, public_key_of, random_seed, sign_eddsa, thumbprint,
    use_signing_seed,
};
use crate::proxy::TcpProxy;
use crate::smtp::reset_token_line;

/// The secret shared by the edge and the origin (at least 16 characters).
pub const EDGE_SECRET: &str = "edge-shared-secret-for-e2e-0123456789";
/// How long a mail may take to reach the SMTP sink.
const MAIL_WAIT: Duration = Duration::from_secs(10);
/// The bound the scenarios put on revocation lag with `REVOCATION_SYNC_INTERVAL=1`.
const REVOCATION_LAG_MAX: Duration = Duration::from_secs(3);
/// The origin route templates the scenarios count requests of.
const ME: &str = "/users/me";
const USER: &str = "/users/{id}";
const LOGIN: &str = "/auth/login";
const FEED: &str = "/internal/revocations";

/// The edge's variables: the scenario defaults, then `extra` (which win).
pub fn edge_vars(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let defaults = [
        ("JWT_ISSUER", PUBLIC_URL),
        ("JWT_AUDIENCE", AUDIENCE),
        ("EDGE_SHARED_SECRET", EDGE_SECRET),
        ("RATE_LIMIT_AUTH_IP", UNLIMITED),
        ("RATE_LIMIT_USER", UNLIMITED),
        ("PROFILE_CACHE_TTL", "30"),
        ("STALE_IF_ERROR", "300"),
        ("REVOCATION_SYNC_INTERVAL", "1"),
        ("JWKS_TTL", "300"),
        ("ORIGIN_TIMEOUT_MS", "5000"),
    ];
    defaults
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An origin and an edge in front of it.
pub struct Stack {
    /// Declared first: the edge stops before the origin's database is dropped.
    pub edge: EdgeHandle,
    pub app: TestApp,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("edge", &self.edge)
            .field("app", &self.app)
            .finish()
    }
}

/// Starts an origin that knows the edge's secret (after `configure`).
async fn origin_with(
    configure: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> TestApp {
    spawn_app_with(|vars| {
        vars.insert("EDGE_SHARED_SECRET".into(), EDGE_SECRET.into());
        configure(vars);
    })
    .await
}

/// An origin and an edge in front of it with the default variables and `extra`.
async fn stack<R: EdgeRuntime>(rt: &R, extra: &[(&str, &str)]) -> Stack {
    let app = origin_with(|_| {}).await;
    let edge = rt.start(&app.address, &edge_vars(extra)).await;
    Stack { edge, app }
}

impl Stack {
    /// Requests to the edge.
    pub fn edge(&self) -> Tier {
        Tier::new(&self.edge.address)
    }

    /// Requests straight to the origin, as a client that bypassed the edge.
    pub fn origin(&self) -> Tier {
        Tier::new(&self.app.address)
    }

    /// How many requests the origin has answered on the route template `route`.
    pub async fn origin_requests(&self, route: &str) -> f64 {
        origin_requests(&self.app, route).await
    }
}

async fn origin_requests(app: &TestApp, route: &str) -> f64 {
    app.metrics()
        .await
        .sum("http_requests_total", &[("route", route)])
}

/// A response, read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.text)
    }
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// `x-edge-cache`: `hit`, `miss`, `stale` or absent.
    pub fn cache(&self) -> Option<String> {
        self.header("x-edge-cache")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("a JSON body, got {} {:?}", self.status, self.text))
    }

    /// Asserts `status` and returns the JSON body.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self}");
        self.json()
    }

    /// Asserts an RFC 9457 problem with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        let content_type = self.header("content-type").unwrap_or_default();
        let body: Value = serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("a JSON problem, got {self}"));
        assert_problem_parts(
            reqwest::StatusCode::from_u16(self.status).expect("a status"),
            &content_type,
            &body,
            status,
            code,
        );
    }

    /// Asserts the `401 invalid-token` answer with its `WWW-Authenticate`.
    #[track_caller]
    pub fn assert_invalid_token(&self) {
        self.assert_problem(401, "invalid-token");
        let www = self.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("Bearer") && www.contains(r#"error="invalid_token""#),
            "WWW-Authenticate: {www:?}"
        );
    }

    /// `Retry-After` in seconds, asserted present and in `1..=max`.
    #[track_caller]
    pub fn retry_after(&self, max: u64) -> u64 {
        let value = self
            .header("retry-after")
            .unwrap_or_else(|| panic!("a Retry-After header: {self}"));
        let secs: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After in seconds, got {value:?}"));
        assert!((1..=max).contains(&secs), "Retry-After {secs}: {self}");
        secs
    }
}

/// Sends `req` and reads the answer.
pub async fn send(req: RequestBuilder) -> Reply {
    let resp = req.send().await.expect("send the request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("read the body");
    Reply {
        status,
        headers,
        text,
    }
}

/// A base URL to talk to (the edge, or the origin directly), with typed requests.
#[derive(Debug, Clone)]
pub struct Tier {
    base: String,
    client: reqwest::Client,
}

impl Tier {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: http_client(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30))
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

    pub async fn register(&self, username: &str, email: &str, password: &str) -> Reply {
        send(
            self.post("/auth/register")
                .json(&json!({"username": username, "email": email, "password": password})),
        )
        .await
    }

    pub async fn login_raw(&self, login: &str, password: &str) -> Reply {
        send(
            self.post("/auth/login")
                .json(&json!({"login": login, "password": password})),
        )
        .await
    }

    /// Logs in and expects success.
    pub async fn login(&self, login: &str, password: &str) -> TokenPair {
        let reply = self.login_raw(login, password).await;
        assert_eq!(reply.status, 200, "login of {login}: {reply}");
        serde_json::from_str(&reply.text).expect("a token pair")
    }

    pub async fn me(&self, token: &str) -> Reply {
        send(self.get("/users/me").bearer_auth(token)).await
    }

    pub async fn me_if_none_match(&self, token: &str, etag: &str) -> Reply {
        send(
            self.get("/users/me")
                .bearer_auth(token)
                .header("if-none-match", etag),
        )
        .await
    }

    pub async fn get_user(&self, token: &str, id: Uuid) -> Reply {
        send(self.get(&format!("/users/{id}")).bearer_auth(token)).await
    }

    /// `PATCH /users/{id}` with a merge patch, guarded by `if_match` when given.
    pub async fn patch_user(
        &self,
        token: &str,
        id: Uuid,
        patch: &Value,
        if_match: Option<&str>,
    ) -> Reply {
        let mut req = self
            .patch(&format!("/users/{id}"))
            .bearer_auth(token)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string());
        if let Some(etag) = if_match {
            req = req.header("if-match", etag);
        }
        send(req).await
    }

    pub async fn logout_all(&self, token: &str) -> Reply {
        send(
            self.post("/auth/logout")
                .bearer_auth(token)
                .json(&json!({"all": true})),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        send(
            self.post("/auth/refresh")
                .json(&json!({"refresh_token": refresh_token})),
        )
        .await
    }

    /// Registers a fresh account through this tier and logs it in.
    pub async fn new_user(&self) -> TestUser {
        let username = unique_name("e");
        let email = format!("{username}@example.com");
        let password = strong_password();
        let reply = self.register(&username, &email, &password).await;
        let body = reply.expect_json(201);
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
}

/// The audit row `action` written by the request `request_id` (waiting up to 5 s):
/// `(target_id, ip)`.
async fn audit_of_request(
    app: &TestApp,
    action: &str,
    request_id: &str,
) -> Option<(Option<Uuid>, Option<String>)> {
    for _ in 0..100 {
        let row = app
            .db
            .query_opt(
                "SELECT target_id, ip FROM audit_log WHERE action = $1 AND request_id = $2",
                &[&action, &request_id],
            )
            .await
            .expect("query audit_log");
        if let Some(row) = row {
            return Some((row.get(0), row.get(1)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The headers every edge answer carries, whoever made it.
#[track_caller]
fn assert_edge_headers(what: &str, reply: &Reply) {
    let expect = |name: &str, ok: &dyn Fn(&str) -> bool| {
        let value = reply.header(name);
        assert!(
            value.as_deref().is_some_and(ok),
            "{what}: {name} is {value:?}; answer {reply}"
        );
    };
    expect("x-request-id", &|v| !v.is_empty());
    expect("x-content-type-options", &|v| v == "nosniff");
    expect("x-frame-options", &|v| v == "DENY");
    expect("referrer-policy", &|v| v == "no-referrer");
    expect("strict-transport-security", &|v| v.starts_with("max-age="));
    expect("content-security-policy", &|v| {
        v.contains("default-src 'none'")
    });
    for internal in ["x-users-revoked", "x-edge-secret"] {
        assert!(
            reply.header(internal).is_none(),
            "{what}: {internal} reached the client: {reply}"
        );
    }
}

/// Register, log in, read and edit oneself, then delete oneself: every step through the edge.
pub async fn account_lifecycle_through_the_edge<R: EdgeRuntime>(rt: &R) {
    // The feed is polled once, then hourly: only the origin's echo can tell the edge about
    // the deletion.
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "3600")]).await;
    let edge = s.edge();
    let username = unique_name("e");
    let email = format!("{username}@example.com");
    let password = strong_password();

    let reply = edge.register(&username, &email, &password).await;
    let body = reply.expect_json(201);
    let id: Uuid = body["id"].as_str().expect("id").parse().expect("uuid");
    assert_eq!(
        reply.header("location"),
        Some(format!("/users/{id}")),
        "{reply}"
    );
    assert!(reply.header("etag").is_some(), "{reply}");
    assert_eq!(
        edge.register(&username, &email, &password).await.status,
        409,
        "a second registration of the same name conflicts"
    );

    let pair = edge.login(&username, &password).await;
    assert!(pair.token_type.eq_ignore_ascii_case("bearer"));
    let token = pair.access_token;

    let me = edge.me(&token).await;
    let view = me.expect_json(200);
    assert_eq!(view["id"], json!(id.to_string()));
    assert_eq!(view["username"], json!(username));
    let etag = me.header("etag").expect("an ETag");

    let patched = edge
        .patch_user(
            &token,
            id,
            &json!({"display_name": "Edge Walker"}),
            Some(&etag),
        )
        .await;
    assert_eq!(patched.expect_json(200)["display_name"], "Edge Walker");
    // The ETag the client holds is stale now: a lost update is refused.
    edge.patch_user(&token, id, &json!({"display_name": "Lost"}), Some(&etag))
        .await
        .assert_problem(412, "precondition-failed");
    assert_eq!(
        edge.me(&token).await.expect_json(200)["display_name"],
        "Edge Walker"
    );
    // The refresh token works through the edge as well.
    let refreshed = edge.refresh(&pair.refresh_token).await;
    refreshed.expect_json(200);

    let deleted = send(edge.delete(&format!("/users/{id}")).bearer_auth(&token)).await;
    assert_eq!(deleted.status, 204, "{deleted}");
    assert!(deleted.header("x-users-revoked").is_none(), "{deleted}");
    let before = s.origin_requests(ME).await;
    edge.me(&token).await.assert_invalid_token();
    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "the deleted account's token was refused by the edge itself (the origin echoed the \
         deletion, security version 2^63-1)"
    );
    edge.login_raw(&username, &password)
        .await
        .assert_problem(401, "invalid-credentials");
    let left: i64 = s
        .app
        .db
        .query_one("SELECT count(*) FROM users WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the account is gone at the origin");
}

/// The admin lists and creates roles through the edge; a grant through the edge revokes the
/// grantee's tokens at the edge at once.
pub async fn admin_manages_roles_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let admin = edge
        .login(&s.app.admin.username, &s.app.admin.password)
        .await
        .access_token;

    let roles = send(edge.get("/roles").bearer_auth(&admin)).await;
    let body = roles.expect_json(200);
    let names: Vec<String> = body
        .as_array()
        .or_else(|| body["items"].as_array())
        .expect("a list of roles")
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        names.contains(&"admin".to_owned()) && names.contains(&"user".to_owned()),
        "{names:?}"
    );

    let name = unique_name("support-");
    let created = send(edge.post("/roles").bearer_auth(&admin).json(&json!({
        "name": name, "description": "Reads accounts", "permissions": ["users:read"]
    })))
    .await;
    assert_eq!(created.expect_json(201)["name"], json!(name));
    let role = send(edge.get(&format!("/roles/{name}")).bearer_auth(&admin)).await;
    assert_eq!(role.expect_json(200)["permissions"], json!(["users:read"]));

    // Nobody else may create roles.
    let user = edge.new_user().await;
    send(edge.post("/roles").bearer_auth(&user.access).json(&json!({
        "name": unique_name("sneaky-"), "description": "x", "permissions": ["roles:manage"]
    })))
    .await
    .assert_problem(403, "forbidden");

    // Granting the role revokes the grantee's tokens: the edge refuses the old one itself.
    edge.me(&user.access).await.expect_json(200);
    let granted = send(
        edge.put(&format!("/users/{}/roles/{name}", user.id))
            .bearer_auth(&admin),
    )
    .await;
    assert_eq!(granted.status, 204, "{granted}");
    assert!(granted.header("x-users-revoked").is_none(), "{granted}");
    let before = s.origin_requests(ME).await;
    edge.me(&user.access).await.assert_invalid_token();
    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "the revoked token was refused by the edge, not forwarded"
    );
    // A fresh token carries the role: it may read other accounts.
    let fresh = edge.login(&user.username, &user.password).await;
    let other = edge.get_user(&fresh.access_token, s.app.admin.id).await;
    assert_eq!(other.expect_json(200)["username"], json!("admin"));
}

/// A password reset through the edge, with the token from the mail; the reset revokes the old
/// tokens at the edge at once.
pub async fn password_reset_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    edge.me(&user.access).await.expect_json(200);

    let requested = send(
        edge.post("/auth/password/reset")
            .json(&json!({"email": user.email})),
    )
    .await;
    assert_eq!(requested.status, 202, "{requested}");
    let mail = s
        .app
        .smtp
        .wait_for_mail_to(&user.email, MAIL_WAIT)
        .await
        .expect("a reset mail");
    let token = reset_token_line(&mail.data).expect("a token line in the mail");

    let new_password = other_strong_password();
    let before = s.origin_requests(ME).await;
    let reset = send(
        edge.put(&format!("/auth/password/reset/{token}"))
            .json(&json!({"password": new_password})),
    )
    .await;
    assert_eq!(reset.status, 204, "{reset}");
    assert!(reset.header("x-users-revoked").is_none(), "{reset}");
    edge.me(&user.access).await.assert_invalid_token();
    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "the revoked token was refused by the edge, not forwarded"
    );

    edge.login_raw(&user.username, &user.password)
        .await
        .assert_problem(401, "invalid-credentials");
    let fresh = edge.login(&user.username, &new_password).await;
    edge.me(&fresh.access_token).await.expect_json(200);
    send(
        edge.put(&format!("/auth/password/reset/{token}"))
            .json(&json!({"password": other_strong_password()})),
    )
    .await
    .assert_problem(400, "invalid-reset-token");
}

/// Profile reads are cached per user at the edge: the second and third reads never reach the
/// origin; `/users/{id}` shares the entry for the user and for readers with `users:read`, and
/// nobody else is served from it.
pub async fn cached_reads_are_served_without_the_origin<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;

    let before = s.origin_requests(ME).await;
    let first = edge.me(&user.access).await;
    first.expect_json(200);
    assert_eq!(first.cache().as_deref(), Some("miss"), "{first}");
    let after_first = s.origin_requests(ME).await;
    assert_eq!(
        after_first,
        before + 1.0,
        "the first read went to the origin"
    );

    let second = edge.me(&user.access).await;
    second.expect_json(200);
    assert_eq!(second.cache().as_deref(), Some("hit"), "{second}");
    let after_second = s.origin_requests(ME).await;
    let third = edge.me(&user.access).await;
    third.expect_json(200);
    assert_eq!(third.cache().as_deref(), Some("hit"), "{third}");
    let after_third = s.origin_requests(ME).await;
    assert_eq!(
        after_second, after_first,
        "the second read was served by the edge"
    );
    assert_eq!(
        after_third, after_second,
        "the third read was served by the edge"
    );
    assert_eq!(second.text, first.text);
    assert_eq!(third.text, first.text);
    assert_eq!(second.header("etag"), first.header("etag"));
    assert!(
        second
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );

    // `/users/{id}` of oneself, and of someone else for a reader with `users:read`.
    let by_id_before = s.origin_requests(USER).await;
    let own = edge.get_user(&user.access, user.id).await;
    own.expect_json(200);
    assert_eq!(own.cache().as_deref(), Some("hit"), "{own}");
    assert_eq!(own.text, first.text);
    let admin = edge
        .login(&s.app.admin.username, &s.app.admin.password)
        .await
        .access_token;
    let read = edge.get_user(&admin, user.id).await;
    read.expect_json(200);
    assert_eq!(read.cache().as_deref(), Some("hit"), "{read}");
    assert_eq!(s.origin_requests(USER).await, by_id_before);

    // Without `users:read` another user's profile is not served from the cache: the origin
    // answers, and says it does not exist.
    let other = edge.new_user().await;
    let probe = edge.get_user(&other.access, user.id).await;
    probe.assert_problem(404, "not-found");
    assert!(probe.cache().is_none(), "{probe}");
    assert_eq!(s.origin_requests(USER).await, by_id_before + 1.0);
}

/// Read-your-writes: a PATCH through the edge purges the cached profile, so the next read
/// shows the change with its new ETag, fetched from the origin.
pub async fn a_patch_through_the_edge_is_read_back_at_once<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;

    assert_eq!(edge.me(&user.access).await.cache().as_deref(), Some("miss"));
    let cached = edge.me(&user.access).await;
    assert_eq!(cached.cache().as_deref(), Some("hit"), "{cached}");
    let old_etag = cached.header("etag").expect("an ETag");

    let patched = edge
        .patch_user(
            &user.access,
            user.id,
            &json!({"display_name": "Fresh Name"}),
            Some(&old_etag),
        )
        .await;
    patched.expect_json(200);
    let new_etag = patched.header("etag").expect("an ETag on the PATCH answer");
    assert_ne!(new_etag, old_etag);

    let read = edge.me(&user.access).await;
    assert_eq!(read.expect_json(200)["display_name"], "Fresh Name");
    assert_eq!(read.cache().as_deref(), Some("miss"), "{read}");
    assert_eq!(read.header("etag").as_deref(), Some(new_etag.as_str()));
    let again = edge.me(&user.access).await;
    assert_eq!(again.cache().as_deref(), Some("hit"), "{again}");
    assert_eq!(again.json()["display_name"], "Fresh Name");

    // An admin's write to the account through the edge is read back by its owner too.
    let admin = edge
        .login(&s.app.admin.username, &s.app.admin.password)
        .await
        .access_token;
    edge.patch_user(
        &admin,
        user.id,
        &json!({"display_name": "Named By Admin"}),
        None,
    )
    .await
    .expect_json(200);
    let read = edge.me(&user.access).await;
    assert_eq!(read.expect_json(200)["display_name"], "Named By Admin");
    assert_eq!(read.cache().as_deref(), Some("miss"), "{read}");
}

/// A conditional read of a cached profile is answered `304` by the edge itself.
pub async fn if_none_match_is_answered_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let first = edge.me(&user.access).await;
    first.expect_json(200);
    let etag = first.header("etag").expect("an ETag");
    let before = s.origin_requests(ME).await;

    let not_modified = edge.me_if_none_match(&user.access, &etag).await;
    assert_eq!(not_modified.status, 304, "{not_modified}");
    assert_eq!(not_modified.cache().as_deref(), Some("hit"));
    assert_eq!(not_modified.header("etag").as_deref(), Some(etag.as_str()));
    assert!(not_modified.text.is_empty(), "{not_modified}");

    let weak = edge
        .me_if_none_match(&user.access, &format!("W/{etag}"))
        .await;
    assert_eq!(weak.status, 304, "weak comparison: {weak}");
    let listed = edge
        .me_if_none_match(&user.access, &format!("\"other\", {etag}"))
        .await;
    assert_eq!(listed.status, 304, "one of a list: {listed}");

    let changed = edge.me_if_none_match(&user.access, "\"other\"").await;
    assert_eq!(changed.status, 200, "{changed}");
    assert_eq!(changed.cache().as_deref(), Some("hit"));
    assert_eq!(changed.text, first.text);

    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "every conditional read was answered by the edge"
    );
}

/// Logout-all through the edge: the origin's revocation echo reaches the edge, which refuses
/// every token of the user on the very next request (the feed is polled only hourly here, so
/// the echo is the only way it can know), and the echo never reaches the client.
pub async fn logout_all_through_the_edge_is_enforced_at_once<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "3600")]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let second = edge.login(&user.username, &user.password).await;
    edge.me(&user.access).await.expect_json(200);
    edge.me(&second.access_token).await.expect_json(200);
    let before = s.origin_requests(ME).await;

    let out = edge.logout_all(&user.access).await;
    assert_eq!(out.status, 204, "{out}");
    assert!(
        out.header("x-users-revoked").is_none(),
        "the echo is stripped: {out}"
    );

    let refused = edge.me(&user.access).await;
    refused.assert_invalid_token();
    edge.me(&second.access_token).await.assert_invalid_token();
    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "both tokens were refused by the edge itself"
    );
    // Exactly what the origin says to the same token.
    let origin = s.origin().me(&user.access).await;
    assert_eq!(origin.status, 401);
    assert_eq!(refused.text, origin.text);

    edge.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid-grant");
    let fresh = edge.login(&user.username, &user.password).await;
    edge.me(&fresh.access_token).await.expect_json(200);
}

/// Revocations made at the origin directly (logout-all, password change) reach the edge
/// through the feed it polls: within `REVOCATION_SYNC_INTERVAL` (1 s here) plus a request,
/// the edge refuses the tokens itself (until then it serves the cached profile).
pub async fn revocations_at_the_origin_reach_the_edge_within_the_sync_interval<R: EdgeRuntime>(
    rt: &R,
) {
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "1")]).await;
    let edge = s.edge();
    let origin = s.origin();
    let logged_out = edge.new_user().await;
    let changed = edge.new_user().await;
    let bystander = edge.new_user().await;
    for u in [&logged_out, &changed, &bystander] {
        edge.me(&u.access).await.expect_json(200);
    }
    let before = s.origin_requests(ME).await;

    let out = origin.logout_all(&logged_out.access).await;
    assert_eq!(out.status, 204, "{out}");
    assert!(
        out.header("x-users-revoked").is_none(),
        "no echo for a request that did not come from the edge: {out}"
    );
    origin
        .patch_user(
            &changed.access,
            changed.id,
            &json!({"current_password": changed.password, "password": other_strong_password()}),
            None,
        )
        .await
        .expect_json(200);
    let revoked_at = Instant::now();

    let mut lag: [Option<Duration>; 2] = [None, None];
    while lag.iter().any(Option::is_none) && revoked_at.elapsed() < REVOCATION_LAG_MAX {
        for (i, u) in [&logged_out, &changed].into_iter().enumerate() {
            if lag[i].is_some() {
                continue;
            }
            let reply = edge.me(&u.access).await;
            match reply.status {
                401 => {
                    reply.assert_invalid_token();
                    lag[i] = Some(revoked_at.elapsed());
                }
                200 => assert_eq!(reply.cache().as_deref(), Some("hit"), "{reply}"),
                _ => panic!("unexpected answer while waiting for the revocation: {reply}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "revocation lag at the edge: logout-all {:?}, password change {:?}",
        lag[0], lag[1]
    );
    assert!(
        lag.iter().all(Option::is_some),
        "revocations at the origin not enforced by the edge within {REVOCATION_LAG_MAX:?}: \
         logout-all {:?}, password change {:?}",
        lag[0],
        lag[1]
    );
    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "the edge answered every read itself: cached, then refused"
    );
    edge.me(&bystander.access).await.expect_json(200);
}

/// `RATE_LIMIT_AUTH_IP=3/60s`: the fourth `/auth/*` request from one address is refused by
/// the edge with `429`, `Retry-After` and `RateLimit` headers, and never reaches the origin;
/// other routes are limited per user (`RATE_LIMIT_USER=5/60s`).
pub async fn auth_requests_are_rate_limited_per_ip_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(
        rt,
        &[
            ("RATE_LIMIT_AUTH_IP", "3/60s"),
            ("RATE_LIMIT_USER", "5/60s"),
        ],
    )
    .await;
    let edge = s.edge();
    // Made at the origin directly: they spend none of the edge's quota.
    let user = s.app.new_user().await;
    let other = s.app.new_user().await;
    let before = s.origin_requests(LOGIN).await;

    for i in 1..=3 {
        let ok = edge.login_raw(&user.username, &user.password).await;
        assert_eq!(ok.status, 200, "login {i}: {ok}");
        assert_eq!(
            ok.header("ratelimit-policy").as_deref(),
            Some(r#""auth-ip";q=3;w=60"#),
            "login {i}: {ok}"
        );
        assert!(
            ok.header("ratelimit")
                .is_some_and(|v| v.starts_with(&format!(r#""auth-ip";r={};t="#, 3 - i))),
            "login {i}: {ok}"
        );
    }
    let limited = edge.login_raw(&user.username, &user.password).await;
    limited.assert_problem(429, "rate-limited");
    limited.retry_after(60);
    assert_eq!(
        limited.header("ratelimit-policy").as_deref(),
        Some(r#""auth-ip";q=3;w=60"#),
        "{limited}"
    );
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""auth-ip";r=0;t="#)),
        "{limited}"
    );
    assert_edge_headers("the edge's 429", &limited);
    assert_eq!(
        s.origin_requests(LOGIN).await,
        before + 3.0,
        "the refused login never reached the origin"
    );
    // Every /auth/* path shares the per-address quota.
    edge.register(&unique_name("e"), "late@example.com", &strong_password())
        .await
        .assert_problem(429, "rate-limited");

    // Elsewhere the quota is per user.
    for i in 1..=5 {
        let ok = edge.me(&user.access).await;
        assert_eq!(ok.status, 200, "read {i}: {ok}");
        assert_eq!(
            ok.header("ratelimit-policy").as_deref(),
            Some(r#""user";q=5;w=60"#),
            "read {i}: {ok}"
        );
    }
    let limited = edge.me(&user.access).await;
    limited.assert_problem(429, "rate-limited");
    limited.retry_after(60);
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""user";r=0;t="#)),
        "{limited}"
    );
    edge.me(&other.access).await.expect_json(200);
}

/// Tokens the edge refuses get byte for byte the origin's `401` for the same token, and are
/// not forwarded.
pub async fn invalid_tokens_get_the_origins_401_from_the_edge<R: EdgeRuntime>(rt: &R) {
    let seed = random_seed();
    let app = origin_with(|vars| use_signing_seed(vars, seed)).await;
    let edge_handle = rt.start(&app.address, &edge_vars(&[])).await;
    let s = Stack {
        edge: edge_handle,
        app,
    };
    let edge = s.edge();
    let origin = s.origin();
    let user = edge.new_user().await;
    edge.me(&user.access).await.expect_json(200);

    let kid = thumbprint(&public_key_of(seed));
    let (header, claims) = jwt_parts(&user.access);
    assert_eq!(
        header["kid"],
        json!(kid),
        "the origin signs with the test's seed"
    );
    let with = |changes: Value| {
        let mut c = claims.clone();
        for (k, v) in changes.as_object().expect("an object") {
            c[k] = v.clone();
        }
        c
    };
    let now = now_secs();
    let mut parts = user.access.split('.');
    let (h, _, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let admin_claims = with(json!({"sub": s.app.admin.id.to_string()}));
    let tampered = format!(
        "{h}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(admin_claims.to_string())
    );
    let tokens = [
        ("garbage", "not-a-jwt".to_owned()),
        ("three empty parts", "..".to_owned()),
        (
            "alg none",
            compact_jws(
                &json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &claims,
                |_| Vec::new(),
            ),
        ),
        (
            "foreign key, the origin's kid",
            sign_eddsa(random_seed(), &kid, &claims),
        ),
        ("tampered claims", tampered),
        (
            "expired",
            sign_eddsa(
                seed,
                &kid,
                &with(json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})),
            ),
        ),
        (
            "wrong audience",
            sign_eddsa(seed, &kid, &with(json!({"aud": "someone-else"}))),
        ),
        (
            "wrong issuer",
            sign_eddsa(seed, &kid, &with(json!({"iss": "http://evil.test"}))),
        ),
    ];

    for (what, token) in &tokens {
        let before = s.origin_requests(ME).await;
        let at_edge = edge.me(token).await;
        assert_eq!(
            s.origin_requests(ME).await,
            before,
            "{what}: the edge refused it without asking the origin"
        );
        at_edge.assert_invalid_token();
        assert_edge_headers(what, &at_edge);
        let at_origin = origin.me(token).await;
        assert_eq!(at_edge.status, at_origin.status, "{what}");
        assert_eq!(at_edge.text, at_origin.text, "{what}: the same body");
        assert_eq!(
            at_edge.header("content-type"),
            at_origin.header("content-type"),
            "{what}"
        );
        assert_eq!(
            at_edge.header("www-authenticate"),
            at_origin.header("www-authenticate"),
            "{what}"
        );
    }
    // A token the origin signed, re-signed identically, still works: the edge knows the key.
    let resigned = sign_eddsa(seed, &kid, &claims);
    edge.me(&resigned).await.expect_json(200);
}

/// An origin and an edge that reaches it through a [`TcpProxy`] the test can cut or hang,
/// with `PROFILE_CACHE_TTL=1` and `STALE_IF_ERROR=300`.
async fn stack_behind_proxy<R: EdgeRuntime>(rt: &R, timeout_ms: u64) -> (Stack, TcpProxy) {
    let app = origin_with(|_| {}).await;
    let origin_addr = app
        .address
        .strip_prefix("http://")
        .expect("an http address")
        .parse()
        .expect("a socket address");
    let proxy = TcpProxy::start(origin_addr).await;
    let edge = rt
        .start(
            &format!("http://{}", proxy.addr()),
            &edge_vars(&[
                ("PROFILE_CACHE_TTL", "1"),
                ("STALE_IF_ERROR", "300"),
                ("ORIGIN_TIMEOUT_MS", &timeout_ms.to_string()),
            ]),
        )
        .await;
    (Stack { edge, app }, proxy)
}

/// With the origin unreachable (its connection cut), a profile cached earlier is served stale
/// (`STALE_IF_ERROR` past `PROFILE_CACHE_TTL`), everything else is a `503` problem with
/// `Retry-After`; when the origin is back, answers are fresh again.
pub async fn origin_down_serves_stale_reads_and_fails_writes_fast<R: EdgeRuntime>(rt: &R) {
    let (s, proxy) = stack_behind_proxy(rt, 1000).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let uncached = edge.new_user().await;
    let fresh = edge.me(&user.access).await;
    fresh.expect_json(200);
    assert_eq!(fresh.cache().as_deref(), Some("miss"));

    proxy.cut();
    // Past PROFILE_CACHE_TTL: only the origin's absence lets the entry be served.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let started = Instant::now();
    let stale = edge.me(&user.access).await;
    assert_eq!(stale.status, 200, "{stale}");
    assert_eq!(stale.cache().as_deref(), Some("stale"), "{stale}");
    assert_eq!(stale.text, fresh.text);
    assert_eq!(stale.header("etag"), fresh.header("etag"));
    assert_edge_headers("a stale read", &stale);

    let write = edge
        .patch_user(
            &user.access,
            user.id,
            &json!({"display_name": "Nope"}),
            None,
        )
        .await;
    write.assert_problem(503, "unavailable");
    write.retry_after(60);
    assert_edge_headers("the edge's 503", &write);
    let login = edge.login_raw(&user.username, &user.password).await;
    login.assert_problem(503, "unavailable");
    login.retry_after(60);
    // Nothing cached for this one: nothing to serve.
    edge.me(&uncached.access)
        .await
        .assert_problem(503, "unavailable");
    // A refused connection fails at once: no waiting for ORIGIN_TIMEOUT_MS.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "four requests to a cut origin took {:?}",
        started.elapsed()
    );

    // Back: fresh answers again.
    proxy.restore();
    let mut back = None;
    for _ in 0..50 {
        let reply = edge.me(&user.access).await;
        if reply.status == 200 && reply.cache().as_deref() == Some("miss") {
            back = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "the edge reaches the origin again");
    edge.patch_user(
        &user.access,
        user.id,
        &json!({"display_name": "Back"}),
        None,
    )
    .await
    .expect_json(200);
}

/// With the origin hanging (connections accepted, nothing answered), a write gets its `503`
/// and a cached profile its stale answer after `ORIGIN_TIMEOUT_MS`, not more (README: "`503`
/// problem + `Retry-After` after `ORIGIN_TIMEOUT_MS`"), on every request.
pub async fn a_hanging_origin_costs_one_origin_timeout<R: EdgeRuntime>(rt: &R) {
    const TIMEOUT_MS: u64 = 2000;
    let (s, proxy) = stack_behind_proxy(rt, TIMEOUT_MS).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    edge.me(&user.access).await.expect_json(200);

    proxy.blackhole();
    let bound = Duration::from_millis(TIMEOUT_MS + 1200);
    // Twice: the second request must not pay again for what the first already learned.
    let mut waits = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let write = edge
            .patch_user(
                &user.access,
                user.id,
                &json!({"display_name": "Nope"}),
                None,
            )
            .await;
        let write_took = started.elapsed();
        write.assert_problem(503, "unavailable");
        write.retry_after(60);
        assert!(
            write_took >= Duration::from_millis(TIMEOUT_MS - 100),
            "the write gave up before ORIGIN_TIMEOUT_MS: {write_took:?}"
        );
        // By now the cached profile is past PROFILE_CACHE_TTL (1 s).
        let started = Instant::now();
        let stale = edge.me(&user.access).await;
        let read_took = started.elapsed();
        assert_eq!(stale.status, 200, "{stale}");
        assert_eq!(stale.cache().as_deref(), Some("stale"), "{stale}");
        waits.push(("write", write_took));
        waits.push(("stale read", read_took));
    }
    eprintln!("hanging origin, ORIGIN_TIMEOUT_MS {TIMEOUT_MS}: {waits:?}");
    assert!(
        waits.iter().all(|(_, took)| *took <= bound),
        "with the origin hanging, requests waited more than ORIGIN_TIMEOUT_MS ({TIMEOUT_MS} ms) \
         + 1.2 s: {waits:?}"
    );
}

/// A client's `X-Forwarded-For`, `X-Real-IP`, `Forwarded` and `X-Edge-Secret` are dropped by
/// the edge: the origin records the address the edge saw (loopback under a local runtime),
/// never the claimed one; the client's request id is kept.
pub async fn client_forwarding_headers_are_not_trusted<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = s.app.new_user().await;
    let request_id = format!("edge-e2e-{}", Uuid::new_v4().simple());
    let spoofed = ["203.0.113.77", "203.0.113.78", "203.0.113.79"];

    let login = send(
        edge.post("/auth/login")
            .header("x-forwarded-for", spoofed[0])
            .header("x-real-ip", spoofed[1])
            .header("forwarded", format!("for={}", spoofed[2]))
            .header("spin-client-addr", format!("{}:4444", spoofed[0]))
            .header("x-edge-secret", "not-the-edge-secret-0123456789")
            .header("x-request-id", &request_id)
            .json(&json!({"login": user.username, "password": user.password})),
    )
    .await;
    login.expect_json(200);
    assert_eq!(login.header("x-request-id"), Some(request_id.clone()));

    let (target, ip) = audit_of_request(&s.app, "login.succeeded", &request_id)
        .await
        .expect("the login is audited with the client's request id");
    assert_eq!(target, Some(user.id));
    let ip = ip.expect("an audited address");
    assert!(
        !spoofed.contains(&ip.as_str()),
        "the spoofed address was believed: {ip}"
    );
    let parsed: IpAddr = ip
        .parse()
        .unwrap_or_else(|_| panic!("an IP address, got {ip:?}"));
    assert!(parsed.is_loopback(), "the local client's address, got {ip}");
}

/// Every answer, whoever made it (the edge, its cache or the origin), carries the security
/// headers and a request id: the client's when well-formed, a fresh one otherwise.
pub async fn security_headers_and_request_ids_on_every_answer<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;

    let answers = [
        ("the edge's health", send(edge.get("/edge/health")).await),
        ("a forwarded read", edge.me(&user.access).await),
        ("a cached read", edge.me(&user.access).await),
        ("the edge's 401", edge.me("not-a-jwt").await),
        ("the origin's 404", send(edge.get("/no/such/thing")).await),
        (
            "the origin's 401",
            edge.login_raw(&user.username, "wrong-passphrase-for-sure-here")
                .await,
        ),
    ];
    assert_eq!(answers[0].1.status, 200);
    assert_eq!(answers[2].1.cache().as_deref(), Some("hit"));
    assert_eq!(answers[4].1.status, 404);
    let mut ids = Vec::new();
    for (what, reply) in &answers {
        assert_edge_headers(what, reply);
        ids.push(reply.header("x-request-id").unwrap_or_default());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        answers.len(),
        "every answer has its own id: {ids:?}"
    );

    // A well-formed client id is kept: on the edge's own answers and through to the origin.
    for (what, req) in [
        ("health", edge.get("/edge/health")),
        ("edge 401", edge.get("/users/me").bearer_auth("not-a-jwt")),
        (
            "cached read",
            edge.get("/users/me").bearer_auth(&user.access),
        ),
    ] {
        let id = format!("edge-e2e-{}", Uuid::new_v4().simple());
        let reply = send(req.header("x-request-id", &id)).await;
        assert_eq!(reply.header("x-request-id"), Some(id), "{what}: {reply}");
    }
    let id = format!("edge-e2e-{}", Uuid::new_v4().simple());
    let reply = send(
        edge.post("/auth/login")
            .header("x-request-id", &id)
            .json(&json!({"login": user.username, "password": user.password})),
    )
    .await;
    reply.expect_json(200);
    assert_eq!(reply.header("x-request-id"), Some(id.clone()));
    audit_of_request(&s.app, "login.succeeded", &id)
        .await
        .expect("the origin recorded the client's request id");

    // An ill-formed one is replaced.
    for bad in ["has spaces in it", &"x".repeat(200), "semi;colon"] {
        let reply = send(
            edge.get("/users/me")
                .bearer_auth(&user.access)
                .header("x-request-id", bad),
        )
        .await;
        let got = reply.header("x-request-id").unwrap_or_default();
        assert!(!got.is_empty() && got != bad, "{bad:?} was kept: {reply}");
    }
}

/// The origin's internal endpoints are for the edge and for Prometheus, not for clients: the
/// edge must not forward a client's request to them with its secret attached.
pub async fn internal_endpoints_are_not_reachable_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    // Something for the feed to show.
    s.origin().logout_all(&user.access).await;
    let direct = send(s.origin().get("/internal/revocations?since=0")).await;
    direct.assert_problem(404, "not-found");

    let mut exposed = Vec::new();
    // The paths themselves: the edge's own 404.
    for path in [
        "/internal/revocations?since=0",
        "/v1/internal/revocations?since=0",
        "/metrics",
        "/v1/metrics",
    ] {
        let reply = send(edge.get(path)).await;
        if reply.status != 404 {
            exposed.push(format!("GET {path}: {reply}"));
        } else {
            reply.assert_problem(404, "not-found");
        }
    }
    // Spellings that might slip past a prefix check: whoever refuses them, nothing is served.
    for path in [
        "//internal/revocations?since=0",
        "/internal/revocations/?since=0",
        "/%69nternal/revocations?since=0",
        "/internal%2Frevocations?since=0",
        "/v1//internal/revocations?since=0",
        "/metrics/",
        "//metrics",
        "/%6Detrics",
    ] {
        let reply = send(edge.get(path)).await;
        if (200..300).contains(&reply.status)
            || reply.text.contains("\"events\"")
            || reply.text.contains("http_requests_total")
        {
            exposed.push(format!("GET {path}: {reply}"));
        }
    }
    let head = send(edge.request(Method::HEAD, "/metrics")).await;
    if (200..300).contains(&head.status) {
        exposed.push(format!("HEAD /metrics: {head}"));
    }
    assert!(
        exposed.is_empty(),
        "internal endpoints answer clients through the edge:\n{}",
        exposed.join("\n")
    );
}

/// A deletion is a revocation with the highest security version (2^63 − 1, beyond what a
/// JavaScript number holds exactly). Recording it must not wedge the edge's revocation store:
/// the feed is still polled at most every `REVOCATION_SYNC_INTERVAL` (here: once, then
/// hourly), not on every request, and the deleted account's tokens are refused by the edge.
pub async fn a_deletion_does_not_wedge_the_revocation_feed<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "3600")]).await;
    let edge = s.edge();
    let doomed = s.app.new_user().await;
    let reader = s.app.new_user().await;
    let deleted = send(
        s.origin()
            .delete(&format!("/users/{}", doomed.id))
            .bearer_auth(&s.app.admin.access),
    )
    .await;
    assert_eq!(deleted.status, 204, "{deleted}");

    let before = s.origin_requests(FEED).await;
    for _ in 0..5 {
        edge.me(&reader.access).await.expect_json(200);
    }
    let polls = s.origin_requests(FEED).await - before;
    assert_eq!(
        polls, 1.0,
        "5 requests polled the revocation feed {polls} times (REVOCATION_SYNC_INTERVAL=3600): \
         the poll that met the deletion was not recorded"
    );

    let before = s.origin_requests(ME).await;
    edge.me(&doomed.access).await.assert_invalid_token();
    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "the deleted account's token was refused by the edge itself"
    );
}

/// A body over the origin's 64 KiB limit gets the `413` problem from the edge and never
/// reaches the origin; one at the limit is forwarded and judged by the origin.
pub async fn oversized_bodies_are_refused_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let before = s.origin_requests(LOGIN).await;
    // `{"login":"…","password":"x"}` of 64 KiB, then one byte more.
    let body = |len: usize| {
        let filler = len - r#"{"login":"","password":"x"}"#.len();
        format!(r#"{{"login":"{}","password":"x"}}"#, "a".repeat(filler))
    };
    let over = send(
        edge.post("/auth/login")
            .header("content-type", "application/json")
            .body(body(64 * 1024 + 1)),
    )
    .await;
    over.assert_problem(413, "payload-too-large");
    assert_edge_headers("the edge's 413", &over);
    assert_eq!(
        s.origin_requests(LOGIN).await,
        before,
        "the oversized login never reached the origin"
    );
    let at_limit = send(
        edge.post("/auth/login")
            .header("content-type", "application/json")
            .body(body(64 * 1024)),
    )
    .await;
    at_limit.assert_problem(401, "invalid-credentials");
    assert_eq!(s.origin_requests(LOGIN).await, before + 1.0);
}
