//! Revocation at the edge: the origin's echo of a logout-all through the edge is enforced on
//! the very next request; revocations made at the origin directly arrive through the feed
//! within the sync interval; a deletion (the highest security version) does not wedge the
//! feed.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{EdgeRuntime, FEED, ME, stack};
use crate::helpers::{Api as _, other_strong_password};

/// The bound the scenarios put on revocation lag with `REVOCATION_SYNC_INTERVAL=1`.
const REVOCATION_LAG_MAX: Duration = Duration::from_secs(3);

/// Logout-all through the edge: the origin's revocation echo reaches the edge, which refuses
/// every token of the user on the very next request (the feed is polled only hourly here, so
/// the echo is the only way it can know), and the echo never reaches the client.
pub async fn logout_all_through_the_edge_is_enforced_at_once<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[("REVOCATION_SYNC_INTERVAL", "3600")]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let second = edge.login(&user.username, &user.password).await;
    edge.as_user(&user).me().await.expect_json(200);
    edge.bearer(&second.access_token)
        .me()
        .await
        .expect_json(200);

    let out = edge.as_user(&user).logout_all().await;
    assert_eq!(out.status, 204, "{out}");
    assert!(
        out.header("x-users-revoked").is_none(),
        "the echo is stripped: {out}"
    );

    let why = "both tokens were refused by the edge itself";
    let refused = s.assert_refused_at_the_edge(&user.access, why).await;
    s.assert_refused_at_the_edge(&second.access_token, why)
        .await;
    // Exactly what the origin says to the same token.
    let origin = s.origin().as_user(&user).me().await;
    assert_eq!(origin.status, 401);
    assert_eq!(refused.text, origin.text);

    let refresh = edge.refresh(&user.refresh).await;
    refresh.assert_problem(401, "invalid-grant");
    let fresh = edge.login(&user.username, &user.password).await;
    edge.bearer(&fresh.access_token).me().await.expect_json(200);
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
        edge.as_user(u).me().await.expect_json(200);
    }
    let before = s.origin_requests(ME).await;

    let out = origin.as_user(&logged_out).logout_all().await;
    assert_eq!(out.status, 204, "{out}");
    assert!(
        out.header("x-users-revoked").is_none(),
        "no echo for a request that did not come from the edge: {out}"
    );
    let change = json!({"current_password": changed.password, "password": other_strong_password()});
    let resp = origin
        .as_user(&changed)
        .patch_user(changed.id, &change)
        .await;
    resp.expect_json(200);
    let revoked_at = Instant::now();

    let mut lag: [Option<Duration>; 2] = [None, None];
    while lag.iter().any(Option::is_none) && revoked_at.elapsed() < REVOCATION_LAG_MAX {
        for (i, u) in [&logged_out, &changed].into_iter().enumerate() {
            if lag[i].is_some() {
                continue;
            }
            let reply = edge.as_user(u).me().await;
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
    edge.as_user(&bystander).me().await.expect_json(200);
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
    let deleted = s
        .origin()
        .as_user(&s.app.admin)
        .delete_user(doomed.id)
        .await;
    assert_eq!(deleted.status, 204, "{deleted}");

    let before = s.origin_requests(FEED).await;
    for _ in 0..5 {
        edge.as_user(&reader).me().await.expect_json(200);
    }
    let polls = s.origin_requests(FEED).await - before;
    assert_eq!(
        polls, 1.0,
        "5 requests polled the revocation feed {polls} times (REVOCATION_SYNC_INTERVAL=3600): \
         the poll that met the deletion was not recorded"
    );

    let why = "the deleted account's token was refused by the edge itself";
    s.assert_refused_at_the_edge(&doomed.access, why).await;
}
