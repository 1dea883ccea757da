//! Tokens at the edge: verification, the key set, and revocations echoed by the origin or
//! polled from its feed.

use http::Method;
use users_core::problem::{ErrorCode, Problem};

use crate::ports::RevocationStore as _;
use uuid::Uuid;

use super::{header, world, world_with};

#[test]
fn bad_tokens_get_the_origins_401_without_reaching_it() {
    let w = world();
    let r = w.send(Method::GET, "/users/me", Some("not.a.jwt"), &[]);
    assert_eq!(r.status(), 401);
    let body: Problem = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        body,
        Problem::new(
            ErrorCode::InvalidToken,
            401,
            ErrorCode::InvalidToken.detail()
        )
    );
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(w.edge.origin.calls("/users/me"), 0);
}

#[test]
fn the_key_set_is_fetched_once_and_cached() {
    let w = world();
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    for _ in 0..3 {
        w.send(Method::GET, "/users", Some(&token), &[]);
    }
    assert_eq!(w.edge.origin.calls("/.well-known/jwks.json"), 1);
}

#[test]
fn a_revocation_echoed_by_the_origin_applies_at_once() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    *w.edge.origin.revoke_on_write.borrow_mut() = Some((alice, 2));
    let r = w.send(Method::POST, "/auth/logout", Some(&token), &[]);
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-users-revoked").is_none(),
        "the echo is internal"
    );
    let r = w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(r.status(), 401);
    assert_eq!(
        w.send(
            Method::GET,
            "/users/me",
            Some(&w.token(alice, 2, vec![])),
            &[]
        )
        .status(),
        200
    );
}

#[test]
fn revocations_made_elsewhere_apply_within_the_sync_interval() {
    let w = world_with(&[("REVOCATION_SYNC_INTERVAL", "5")]);
    let alice = Uuid::from_u128(1);
    let token = w.token(alice, 1, vec![]);
    assert_eq!(
        w.send(Method::GET, "/users/me", Some(&token), &[]).status(),
        200
    );
    w.edge.origin.feed.borrow_mut().push((7, alice, 2));
    w.advance(1000);
    // Within the interval the edge does not poll.
    assert_eq!(
        w.send(Method::GET, "/users/me", Some(&token), &[]).status(),
        200
    );
    w.advance(5000);
    // The due poll runs beside this request; what it learns applies from the next one.
    w.send(Method::GET, "/users/me", Some(&token), &[]);
    assert_eq!(
        w.send(Method::GET, "/users/me", Some(&token), &[]).status(),
        401
    );
    assert_eq!(w.edge.revocations.cursor.get().0, 7);
}

#[test]
fn a_failing_feed_is_not_retried_by_every_request() {
    let w = world_with(&[("REVOCATION_SYNC_INTERVAL", "5")]);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    w.send(Method::GET, "/users", Some(&token), &[]);
    w.edge.origin.down.set(true);
    w.advance(6000);
    let token = w.token(Uuid::from_u128(1), 1, vec![]);
    for _ in 0..3 {
        assert_eq!(
            w.send(Method::GET, "/users", Some(&token), &[]).status(),
            503
        );
    }
    assert_eq!(
        w.edge.origin.calls("/internal/revocations"),
        2,
        "one poll while up, one failed poll"
    );
    assert_eq!(w.edge.origin.calls("/users"), 4);
}

#[test]
fn a_revoked_session_echoed_by_the_origin_ends_that_session_only() {
    let w = world();
    let alice = Uuid::from_u128(1);
    let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let token_a = w.session_token(alice, 1, vec![], Some(a));
    let token_b = w.session_token(alice, 1, vec![], Some(b));
    let until = super::NOW / 1000 + 900;
    *w.edge.origin.echo_on_write.borrow_mut() = Some(format!("{alice}:{a}@{until}"));
    let r = w.send(
        Method::DELETE,
        &format!("/users/me/sessions/{a}"),
        Some(&token_b),
        &[],
    );
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-users-revoked").is_none());
    let me = |t: &str| w.send(Method::GET, "/users", Some(t), &[]).status();
    assert_eq!(
        me(&token_a),
        401,
        "session A is revoked at this edge at once"
    );
    assert_eq!(me(&token_b), 200, "session B keeps working");
    // Once A's tokens have expired the edge forgets it: memory stays bounded.
    w.advance(901_000);
    futures::executor::block_on(w.edge.revocations.record(&[], None, super::NOW + 901_000));
    assert!(w.edge.revocations.sessions.borrow().is_empty());
}

#[test]
fn a_session_revoked_elsewhere_applies_within_the_sync_interval() {
    let w = world_with(&[("REVOCATION_SYNC_INTERVAL", "5")]);
    let alice = Uuid::from_u128(1);
    let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let token_a = w.session_token(alice, 1, vec![], Some(a));
    let token_b = w.session_token(alice, 1, vec![], Some(b));
    let me = |t: &str| w.send(Method::GET, "/users", Some(t), &[]).status();
    assert_eq!(me(&token_a), 200);
    let until = super::NOW / 1000 + 900;
    w.edge
        .origin
        .session_feed
        .borrow_mut()
        .push((3, alice, a, until));
    // An already expired entry is not kept at all.
    let old = Uuid::from_u128(12);
    w.edge
        .origin
        .session_feed
        .borrow_mut()
        .push((4, alice, old, 1));
    w.advance(5000);
    me(&token_b);
    assert_eq!(me(&token_a), 401);
    assert_eq!(me(&token_b), 200);
    assert_eq!(w.edge.revocations.cursor.get().0, 4);
    assert!(!w.edge.revocations.sessions.borrow().contains_key(&old));
}
