//! Headers at the edge: a client's forwarding headers are not believed, every answer carries
//! the security headers and a request id (the client's when well-formed), and the origin's
//! internal endpoints cannot be reached through the edge.

use std::net::IpAddr;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use super::{EdgeRuntime, assert_edge_headers, stack};
use crate::helpers::{Api as _, Call, Endpoint, TestUser};

/// A request id of the client's, fresh.
fn client_request_id() -> String {
    format!("edge-e2e-{}", Uuid::new_v4().simple())
}

/// `POST /auth/login` of `user` through `edge`.
fn login_of(edge: &Endpoint, user: &TestUser) -> Call {
    edge.post("/auth/login")
        .json(&json!({"login": user.username, "password": user.password}))
}

/// A client's `X-Forwarded-For`, `X-Real-IP`, `Forwarded` and `X-Edge-Secret` are dropped by
/// the edge: the origin records the address the edge saw (loopback under a local runtime),
/// never the claimed one; the client's request id is kept.
pub async fn client_forwarding_headers_are_not_trusted<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = s.app.new_user().await;
    let request_id = client_request_id();
    let spoofed = ["203.0.113.77", "203.0.113.78", "203.0.113.79"];

    let login = login_of(&edge, &user)
        .header("x-forwarded-for", spoofed[0])
        .header("x-real-ip", spoofed[1])
        .header("forwarded", format!("for={}", spoofed[2]))
        .header("spin-client-addr", format!("{}:4444", spoofed[0]))
        .header("x-edge-secret", "not-the-edge-secret-0123456789")
        .request_id(&request_id)
        .send()
        .await;
    login.expect_json(200);
    assert_eq!(login.header("x-request-id"), Some(request_id.clone()));

    let row = s
        .app
        .audit_of_request("login.succeeded", &request_id)
        .await
        .expect("the login is audited with the client's request id");
    assert_eq!(row.target, Some(user.id));
    let ip = row.ip.expect("an audited address");
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
    let as_user = edge.as_user(&user);
    let garbage = edge.bearer("not-a-jwt");

    let answers = [
        ("the edge's health", edge.get("/edge/health").send().await),
        ("a forwarded read", as_user.me().await),
        ("a cached read", as_user.me().await),
        ("the edge's 401", garbage.me().await),
        ("the origin's 404", edge.get("/no/such/thing").send().await),
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
    for (what, call) in [
        ("health", edge.get("/edge/health")),
        ("edge 401", garbage.get("/users/me")),
        ("cached read", as_user.get("/users/me")),
    ] {
        let id = client_request_id();
        let reply = call.request_id(&id).send().await;
        assert_eq!(reply.header("x-request-id"), Some(id), "{what}: {reply}");
    }
    let id = client_request_id();
    let reply = login_of(&edge, &user).request_id(&id).send().await;
    reply.expect_json(200);
    assert_eq!(reply.header("x-request-id"), Some(id.clone()));
    s.app
        .audit_of_request("login.succeeded", &id)
        .await
        .expect("the origin recorded the client's request id");

    // An ill-formed one is replaced.
    for bad in ["has spaces in it", &"x".repeat(200), "semi;colon"] {
        let reply = as_user.get("/users/me").request_id(bad).send().await;
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
    s.origin().as_user(&user).logout_all().await;
    let direct = s.origin().get("/internal/revocations?since=0").send().await;
    direct.assert_problem(404, "not-found");

    let mut exposed = Vec::new();
    // The paths themselves: the edge's own 404.
    for path in [
        "/internal/revocations?since=0",
        "/v1/internal/revocations?since=0",
        "/metrics",
        "/v1/metrics",
    ] {
        let reply = edge.get(path).send().await;
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
        let reply = edge.get(path).send().await;
        if (200..300).contains(&reply.status)
            || reply.text.contains("\"events\"")
            || reply.text.contains("http_requests_total")
        {
            exposed.push(format!("GET {path}: {reply}"));
        }
    }
    let head = edge.request(Method::HEAD, "/metrics").send().await;
    if (200..300).contains(&head.status) {
        exposed.push(format!("HEAD /metrics: {head}"));
    }
    assert!(
        exposed.is_empty(),
        "internal endpoints answer clients through the edge:\n{}",
        exposed.join("\n")
    );
}
