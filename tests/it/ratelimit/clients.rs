//! Who the client is, for the per-IP quota and the audit trail: `X-Forwarded-For` is believed
//! only from a trusted proxy (`TRUSTED_PROXIES`) or with the edge's shared secret.

use serde_json::json;

use super::{AUTH_IP_3, EDGE_SECRET, audit_ip, fresh_origin, limit_param, login_with, request_id};
use crate::helpers::{Api as _, spawn_app_and_user};

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (app, user) = spawn_app_and_user().await;
    let origin = fresh_origin(&app, "untrusted", &[AUTH_IP_3]).await;
    let id = request_id();

    let mut statuses = Vec::new();
    for (i, xff) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .iter()
        .enumerate()
    {
        let rid = if i == 0 { id.clone() } else { request_id() };
        let headers = [("x-forwarded-for", *xff), ("x-request-id", rid.as_str())];
        statuses.push(login_with(&origin, &user, &headers).await.status);
    }
    let fourth = login_with(&origin, &user, &[("x-forwarded-for", "203.0.113.4")]).await;

    assert_eq!(statuses, vec![200, 200, 200]);
    fourth.assert_problem(429, "rate-limited");
    assert_eq!(audit_ip(&app, &id).await.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_from_a_trusted_proxy_is_believed() {
    let (app, user) = spawn_app_and_user().await;
    let trusted = ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8");
    let origin = fresh_origin(&app, "trusted", &[AUTH_IP_3, trusted]).await;
    let from = [("x-forwarded-for", "203.0.113.7")];

    for _ in 0..3 {
        login_with(&origin, &user, &from).await.expect_status(200);
    }
    let fourth = login_with(&origin, &user, &from).await;
    let id = request_id();
    let behind_proxy = [
        ("x-forwarded-for", "203.0.113.8, 10.1.2.3"),
        ("x-request-id", &id),
    ];
    let other_client = login_with(&origin, &user, &behind_proxy).await;

    fourth.assert_problem(429, "rate-limited");
    assert_eq!(other_client.status, 200, "another client, another bucket");
    assert_eq!(limit_param(&other_client, "ratelimit", "r"), 2);
    assert_eq!(
        audit_ip(&app, &id).await.as_deref(),
        Some("203.0.113.8"),
        "the nearest untrusted address is the client"
    );
    let direct = login_with(&origin, &user, &[]).await;
    assert_eq!(
        direct.status, 200,
        "the proxy itself has a bucket of its own"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn x_forwarded_for_with_the_edge_secret_is_believed_and_with_a_wrong_one_is_not() {
    let (app, user) = spawn_app_and_user().await;
    let secret = ("EDGE_SHARED_SECRET", EDGE_SECRET);
    let origin = fresh_origin(&app, "edge", &[AUTH_IP_3, secret]).await;
    // A login claiming to come from `ip` through the edge with `secret`, as request `id`.
    let login = |secret: &str, ip: &str, id: Option<&str>| {
        let mut headers = vec![("x-edge-secret", secret), ("x-forwarded-for", ip)];
        headers.extend(id.map(|id| ("x-request-id", id)));
        let call = origin.post("/auth/login").headers(&headers);
        call.json(&json!({"login": user.username, "password": user.password}))
            .send()
    };
    let forged_secret = "not-the-edge-secret-0123456789";

    for _ in 0..3 {
        login(EDGE_SECRET, "198.51.100.1", None)
            .await
            .expect_status(200);
    }
    let fourth = login(EDGE_SECRET, "198.51.100.1", None).await;
    let believed_id = request_id();
    let other_client = login(EDGE_SECRET, "198.51.100.2", Some(&believed_id)).await;
    // A wrong secret is not believed: every such request counts against 127.0.0.1.
    let forged_id = request_id();
    let mut forged_statuses = Vec::new();
    for (i, ip) in [
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
        "198.51.100.6",
    ]
    .iter()
    .enumerate()
    {
        let id = (i == 0).then_some(forged_id.as_str());
        forged_statuses.push(login(forged_secret, ip, id).await.status);
    }

    fourth.assert_problem(429, "rate-limited");
    other_client.expect_status(200);
    assert_eq!(
        audit_ip(&app, &believed_id).await.as_deref(),
        Some("198.51.100.2")
    );
    assert_eq!(forged_statuses, vec![200, 200, 200, 429]);
    assert_eq!(
        audit_ip(&app, &forged_id).await.as_deref(),
        Some("127.0.0.1")
    );
}
