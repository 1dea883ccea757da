//! The audit trail (SPEC §4): security-relevant events are recorded with actor, target, time,
//! request id and IP; the request id is the one the response carried.

use serde_json::json;

use uuid::Uuid;

use deadpool_postgres::{Manager, Pool};
use users_origin::db::audit::{Ctx, Event};
use users_origin::db::sessions;

use crate::helpers::{
    Api as _, Reply, TestApp, TestUser, other_strong_password, spawn_app, spawn_app_and_user,
};
use crate::testdb::database_url;

/// `POST /auth/login` for `user` as request `request_id`, with extra `headers`.
async fn login_as_request(
    app: &TestApp,
    user: &TestUser,
    request_id: &str,
    headers: &[(&str, &str)],
) -> Reply {
    app.post("/auth/login")
        .request_id(request_id)
        .headers(headers)
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await
}

/// A login as `login` with a wrong passphrase, answered `401`; returns its request id.
async fn failed_login(app: &TestApp, login: &str) -> String {
    let failed = app.login_raw(login, "wrong-passphrase-for-sure-here").await;
    failed.expect_status(401).request_id()
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_are_audited_with_request_id_and_ip() {
    let (app, user) = spawn_app_and_user().await;
    let request_id = format!("req-{}", Uuid::new_v4().simple());

    let ok = login_as_request(&app, &user, &request_id, &[]).await;
    ok.expect_status(200);
    assert_eq!(ok.request_id(), request_id, "echoed");
    let failed_id = failed_login(&app, &user.username).await;

    let succeeded = app
        .audit_of_request("login.succeeded", &request_id)
        .await
        .expect("login.succeeded with the client's request id");
    assert_eq!(succeeded.actor, Some(user.id));
    assert_eq!(succeeded.target, Some(user.id));
    assert_eq!(succeeded.ip.as_deref(), Some("127.0.0.1"));
    let failed = app
        .audit_of_request("login.failed", &failed_id)
        .await
        .expect("login.failed with the generated request id");
    assert_eq!(failed.ip.as_deref(), Some("127.0.0.1"));
}

/// Stores a login (its session, refresh token and audit entry) for `user_id` as request
/// `request_id`; returns what the store said and how many token and audit rows it left.
async fn store_login(
    app: &TestApp,
    db: &deadpool_postgres::Client,
    user_id: Uuid,
    request_id: &str,
) -> (bool, i64, i64) {
    let ctx = Ctx {
        request_id: Some(request_id.to_owned()),
        ip: Some("203.0.113.9".to_owned()),
    };
    let event = Event {
        action: "login.succeeded",
        actor: Some(user_id),
        target: Some(user_id),
        details: json!({}),
    };
    let (_, digest) = users_origin::tokens::generate();
    let origin = sessions::Origin::default();
    let login = sessions::NewLogin {
        session_id: Uuid::now_v7(),
        user_id,
        refresh_digest: &digest,
        refresh_ttl: 60,
        access_ttl: 60,
        origin: &origin,
        amr: &["pwd"],
    };
    let stored = sessions::open(db, &login, &ctx, event).await.unwrap();
    let token_sql = "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1";
    let audit_sql = "SELECT count(*) FROM audit_log WHERE request_id = $1";
    let token_rows = app.count(token_sql, &[&digest]).await;
    let audit_rows = app.count(audit_sql, &[&request_id]).await;
    (stored, token_rows, audit_rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_stores_its_refresh_token_with_its_audit_entry_and_only_for_an_active_account() {
    let (app, user) = spawn_app_and_user().await;
    let pg: tokio_postgres::Config = database_url(&app.db_name).parse().unwrap();
    let pool = Pool::builder(Manager::new(pg, tokio_postgres::NoTls))
        .max_size(1)
        .build()
        .unwrap();
    let db = pool.get().await.unwrap();

    assert_eq!(
        store_login(&app, &db, user.id, "it-login-active").await,
        (true, 1, 1)
    );
    app.db
        .execute(
            "UPDATE users SET is_active = false WHERE id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    assert_eq!(
        store_login(&app, &db, user.id, "it-login-deactivated").await,
        (false, 0, 0),
        "deactivated while its password was checked: neither is stored"
    );
    assert_eq!(
        store_login(&app, &db, Uuid::now_v7(), "it-login-deleted").await,
        (false, 0, 0),
        "deleted: neither is stored, and no foreign-key error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_on_an_existing_account_names_it_as_target() {
    let (app, user) = spawn_app_and_user().await;

    let request_id = failed_login(&app, &user.email).await;

    let row = app
        .audit_of_request("login.failed", &request_id)
        .await
        .expect("login.failed");
    assert_eq!(
        row.target,
        Some(user.id),
        "the attacked account can be found in the trail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn self_registration_is_audited() {
    let (app, user) = spawn_app_and_user().await;

    let sql = "SELECT action FROM audit_log WHERE target_id = $1 AND actor_id = $1";
    let actions = app.strings(sql, &[&user.id]).await;
    assert!(
        actions
            .iter()
            .any(|a| a == "user.registered" || a == "user.created"),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_login_for_an_unknown_name_is_audited() {
    let app = spawn_app().await;

    let rid = failed_login(&app, "ghost-login").await;

    assert!(app.audit_of_request("login.failed", &rid).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_actions_on_users_are_audited_with_actor_and_target() {
    let app = spawn_app().await;
    let user = app.new_user_with_roles(&["user"]).await;
    let as_admin = app.as_admin();

    for patch in [
        json!({"display_name": "Audited"}),
        json!({"is_active": false}),
    ] {
        as_admin.patch_user(user.id, &patch).await.expect_json(200);
    }
    as_admin.delete_user(user.id).await.expect_status(204);

    for action in [
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.deleted",
    ] {
        let row = app
            .wait_for_audit(action, user.id)
            .await
            .unwrap_or_else(|| panic!("{action} is audited"));
        assert_eq!(row.actor, Some(app.admin.id), "{action} actor");
        assert!(
            row.request_id.is_some_and(|r| !r.is_empty()),
            "{action} request id"
        );
        assert!(row.ip.is_some(), "{action} ip");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_user_is_audited_with_the_admin_as_actor() {
    let app = spawn_app().await;
    let user = app.new_user_with_roles(&["user"]).await;

    let row = app
        .wait_for_audit("user.created", user.id)
        .await
        .expect("user.created");

    assert_eq!(row.actor, Some(app.admin.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_changes_are_audited() {
    let (app, user) = spawn_app_and_user().await;

    let change = json!({"password": other_strong_password(), "current_password": user.password});
    app.as_user(&user)
        .patch_user(user.id, &change)
        .await
        .expect_json(200);

    let row = app
        .wait_for_audit("password.changed", user.id)
        .await
        .expect("password.changed");
    assert_eq!(row.actor, Some(user.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn role_events_are_audited() {
    let (app, user) = spawn_app_and_user().await;
    let as_admin = app.as_admin();
    app.create_role("auditor", &["users:read"]).await;
    let update = json!({"description": "Reads users"});
    let updated = as_admin.patch("/roles/auditor").json(&update).send().await;
    updated.expect_json(200);
    let role_changes = [
        as_admin.grant_role(user.id, "auditor").await,
        as_admin.revoke_role(user.id, "auditor").await,
        as_admin.delete("/roles/auditor").send().await,
    ];
    for done in role_changes {
        done.expect_status(204);
    }

    for action in ["role.granted", "role.revoked"] {
        let row = app.wait_for_audit(action, user.id).await.expect(action);
        assert_eq!(row.actor, Some(app.admin.id), "{action}");
    }
    let sql =
        "SELECT action FROM audit_log WHERE action LIKE 'role.%' AND actor_id = $1 ORDER BY id";
    let role_actions = app.strings(sql, &[&app.admin.id]).await;
    for action in ["role.created", "role.updated", "role.deleted"] {
        assert!(
            role_actions.iter().any(|a| a == action),
            "{action} in {role_actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoofed_x_forwarded_for_is_not_trusted() {
    // No proxies are configured, so the peer address is the client's address.
    let (app, user) = spawn_app_and_user().await;
    let request_id = format!("req-{}", Uuid::new_v4().simple());

    let spoofed = [
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=203.0.113.7"),
        ("x-real-ip", "203.0.113.7"),
    ];
    let resp = login_as_request(&app, &user, &request_id, &spoofed).await;
    resp.expect_status(200);

    let row = app
        .audit_of_request("login.succeeded", &request_id)
        .await
        .expect("login.succeeded");
    assert_eq!(row.ip.as_deref(), Some("127.0.0.1"));
}
