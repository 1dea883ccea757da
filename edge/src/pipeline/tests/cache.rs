//! Cached profile reads: per-user entries authorised on every hit, purges, expiry, and stale
//! answers while the origin is down.

use http::Method;
use users_core::perms::Permission;
use uuid::Uuid;

use super::{header, world, world_with};

#[test]
fn profile_reads_are_cached_per_user_and_authorised_on_every_hit() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    let first = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(header(&first, "x-edge-cache"), Some("miss"));
    let second = w.send(
        Method::GET,
        &format!("/v1/users/{alice}"),
        Some(&token),
        &[],
    );
    assert_eq!(header(&second, "x-edge-cache"), Some("hit"));
    assert_eq!(second.body(), first.body());
    assert_eq!(header(&second, "cache-control"), Some("no-store"));
    assert_eq!(w.edge.origin.calls("/users/me"), 1);
    assert_eq!(w.edge.origin.calls(&format!("/v1/users/{alice}")), 0);

    let etag = header(&second, "etag").unwrap().to_owned();
    let not_modified = w.send(
        Method::GET,
        "/users/me",
        Some(&token),
        &[("if-none-match", &etag)],
    );
    assert_eq!(not_modified.status(), 304);

    // Bob may not read Alice: never from the cache, the origin decides.
    let bob = w.token(Uuid::from_u128(2), 1, vec![]);
    let r = w.send(Method::GET, &format!("/users/{alice}"), Some(&bob), &[]);
    assert_ne!(header(&r, "x-edge-cache"), Some("hit"));
    assert_eq!(w.edge.origin.calls(&format!("/users/{alice}")), 1);
    // An admin with users:read may.
    let admin = w.token(Uuid::from_u128(3), 1, vec![Permission::UsersRead]);
    let r = w.send(Method::GET, &format!("/users/{alice}"), Some(&admin), &[]);
    assert_eq!(header(&r, "x-edge-cache"), Some("hit"));
}

#[test]
fn writes_through_the_edge_purge_the_profile() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    w.send(Method::PATCH, &format!("/users/{alice}"), Some(&token), &[]);
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(header(&r, "x-edge-cache"), Some("miss"));
    assert_eq!(w.edge.origin.calls("/users/me"), 2);
}

#[test]
fn entries_expire_after_the_ttl() {
    let w = world_with(&[("PROFILE_CACHE_TTL", "10")]);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    w.advance(11_000);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(header(&r, "x-edge-cache"), Some("miss"));
}

#[test]
fn with_the_origin_down_cached_reads_go_on_and_writes_get_503() {
    let w = world_with(&[("PROFILE_CACHE_TTL", "10"), ("STALE_IF_ERROR", "60")]);
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    w.edge.origin.down.set(true);
    w.advance(30_000);
    let token = w.token(alice, 1, vec![]);
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-edge-cache"), Some("stale"));
    let r = w.send(Method::PATCH, &format!("/users/{alice}"), Some(&token), &[]);
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(header(&r, "content-type"), Some("application/problem+json"));
}
