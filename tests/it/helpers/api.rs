//! The request API every suite speaks, whatever answers: the origin under test, a replica,
//! nginx or an edge.
//!
//! [`Api`] is implemented by anything with a base URL and a client ([`crate::helpers::TestApp`],
//! [`Endpoint`]). It builds requests ([`Call`]), makes them carry an access token
//! ([`Api::as_user`], [`Api::bearer`]: a [`Bearer`] is an `Api` too) and offers the typed
//! requests the suites repeat (`login`, `me`, `patch_user`, …). [`Call::send`] reads the answer
//! into a [`Reply`], whose assertions live in [`crate::helpers::reply`]. So one line reads the
//! same against every tier:
//!
//! ```ignore
//! app.as_user(&alice).get_user(bob.id).await.assert_problem(404, "not-found");
//! edge.as_user(&alice).me().await.expect_json(200);
//! ```

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Credentials, Reply, TestUser, TokenPair, http_client};

/// A request being built; [`Call::send`] sends it and reads the answer.
#[derive(Debug)]
#[must_use = "a call does nothing until it is sent"]
pub struct Call(RequestBuilder);

impl Call {
    /// Carries `token` as the bearer access token.
    pub fn bearer(self, token: &str) -> Self {
        Self(self.0.bearer_auth(token))
    }

    pub fn header(self, name: &str, value: impl AsRef<str>) -> Self {
        Self(self.0.header(name, value.as_ref()))
    }

    /// Every `(name, value)` of `headers`.
    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |call, (name, value)| call.header(name, value))
    }

    /// An `X-Request-Id` of the client's.
    pub fn request_id(self, id: &str) -> Self {
        self.header("x-request-id", id)
    }

    pub fn json(self, body: &impl Serialize) -> Self {
        Self(self.0.json(body))
    }

    /// A JSON Merge Patch (`application/merge-patch+json`).
    pub fn merge_patch(self, patch: &Value) -> Self {
        self.header("content-type", "application/merge-patch+json")
            .body(patch.to_string())
    }

    /// A raw body sent as `content_type`.
    pub fn typed_body(self, content_type: &str, body: impl Into<reqwest::Body>) -> Self {
        self.header("content-type", content_type).body(body)
    }

    pub fn form(self, form: &impl Serialize) -> Self {
        Self(self.0.form(form))
    }

    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self(self.0.body(body))
    }

    pub fn query(self, query: &impl Serialize) -> Self {
        Self(self.0.query(query))
    }

    pub fn basic_auth(self, username: &str, password: &str) -> Self {
        Self(self.0.basic_auth(username, Some(password)))
    }

    /// Sends the request and reads the answer; panics when no answer comes.
    pub async fn send(self) -> Reply {
        self.try_send().await.expect("send the request")
    }

    /// Sends the request and reads the answer, or says why none came. The answer goes to
    /// the traffic log when it is on ([`super::record`]).
    pub async fn try_send(self) -> reqwest::Result<Reply> {
        let (client, request) = self.0.build_split();
        let request = request?;
        let (method, url) = (request.method().clone(), request.url().clone());
        let reply = Reply::read(client.execute(request).await?).await?;
        super::record::record(&method, &url, &reply);
        Ok(reply)
    }
}

/// Something that answers HTTP at a base URL. Requests carry [`Api::token`] when there is one.
#[allow(async_fn_in_trait)]
pub trait Api {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    fn base(&self) -> &str;

    fn client(&self) -> &reqwest::Client;

    /// The access token every request carries, if any.
    fn token(&self) -> Option<&str> {
        None
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    fn request(&self, method: Method, path: &str) -> Call {
        let call = Call(self.client().request(method, self.url(path)));
        match self.token() {
            Some(token) => call.bearer(token),
            None => call,
        }
    }

    fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }

    fn patch(&self, path: &str) -> Call {
        self.request(Method::PATCH, path)
    }

    fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// The same base, with requests carrying `token`.
    fn bearer<'a>(&'a self, token: &'a str) -> Bearer<'a> {
        Bearer {
            base: self.base(),
            client: self.client(),
            token,
        }
    }

    /// The same base, with requests carrying `user`'s access token.
    fn as_user<'a>(&'a self, user: &'a TestUser) -> Bearer<'a> {
        self.bearer(&user.access)
    }

    /// `POST /auth/register`.
    async fn register(&self, username: &str, email: &str, password: &str) -> Reply {
        self.post("/auth/register")
            .json(&json!({"username": username, "email": email, "password": password}))
            .send()
            .await
    }

    /// `POST /auth/login` with JSON.
    async fn login_raw(&self, login: &str, password: &str) -> Reply {
        self.post("/auth/login")
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
    }

    /// Logs in and expects success.
    async fn login(&self, login: &str, password: &str) -> TokenPair {
        let reply = self.login_raw(login, password).await;
        assert_eq!(reply.status, 200, "login of {login} failed: {reply}");
        reply.json_as()
    }

    /// `POST /auth/logout` of the session of `refresh_token`.
    async fn logout(&self, refresh_token: &str) -> Reply {
        self.post("/auth/logout")
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
    }

    /// Asserts that `user`'s passphrase is now `password`: the old one is refused, the new one
    /// logs in. Returns the new login's token pair.
    async fn assert_password_is(&self, user: &TestUser, password: &str) -> TokenPair {
        let old = self.login_raw(&user.username, &user.password).await;
        old.assert_problem(401, "invalid-credentials");
        self.login(&user.username, password).await
    }

    /// `POST /auth/refresh`.
    async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post("/auth/refresh")
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
    }

    /// `POST /auth/password/reset` for `email`.
    async fn request_reset(&self, email: &str) -> Reply {
        self.post("/auth/password/reset")
            .json(&json!({"email": email}))
            .send()
            .await
    }

    /// `PUT /auth/password/reset/{token}` with the new `password`.
    async fn complete_reset(&self, token: &str, password: &str) -> Reply {
        self.put(&format!("/auth/password/reset/{token}"))
            .json(&json!({"password": password}))
            .send()
            .await
    }

    /// Registers a fresh account through this base and logs it in.
    async fn new_user(&self) -> TestUser {
        let account = Credentials::fresh("u");
        let created = self
            .register(&account.username, &account.email, &account.password)
            .await;
        account.log_in(self, &created).await
    }

    /// `GET /users/me`.
    async fn me(&self) -> Reply {
        self.get("/users/me").send().await
    }

    /// The id of the user the token belongs to, read from `GET /users/me`.
    async fn user_id(&self) -> Uuid {
        self.me().await.expect_json(200)["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a user id")
    }

    /// `GET /users/{id}`.
    async fn get_user(&self, id: Uuid) -> Reply {
        self.get(&format!("/users/{id}")).send().await
    }

    /// `GET /users` with `query`.
    async fn list_users(&self, query: &[(&str, &str)]) -> Reply {
        self.get("/users").query(&query).send().await
    }

    /// `POST /users` with `body`.
    async fn post_user(&self, body: &Value) -> Reply {
        self.post("/users").json(body).send().await
    }

    /// Sets the display name of the user `id` with a merge patch, expecting `200`; returns the
    /// view.
    async fn set_display_name(&self, id: Uuid, name: &str) -> Value {
        let patch = json!({"display_name": name});
        self.patch_user(id, &patch).await.expect_json(200)
    }

    /// `PATCH /users/{id}` with a merge patch.
    async fn patch_user(&self, id: Uuid, patch: &Value) -> Reply {
        self.patch(&format!("/users/{id}"))
            .merge_patch(patch)
            .send()
            .await
    }

    /// `DELETE /users/{id}`.
    async fn delete_user(&self, id: Uuid) -> Reply {
        self.delete(&format!("/users/{id}")).send().await
    }

    /// `POST /auth/logout` of every session.
    async fn logout_all(&self) -> Reply {
        self.post("/auth/logout")
            .json(&json!({"all": true}))
            .send()
            .await
    }

    /// `PUT /users/{user}/roles/{role}`.
    async fn grant_role(&self, user: Uuid, role: &str) -> Reply {
        self.put(&format!("/users/{user}/roles/{role}"))
            .send()
            .await
    }

    /// `DELETE /users/{user}/roles/{role}`.
    async fn revoke_role(&self, user: Uuid, role: &str) -> Reply {
        self.delete(&format!("/users/{user}/roles/{role}"))
            .send()
            .await
    }

    /// `GET /roles/{name}`.
    async fn get_role(&self, name: &str) -> Reply {
        self.get(&format!("/roles/{name}")).send().await
    }

    /// `POST /roles` with `body`.
    async fn post_role(&self, body: &Value) -> Reply {
        self.post("/roles").json(body).send().await
    }
}

/// A base whose requests carry an access token: [`Api::bearer`], [`Api::as_user`].
#[derive(Debug, Clone, Copy)]
pub struct Bearer<'a> {
    base: &'a str,
    client: &'a reqwest::Client,
    token: &'a str,
}

impl Api for Bearer<'_> {
    fn base(&self) -> &str {
        self.base
    }

    fn client(&self) -> &reqwest::Client {
        self.client
    }

    fn token(&self) -> Option<&str> {
        Some(self.token)
    }
}

/// A base URL with a client of its own: a replica, nginx, an edge, the origin seen from it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    client: reqwest::Client,
}

impl Endpoint {
    /// `base` with the tests' [`http_client`].
    pub fn new(base: &str) -> Self {
        Self::with_client(base, http_client())
    }

    /// `base` with [`http_client`] giving up on a request after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        Self::with_client(base, http_client_with_timeout(timeout))
    }

    pub fn with_client(base: &str, client: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// `host:port`, as a peer names it.
    pub fn host_port(&self) -> &str {
        self.base.strip_prefix("http://").unwrap_or(&self.base)
    }
}

impl Api for Endpoint {
    fn base(&self) -> &str {
        &self.base
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// The tests' HTTP client with `timeout`: no redirects, no proxies.
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .build()
        .expect("build the HTTP client")
}
