//! Whole journeys through the edge: an account's life from registration to deletion, the
//! admin managing roles, and a password reset by mail. Each change that revokes tokens is
//! enforced by the edge on the very next request.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{EdgeRuntime, patch_if_match, stack};
use crate::helpers::{Api as _, other_strong_password, strong_password, unique_name};
use crate::smtp::reset_token_line;

/// How long a mail may take to reach the SMTP sink.
const MAIL_WAIT: Duration = Duration::from_secs(10);

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
    let as_user = edge.bearer(&pair.access_token);

    let me = as_user.me().await;
    let view = me.expect_json(200);
    assert_eq!(view["id"], json!(id.to_string()));
    assert_eq!(view["username"], json!(username));
    let etag = me.etag();

    let named = json!({"display_name": "Edge Walker"});
    let patched = patch_if_match(&as_user, id, &named, &etag).await;
    assert_eq!(patched.expect_json(200)["display_name"], "Edge Walker");
    // The ETag the client holds is stale now: a lost update is refused.
    let lost = json!({"display_name": "Lost"});
    let refused = patch_if_match(&as_user, id, &lost, &etag).await;
    refused.assert_problem(412, "precondition-failed");
    assert_eq!(
        as_user.me().await.expect_json(200)["display_name"],
        "Edge Walker"
    );
    // The refresh token works through the edge as well.
    edge.refresh(&pair.refresh_token).await.expect_json(200);

    let deleted = as_user.delete_user(id).await;
    assert_eq!(deleted.status, 204, "{deleted}");
    assert!(deleted.header("x-users-revoked").is_none(), "{deleted}");
    s.assert_refused_at_the_edge(
        &pair.access_token,
        "the deleted account's token was refused by the edge itself (the origin echoed the \
         deletion, security version 2^63-1)",
    )
    .await;
    let login = edge.login_raw(&username, &password).await;
    login.assert_problem(401, "invalid-credentials");
    let left = s
        .app
        .count("SELECT count(*) FROM users WHERE id = $1", &[&id])
        .await;
    assert_eq!(left, 0, "the account is gone at the origin");
}

/// The admin lists and creates roles through the edge; a grant through the edge revokes the
/// grantee's tokens at the edge at once.
pub async fn admin_manages_roles_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let admin_token = s.admin_token().await;
    let as_admin = edge.bearer(&admin_token);

    let body = as_admin.get("/roles").send().await.expect_json(200);
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
    let role =
        json!({"name": name, "description": "Reads accounts", "permissions": ["users:read"]});
    let created = as_admin.post_role(&role).await;
    assert_eq!(created.expect_json(201)["name"], json!(name));
    let read = as_admin.get_role(&name).await;
    assert_eq!(read.expect_json(200)["permissions"], json!(["users:read"]));

    // Nobody else may create roles.
    let user = edge.new_user().await;
    let sneaky = json!({
        "name": unique_name("sneaky-"), "description": "x", "permissions": ["roles:manage"]
    });
    let refused = edge.as_user(&user).post_role(&sneaky).await;
    refused.assert_problem(403, "forbidden");

    // Granting the role revokes the grantee's tokens: the edge refuses the old one itself.
    edge.as_user(&user).me().await.expect_json(200);
    let granted = as_admin.grant_role(user.id, &name).await;
    assert_eq!(granted.status, 204, "{granted}");
    assert!(granted.header("x-users-revoked").is_none(), "{granted}");
    let why = "the revoked token was refused by the edge, not forwarded";
    s.assert_refused_at_the_edge(&user.access, why).await;
    // A fresh token carries the role: it may read other accounts.
    let fresh = edge.login(&user.username, &user.password).await;
    let other = edge
        .bearer(&fresh.access_token)
        .get_user(s.app.admin.id)
        .await;
    assert_eq!(other.expect_json(200)["username"], json!("admin"));
}

/// A password reset through the edge, with the token from the mail; the reset revokes the old
/// tokens at the edge at once.
pub async fn password_reset_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    edge.as_user(&user).me().await.expect_json(200);

    let requested = edge.request_reset(&user.email).await;
    assert_eq!(requested.status, 202, "{requested}");
    let mail = s
        .app
        .smtp
        .wait_for_mail_about(&user.email, crate::smtp::RESET_SUBJECT, MAIL_WAIT)
        .await
        .expect("a reset mail");
    let token = reset_token_line(&mail.data).expect("a token line in the mail");

    let new_password = other_strong_password();
    let reset = edge.complete_reset(&token, &new_password).await;
    assert_eq!(reset.status, 204, "{reset}");
    assert!(reset.header("x-users-revoked").is_none(), "{reset}");
    let why = "the revoked token was refused by the edge, not forwarded";
    s.assert_refused_at_the_edge(&user.access, why).await;

    let fresh = edge.assert_password_is(&user, &new_password).await;
    edge.bearer(&fresh.access_token).me().await.expect_json(200);
    let again = edge.complete_reset(&token, &other_strong_password()).await;
    again.assert_problem(400, "invalid-reset-token");
}
