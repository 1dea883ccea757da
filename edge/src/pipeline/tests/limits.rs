//! Rate limits applied at the edge, with the origin's `RateLimit-*` headers.

use http::Method;

use super::{header, world};

#[test]
fn auth_routes_are_limited_per_ip() {
    let w = world();
    for _ in 0..3 {
        let r = w.send(Method::POST, "/auth/login", None, &[]);
        assert_eq!(r.status(), 200);
        assert!(header(&r, "ratelimit-policy").is_some_and(|p| p.contains("q=3")));
    }
    let r = w.send(Method::POST, "/auth/login", None, &[]);
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("20"));
    assert_eq!(header(&r, "ratelimit"), Some("\"auth-ip\";r=0;t=60"));
    assert_eq!(w.edge.origin.calls("/auth/login"), 3);
}
