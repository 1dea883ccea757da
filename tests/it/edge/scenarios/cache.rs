//! Profile caching at the edge: reads served without the origin and shared only with readers
//! who may see the profile, read-your-writes after a PATCH through the edge, and conditional
//! reads answered `304` by the edge itself.

use serde_json::json;

use super::{EdgeRuntime, ME, USER, patch_if_match, stack};
use crate::helpers::{Api, Reply};

/// `GET /users/me` with `If-None-Match: etag`.
async fn me_if_none_match(api: &impl Api, etag: &str) -> Reply {
    api.get("/users/me")
        .header("if-none-match", etag)
        .send()
        .await
}

/// Profile reads are cached per user at the edge: the second and third reads never reach the
/// origin; `/users/{id}` shares the entry for the user and for readers with `users:read`, and
/// nobody else is served from it.
pub async fn cached_reads_are_served_without_the_origin<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let as_user = edge.as_user(&user);

    // Three reads, each with what the origin had counted after it.
    let mut counted = vec![s.origin_requests(ME).await];
    let mut reads = Vec::new();
    for cache in ["miss", "hit", "hit"] {
        let read = as_user.me().await;
        read.expect_json(200);
        assert_eq!(read.cache().as_deref(), Some(cache), "{read}");
        counted.push(s.origin_requests(ME).await);
        reads.push(read);
    }
    let (first, second, third) = (&reads[0], &reads[1], &reads[2]);
    assert_eq!(
        counted[1],
        counted[0] + 1.0,
        "the first read went to the origin"
    );
    assert_eq!(
        counted[2], counted[1],
        "the second read was served by the edge"
    );
    assert_eq!(
        counted[3], counted[2],
        "the third read was served by the edge"
    );
    assert_eq!(second.text, first.text);
    assert_eq!(third.text, first.text);
    assert_eq!(second.header("etag"), first.header("etag"));
    assert!(
        second
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );

    // `/users/{id}` of oneself, and of someone else for a reader with `users:read`.
    let by_id_before = s.origin_requests(USER).await;
    let own = as_user.get_user(user.id).await;
    own.expect_json(200);
    assert_eq!(own.cache().as_deref(), Some("hit"), "{own}");
    assert_eq!(own.text, first.text);
    let admin_token = s.admin_token().await;
    let read = edge.bearer(&admin_token).get_user(user.id).await;
    read.expect_json(200);
    assert_eq!(read.cache().as_deref(), Some("hit"), "{read}");
    assert_eq!(s.origin_requests(USER).await, by_id_before);

    // Without `users:read` another user's profile is not served from the cache: the origin
    // answers, and says it does not exist.
    let other = edge.new_user().await;
    let probe = edge.as_user(&other).get_user(user.id).await;
    probe.assert_problem(404, "not-found");
    assert!(probe.cache().is_none(), "{probe}");
    assert_eq!(s.origin_requests(USER).await, by_id_before + 1.0);
}

/// Read-your-writes: a PATCH through the edge purges the cached profile, so the next read
/// shows the change with its new ETag, fetched from the origin.
pub async fn a_patch_through_the_edge_is_read_back_at_once<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let as_user = edge.as_user(&user);

    assert_eq!(as_user.me().await.cache().as_deref(), Some("miss"));
    let cached = as_user.me().await;
    assert_eq!(cached.cache().as_deref(), Some("hit"), "{cached}");
    let old_etag = cached.etag();

    let fresh = json!({"display_name": "Fresh Name"});
    let patched = patch_if_match(&as_user, user.id, &fresh, &old_etag).await;
    patched.expect_json(200);
    let new_etag = patched.header("etag").expect("an ETag on the PATCH answer");
    assert_ne!(new_etag, old_etag);

    let read = as_user.me().await;
    assert_eq!(read.expect_json(200)["display_name"], "Fresh Name");
    assert_eq!(read.cache().as_deref(), Some("miss"), "{read}");
    assert_eq!(read.header("etag").as_deref(), Some(new_etag.as_str()));
    let again = as_user.me().await;
    assert_eq!(again.cache().as_deref(), Some("hit"), "{again}");
    assert_eq!(again.json()["display_name"], "Fresh Name");

    // An admin's write to the account through the edge is read back by its owner too.
    let admin_token = s.admin_token().await;
    let named = json!({"display_name": "Named By Admin"});
    let by_admin = edge.bearer(&admin_token).patch_user(user.id, &named).await;
    by_admin.expect_json(200);
    let read = as_user.me().await;
    assert_eq!(read.expect_json(200)["display_name"], "Named By Admin");
    assert_eq!(read.cache().as_deref(), Some("miss"), "{read}");
}

/// A conditional read of a cached profile is answered `304` by the edge itself.
pub async fn if_none_match_is_answered_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    let as_user = edge.as_user(&user);
    let first = as_user.me().await;
    first.expect_json(200);
    let etag = first.etag();
    let before = s.origin_requests(ME).await;

    let not_modified = me_if_none_match(&as_user, &etag).await;
    assert_eq!(not_modified.status, 304, "{not_modified}");
    assert_eq!(not_modified.cache().as_deref(), Some("hit"));
    assert_eq!(not_modified.header("etag").as_deref(), Some(etag.as_str()));
    assert!(not_modified.text.is_empty(), "{not_modified}");

    let weak = me_if_none_match(&as_user, &format!("W/{etag}")).await;
    assert_eq!(weak.status, 304, "weak comparison: {weak}");
    let listed = me_if_none_match(&as_user, &format!("\"other\", {etag}")).await;
    assert_eq!(listed.status, 304, "one of a list: {listed}");

    let changed = me_if_none_match(&as_user, "\"other\"").await;
    assert_eq!(changed.status, 200, "{changed}");
    assert_eq!(changed.cache().as_deref(), Some("hit"));
    assert_eq!(changed.text, first.text);

    assert_eq!(
        s.origin_requests(ME).await,
        before,
        "every conditional read was answered by the edge"
    );
}
