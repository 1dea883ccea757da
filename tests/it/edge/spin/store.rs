//! The Spin component's key-value stores: Spin key-value has no expiry, so what must expire is
//! stored in an envelope with its expiry, and an envelope past it is ignored.

use serde_json::{Value, json};
use users_spin_host::RunningHost;

use super::start_host;
use crate::edge::scenarios::{edge_vars, origin_with};
use crate::helpers::{Api as _, Endpoint};

/// The JSON value of `key` in the host's store `label`.
fn kv_json(host: &RunningHost, label: &str, key: &str) -> Value {
    let raw = host
        .kv_get(label, key)
        .unwrap_or_else(|| panic!("{label}/{key} is stored; keys: {:?}", host.kv_keys(label)));
    serde_json::from_slice(&raw).expect("a JSON value")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Spin key-value has no expiry, so cached profiles and rate-limit state are stored in an
/// envelope with theirs: a profile is kept for its TTL plus the stale-if-error allowance, a
/// quota's state until its theoretical arrival time; an envelope past its expiry is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn expiring_values_are_stored_in_envelopes_and_ignored_once_expired() {
    let app = origin_with(|_| {}).await;
    let (host, _) = start_host(
        &app.address,
        &edge_vars(&[
            ("PROFILE_CACHE_TTL", "30"),
            ("STALE_IF_ERROR", "300"),
            ("RATE_LIMIT_USER", "5/60s"),
        ]),
    )
    .await;
    let edge = Endpoint::new(&host.url());
    let user = app.new_user().await;
    let as_user = edge.as_user(&user);

    assert_eq!(as_user.me().await.cache().as_deref(), Some("miss"));
    assert_eq!(as_user.me().await.cache().as_deref(), Some("hit"));
    let key = format!("profile:{}", user.id.simple());
    let mut entry = kv_json(&host, "profiles", &key);
    let stored_at = entry["value"]["stored_at_ms"]
        .as_i64()
        .expect("stored_at_ms");
    assert_eq!(
        entry["expires_at_ms"].as_i64(),
        Some(stored_at + 330_000),
        "kept for the TTL plus the stale-if-error allowance: {entry}"
    );

    // Expired: ignored, read from the origin and stored afresh.
    entry["expires_at_ms"] = json!(now_ms() - 1);
    host.kv_set("profiles", &key, entry.to_string())
        .expect("write the entry");
    assert_eq!(as_user.me().await.cache().as_deref(), Some("miss"));
    let fresh = kv_json(&host, "profiles", &key);
    assert!(
        fresh["expires_at_ms"].as_i64() > Some(now_ms() + 300_000),
        "stored afresh: {fresh}"
    );

    // Three reads spent of the user's 5 per minute; the state expires at its TAT.
    let quota_key = format!("ratelimit:user:{}", user.id);
    let state = kv_json(&host, "default", &quota_key);
    let tat_us = state["value"].as_i64().expect("a TAT in microseconds");
    assert_eq!(
        state["expires_at_ms"].as_i64(),
        Some(tat_us.div_euclid(1000) + 1)
    );
    assert!(tat_us / 1000 > now_ms(), "the TAT lies ahead: {state}");
    assert_eq!(as_user.me().await.status, 200);
    assert_eq!(as_user.me().await.status, 200);
    as_user.me().await.assert_problem(429, "rate-limited");
    // Once the state has expired it is absent: the quota is whole again.
    let mut state = kv_json(&host, "default", &quota_key);
    state["expires_at_ms"] = json!(now_ms() - 1);
    host.kv_set("default", &quota_key, state.to_string())
        .expect("write the state");
    let after = as_user.me().await;
    assert_eq!(after.status, 200, "{after}");
    assert!(
        after
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""user";r=4;"#)),
        "a fresh window: {after}"
    );
}
