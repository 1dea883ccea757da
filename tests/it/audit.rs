//! The audit trail (SPEC §4): security-relevant events are recorded with actor, target, time,
//! request id and IP; the request id is the one the response carried.

use serde_json::json;

use uuid::Uuid;

use deadpool_postgres::{Manager, Pool};
use users_origin::db::audit::{Ctx, Event};
use users_origin::db::tokens::{self, NewRefresh};

use crate::helpers::{TestApp, header, json_body, other_strong_password, spawn_app};
use crate::testdb::PG_BASE;

/// Waits up to 5 s for the audit row of `action` written by request `request_id`; returns
/// `(actor_id, target_id, ip)`.
async fn wait_for_request(
    app: &TestApp,
    action: &str,
    request_id: &str,
) -> Option<(Option<Uuid>, Option<Uuid>, Option<String>)> {
    for _ in 0..100 {
        let row = app
            .db
            .query_opt(
                "SELECT actor_id, target_id, ip FROM audit_log WHERE action = $1 AND request_id = $2",
                &[&action, &request_id],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return Some((row.get(0), row.get(1), row.get(2)));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_are_audited_with_request_id_and_ip() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let request_id = format!("req-{}", Uuid::new_v4().simple());

    let ok = app
        .post("/auth/login")
        .header("x-request-id", &request_id)
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        header(&ok, "x-request-id").as_deref(),
        Some(request_id.as_str()),
        "echoed"
    );
    let failed = app
        .login_raw(&user.username, "wrong-passphrase-for-sure-here")
        .await;
    assert_eq!(failed.status(), 401);
    let failed_id = header(&failed, "x-request-id").expect("a generated request id");

    let (actor, target, ip) = wait_for_request(&app, "login.succeeded", &request_id)
        .await
        .expect("login.succeeded with the client's request id");
    assert_eq!(actor, Some(user.id));
    assert_eq!(target, Some(user.id));
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    let (_, _, ip) = wait_for_request(&app, "login.failed", &failed_id)
        .await
        .expect("login.failed with the generated request id");
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}

/// Stores a login's refresh token and audit entry for `user_id` as request `request_id`;
/// returns what the store said and how many token and audit rows it left.
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
    let stored = tokens::insert_refresh_audited(
        db,
        &NewRefresh::new(user_id, Uuid::now_v7(), &digest, 60),
        &ctx,
        event,
    )
    .await
    .unwrap();
    let token_rows: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1",
            &[&digest],
        )
        .await
        .unwrap()
        .get(0);
    let audit_rows: i64 = app
        .db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE request_id = $1",
            &[&request_id],
        )
        .await
        .unwrap()
        .get(0);
    (stored, token_rows, audit_rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_stores_its_refresh_token_with_its_audit_entry_and_only_for_an_active_account() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let pg: tokio_postgres::Config = format!("{PG_BASE}/{}", app.db_name).parse().unwrap();
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
    let app = spawn_app().await;
    let user = app.new_user().await;

    let failed = app
        .login_raw(&user.email, "wrong-passphrase-for-sure-here")
        .await;
    assert_eq!(failed.status(), 401);
    let request_id = header(&failed, "x-request-id").expect("a request id");

    let (_, target, _) = wait_for_request(&app, "login.failed", &request_id)
        .await
        .expect("login.failed");
    assert_eq!(
        target,
        Some(user.id),
        "the attacked account can be found in the trail"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn self_registration_is_audited() {
    let app = spawn_app().await;

    let user = app.new_user().await;

    let actions: Vec<String> = app
        .db
        .query(
            "SELECT action FROM audit_log WHERE target_id = $1 AND actor_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
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

    let resp = app
        .login_raw("ghost-login", "wrong-passphrase-for-sure-here")
        .await;
    let rid = header(&resp, "x-request-id").expect("request id");
    assert_eq!(resp.status(), 401);

    assert!(wait_for_request(&app, "login.failed", &rid).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_actions_on_users_are_audited_with_actor_and_target() {
    let app = spawn_app().await;
    let user = app.new_user_with_roles(&["user"]).await;

    json_body(
        app.patch_user(
            &app.admin.access,
            user.id,
            &json!({"display_name": "Audited"}),
        )
        .await,
        200,
    )
    .await;
    json_body(
        app.patch_user(&app.admin.access, user.id, &json!({"is_active": false}))
            .await,
        200,
    )
    .await;
    let resp = app
        .delete(&format!("/users/{}", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    for action in [
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.deleted",
    ] {
        let (actor, rid, ip) = app
            .wait_for_audit(action, user.id)
            .await
            .unwrap_or_else(|| panic!("{action} is audited"));
        assert_eq!(actor, Some(app.admin.id), "{action} actor");
        assert!(rid.is_some_and(|r| !r.is_empty()), "{action} request id");
        assert!(ip.is_some(), "{action} ip");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_user_is_audited_with_the_admin_as_actor() {
    let app = spawn_app().await;
    let user = app.new_user_with_roles(&["user"]).await;

    let (actor, _, _) = app
        .wait_for_audit("user.created", user.id)
        .await
        .expect("user.created");

    assert_eq!(actor, Some(app.admin.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_changes_are_audited() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let resp = app
        .patch_user(
            &user.access,
            user.id,
            &json!({"password": other_strong_password(), "current_password": user.password}),
        )
        .await;
    json_body(resp, 200).await;

    let (actor, _, _) = app
        .wait_for_audit("password.changed", user.id)
        .await
        .expect("password.changed");
    assert_eq!(actor, Some(user.id));
}

#[tokio::test(flavor = "multi_thread")]
async fn role_events_are_audited() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    app.create_role("auditor", &["users:read"]).await;
    let resp = app
        .patch("/roles/auditor")
        .bearer_auth(&app.admin.access)
        .json(&json!({"description": "Reads users"}))
        .send()
        .await
        .unwrap();
    json_body(resp, 200).await;
    assert_eq!(
        app.grant_role(&app.admin.access, user.id, "auditor")
            .await
            .status(),
        204
    );
    let revoke = app
        .delete(&format!("/users/{}/roles/auditor", user.id))
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let delete = app
        .delete("/roles/auditor")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);

    for action in ["role.granted", "role.revoked"] {
        let (actor, _, _) = app.wait_for_audit(action, user.id).await.expect(action);
        assert_eq!(actor, Some(app.admin.id), "{action}");
    }
    let role_actions: Vec<String> = app
        .db
        .query(
            "SELECT action FROM audit_log WHERE action LIKE 'role.%' AND actor_id = $1 ORDER BY id",
            &[&app.admin.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
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
    let app = spawn_app().await;
    let user = app.new_user().await;
    let request_id = format!("req-{}", Uuid::new_v4().simple());

    let resp = app
        .post("/auth/login")
        .header("x-request-id", &request_id)
        .header("x-forwarded-for", "203.0.113.7")
        .header("forwarded", "for=203.0.113.7")
        .header("x-real-ip", "203.0.113.7")
        .json(&json!({"login": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let (_, _, ip) = wait_for_request(&app, "login.succeeded", &request_id)
        .await
        .expect("login.succeeded");
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}
