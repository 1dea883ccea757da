//! What the edge answers itself and which headers cross it: health, internal paths,
//! request ids, forwarding, CORS and the body limit.

use http::Method;

use super::{SECRET, header, world};

#[test]
fn health_is_answered_at_the_edge() {
    let w = world();
    let r = w.send(Method::GET, "/edge/health", None, &[]);
    assert_eq!(r.status(), 200);
    assert!(w.edge.origin.sent.borrow().is_empty());
    assert_eq!(header(&r, "x-request-id"), Some("edge-1"));
    assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
}

#[test]
fn origin_internal_paths_are_not_reachable_through_the_edge() {
    let w = world();
    for path in [
        "/internal/revocations?since=0",
        "/v1/internal/revocations",
        "/metrics",
    ] {
        let r = w.send(Method::GET, path, None, &[]);
        assert_eq!(r.status(), 404, "{path}");
    }
    assert!(w.edge.origin.sent.borrow().is_empty());
}

#[test]
fn request_ids_are_kept_when_well_formed() {
    let w = world();
    let r = w.send(
        Method::GET,
        "/edge/health",
        None,
        &[("x-request-id", "abc-123")],
    );
    assert_eq!(header(&r, "x-request-id"), Some("abc-123"));
    let r = w.send(
        Method::GET,
        "/edge/health",
        None,
        &[("x-request-id", "bad id <x>")],
    );
    assert_eq!(header(&r, "x-request-id"), Some("edge-1"));
}

#[test]
fn forwarding_replaces_internal_headers() {
    let w = world();
    let r = w.send(
        Method::POST,
        "/auth/login?x=1",
        None,
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-edge-secret", "forged"),
            ("x-users-revoked", "x"),
        ],
    );
    assert_eq!(r.status(), 200);
    let sent = w.edge.origin.sent.borrow();
    let req = sent.last().unwrap();
    assert_eq!(req.uri().to_string(), "http://origin.test/auth/login?x=1");
    assert_eq!(req.headers()["x-forwarded-for"], "203.0.113.7");
    assert_eq!(req.headers()["x-edge-secret"], SECRET);
    assert!(req.headers().get("x-users-revoked").is_none());
    assert_eq!(req.headers()["x-request-id"], "edge-1");
}

#[test]
fn cors_is_answered_for_configured_origins_only() {
    let w = world();
    let r = w.send(
        Method::OPTIONS,
        "/users/me",
        None,
        &[
            ("origin", "https://app.test"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.test")
    );
    let r = w.send(
        Method::GET,
        "/edge/health",
        None,
        &[("origin", "https://evil.test")],
    );
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn a_declared_length_over_the_body_limit_is_oversized() {
    use crate::pipeline::declares_oversized_body;
    use users_core::wire::BODY_MAX;
    assert!(!declares_oversized_body("/users", None));
    assert!(!declares_oversized_body("/users", Some("0")));
    assert!(!declares_oversized_body(
        "/users",
        Some(&BODY_MAX.to_string())
    ));
    assert!(declares_oversized_body(
        "/users",
        Some(&(BODY_MAX + 1).to_string())
    ));
    // The import route takes up to 10 MiB, under /v1 too.
    let import = users_core::wire::IMPORT_BODY_MAX;
    for path in ["/admin/users/import", "/v1/admin/users/import"] {
        assert!(!declares_oversized_body(path, Some(&import.to_string())));
        assert!(declares_oversized_body(
            path,
            Some(&(import + 1).to_string())
        ));
    }
    assert!(declares_oversized_body("/users", Some(" 99999999999 ")));
    // Unparseable lengths are left to the body read (and the platform) to judge.
    assert!(!declares_oversized_body("/users", Some("lots")));
}
