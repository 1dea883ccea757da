//! Standard clients through the edge (SPEC §9): the token endpoint's two grants with their
//! `no-store` answers and RFC 6749 errors, the server metadata, and `Idempotency-Key` replays
//! all pass the edge as the origin answers them.

use serde_json::json;

use super::{EdgeRuntime, stack};
use crate::helpers::{Api as _, account_json, unique_name};
use crate::idempotency::{assert_replay_of, new_key, post_with_key, replayed};
use crate::oauth::{
    assert_metadata, assert_token_answer, password_grant, refresh_grant, token_form,
};

/// A standard OAuth2 client's journey through the edge: the metadata, the password grant, a
/// refresh, a spent refresh token refused as `invalid_grant`, an unknown grant refused.
pub async fn an_oauth2_client_logs_in_and_refreshes_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    assert_metadata(
        &edge
            .get("/.well-known/oauth-authorization-server")
            .send()
            .await,
    );
    let user = edge.new_user().await;
    let first = assert_token_answer(&password_grant(&edge, &user).await);
    let second = assert_token_answer(&refresh_grant(&edge, &first.refresh_token).await);
    edge.bearer(&second.access_token)
        .me()
        .await
        .expect_json(200);
    refresh_grant(&edge, &first.refresh_token)
        .await
        .assert_oauth_error(401, "invalid-grant", "invalid_grant");
    token_form(&edge, &[("grant_type", "client_credentials")])
        .await
        .assert_oauth_error(400, "unsupported-grant-type", "unsupported_grant_type");
    token_form(
        &edge,
        &[("grant_type", "password"), ("username", &user.username)],
    )
    .await
    .assert_oauth_error(400, "malformed-request", "invalid_request");
}

/// A repeat through the edge with the key of a write is the origin's replay; the key with
/// another body is `422`.
pub async fn idempotent_writes_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let admin = s.admin_token().await;
    let body = account_json(&unique_name("edgeidem"), json!({}));
    let key = new_key();
    let first = post_with_key(&edge.bearer(&admin), "/users", &key, &body).await;
    first.expect_status(201);
    let repeat = post_with_key(&edge.bearer(&admin), "/users", &key, &body).await;
    assert_replay_of(&repeat, &first);
    let other = account_json(&unique_name("edgeidem"), json!({}));
    let refused = post_with_key(&edge.bearer(&admin), "/users", &key, &other).await;
    refused.assert_problem(422, "idempotency-key-reused");

    let account = json!({"username": unique_name("edgereg"), "email": format!("{}@example.com", unique_name("r")), "password": crate::helpers::strong_password()});
    let key = new_key();
    let first = post_with_key(&edge, "/auth/register", &key, &account).await;
    first.expect_status(201);
    let repeat = post_with_key(&edge, "/auth/register", &key, &account).await;
    assert!(replayed(&repeat), "{repeat}");
    assert_replay_of(&repeat, &first);
}

/// An import through the edge: its body may be larger than any other route's (here over
/// 64 KiB), the report comes back whole, its accounts log in through the edge, and the export
/// lists them.
pub async fn an_import_passes_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let admin = s.admin_token().await;
    let password = crate::helpers::strong_password();
    let hash = crate::legacy::passlib_hash("bcrypt", "rounds=5", &password);
    let rows: Vec<serde_json::Value> = (0..300)
        .map(|i| {
            let name = unique_name(&format!("e{i}"));
            json!({"username": name, "email": format!("{name}@example.com"),
                   "password_hash": hash, "display_name": "x".repeat(80)})
        })
        .collect();
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    assert!(body.len() > users_core::wire::BODY_MAX, "{}", body.len());
    let reply = edge
        .bearer(&admin)
        .post("/admin/users/import")
        .typed_body("application/x-ndjson", body)
        .send()
        .await;
    let (lines, summary) = crate::import::report(&reply);
    assert_eq!(lines.len(), 300);
    assert_eq!(summary["created"], 300, "{summary}");
    let first = rows[0]["username"].as_str().unwrap();
    edge.login(first, &password).await;
    // And out again, through the edge.
    let exported = edge.bearer(&admin).get("/admin/users/export").send().await;
    assert_eq!(exported.status, 200, "{exported}");
    assert_eq!(exported.text.lines().count(), 301, "the admin and the 300");
}
