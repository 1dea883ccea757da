//! Sessions at the edge (SPEC §7): ending one session through the edge is enforced by that
//! edge on the very next request (the origin's echo carries the session), one ended at the
//! origin reaches the edge through the feed within the sync interval, and the user's other
//! sessions keep working throughout. A client cannot claim a country for its session.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{EdgeRuntime, stack};
use crate::helpers::{Api as _, TestUser};
use crate::sessions::sid_of;

/// The bound the scenarios put on revocation lag with `REVOCATION_SYNC_INTERVAL=1`.
const REVOCATION_LAG_MAX: Duration = Duration::from_secs(3);

/// A user with two sessions, both logged in through `edge` and read once (so the edge holds
/// the profile and would serve it from its cache).
async fn two_sessions(edge: &impl crate::helpers::Api) -> (TestUser, TestUser) {
    let a = edge.new_user().await;
    let pair = edge.login(&a.username, &a.password).await;
    let b = TestUser {
        access: pair.access_token,
        refresh: pair.refresh_token,
        ..a.clone()
    };
    edge.as_user(&a).me().await.expect_json(200);
    edge.as_user(&b).me().await.expect_json(200);
    (a, b)
}

/// Session A ended through the edge (with B's token): the echo reaches this edge, which
/// refuses A's access token itself on the next request (the feed is polled only hourly here);
/// B works; A's refresh token is dead.
pub async fn ending_a_session_through_the_edge_is_enforced_at_once<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "3600")]).await;
    let edge = s.edge();
    let (a, b) = two_sessions(&edge).await;

    let out = edge
        .as_user(&b)
        .delete(&format!("/users/me/sessions/{}", sid_of(&a.access)))
        .send()
        .await;
    assert_eq!(out.status, 204, "{out}");
    assert!(
        out.header("x-users-revoked").is_none(),
        "the echo is stripped: {out}"
    );

    s.assert_refused_at_the_edge(&a.access, "session A was refused by the edge itself")
        .await;
    edge.as_user(&b).me().await.expect_json(200);
    edge.refresh(&a.refresh)
        .await
        .assert_problem(401, "invalid-grant");
    edge.refresh(&b.refresh).await.expect_json(200);
}

/// Session A ended at the origin directly: within `REVOCATION_SYNC_INTERVAL` (1 s) plus a
/// request the edge refuses A's token itself; B keeps working.
pub async fn a_session_ended_at_the_origin_reaches_the_edge_within_the_sync_interval<
    R: EdgeRuntime,
>(
    rt: &R,
) {
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "1")]).await;
    let edge = s.edge();
    let (a, b) = two_sessions(&edge).await;

    let out = s
        .origin()
        .as_user(&b)
        .delete(&format!("/users/me/sessions/{}", sid_of(&a.access)))
        .send()
        .await;
    assert_eq!(out.status, 204, "{out}");
    let revoked_at = Instant::now();

    let mut lag = None;
    while lag.is_none() && revoked_at.elapsed() < REVOCATION_LAG_MAX {
        let reply = edge.as_user(&a).me().await;
        match reply.status {
            401 => {
                reply.assert_invalid_token();
                lag = Some(revoked_at.elapsed());
            }
            200 => assert_eq!(reply.cache().as_deref(), Some("hit"), "{reply}"),
            _ => panic!("unexpected answer while waiting for the revocation: {reply}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("session revocation lag at the edge: {lag:?}");
    assert!(
        lag.is_some(),
        "a session ended at the origin was not refused by the edge within {REVOCATION_LAG_MAX:?}"
    );
    s.assert_refused_at_the_edge(&a.access, "the edge learnt it from the feed")
        .await;
    edge.as_user(&b).me().await.expect_json(200);
}

/// A client's own `X-Edge-Country` never reaches a session: the edge drops it (the country a
/// session records is the platform's word, or none).
pub async fn a_client_cannot_claim_a_country<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let pair = edge
        .post("/auth/login")
        .header("x-edge-country", "KP")
        .json(&serde_json::json!({"login": user.username, "password": user.password}))
        .send()
        .await
        .expect_json(200);
    let sid = sid_of(pair["access_token"].as_str().expect("access"));

    let page = edge
        .as_user(&user)
        .get("/users/me/sessions")
        .send()
        .await
        .expect_json(200);
    let session = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == sid.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("session {sid} in {page}"));
    assert_ne!(session["country"], Value::from("KP"), "{session}");
}
