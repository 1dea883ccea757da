//! Test accounts and roles: [`TestUser`] (credentials and a current token pair), the admin's
//! typed arrange steps on a [`TestApp`] (`create_user`, `new_user_with_roles`, `create_role`),
//! and fresh names and passphrases. Self-registration ([`crate::helpers::Api::new_user`]) works
//! through any base, the edge's included.

use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Api, Bearer, Reply, TestApp};

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

/// A fresh account's credentials, before the account exists.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub email: String,
    pub password: String,
}

impl Credentials {
    /// A unique name with `prefix`, its `@example.com` address and a strong passphrase.
    pub fn fresh(prefix: &str) -> Self {
        let username = unique_name(prefix);
        Self {
            email: format!("{username}@example.com"),
            username,
            password: strong_password(),
        }
    }

    /// Logs the account in through `api`, once `created` (its `201` with the user view) has
    /// made it.
    pub async fn log_in<A: Api + ?Sized>(self, api: &A, created: &Reply) -> TestUser {
        let id = created.expect_json(201)["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a user id");
        let pair = api.login(&self.username, &self.password).await;
        TestUser {
            id,
            username: self.username,
            email: self.email,
            password: self.password,
            access: pair.access_token,
            refresh: pair.refresh_token,
        }
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

/// The JSON of a new account named `username`: its `@example.com` address and a strong
/// passphrase, then `extra` members.
pub fn account_json(username: &str, extra: Value) -> Value {
    let mut body = json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "password": strong_password(),
    });
    for (key, value) in extra.as_object().expect("an object of members") {
        body[key] = value.clone();
    }
    body
}

impl TestApp {
    /// Requests as the bootstrap admin.
    pub fn as_admin(&self) -> Bearer<'_> {
        self.as_user(&self.admin)
    }

    /// `POST /users` as the admin.
    pub async fn create_user(&self, body: &Value) -> Reply {
        self.as_admin().post_user(body).await
    }

    /// Creates an account with `roles` as the admin and logs it in.
    pub async fn new_user_with_roles(&self, roles: &[&str]) -> TestUser {
        let account = Credentials::fresh("r");
        let created = self
            .create_user(&json!({
                "username": account.username, "email": account.email,
                "password": account.password, "roles": roles
            }))
            .await;
        account.log_in(self, &created).await
    }

    /// Creates the custom role `auditor` (`users:read` only), then an account holding only it.
    pub async fn new_auditor(&self) -> TestUser {
        self.create_role("auditor", &["users:read"]).await;
        self.new_user_with_roles(&["auditor"]).await
    }

    /// Creates a custom role as the admin and expects `201`.
    pub async fn create_role(&self, name: &str, permissions: &[&str]) {
        let body =
            json!({"name": name, "description": "made by a test", "permissions": permissions});
        self.as_admin().post_role(&body).await.expect_status(201);
    }

    /// Logs the account `user` in once more: a second session with its own token pair.
    pub async fn second_session(&self, user: &TestUser) -> TestUser {
        let pair = self.login(&user.username, &user.password).await;
        TestUser {
            access: pair.access_token,
            refresh: pair.refresh_token,
            ..user.clone()
        }
    }
}
