//! Each rule of the wire contract, pinned to the exact bytes both tiers send.

use super::*;
use crate::ratelimit::gcra;

#[test]
fn the_body_limit_is_64_kib_and_the_413_detail_names_it() {
    assert_eq!(BODY_MAX, 65_536);
    assert!(
        ErrorCode::PayloadTooLarge
            .detail()
            .contains(&format!(" {BODY_MAX} bytes")),
        "{}",
        ErrorCode::PayloadTooLarge.detail()
    );
}

#[test]
fn header_names_are_lower_case_tokens() {
    let names = [
        REQUEST_ID,
        EDGE_SECRET,
        FORWARDED_FOR,
        REVOKED,
        RATELIMIT_POLICY,
        RATELIMIT,
        EDGE_CACHE,
    ];
    for name in names {
        assert!(!name.is_empty());
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
    }
    assert_eq!(REQUEST_ID, "x-request-id");
    assert_eq!(EDGE_SECRET, "x-edge-secret");
    assert_eq!(FORWARDED_FOR, "x-forwarded-for");
    assert_eq!(REVOKED, "x-users-revoked");
    assert_eq!(RATELIMIT_POLICY, "ratelimit-policy");
    assert_eq!(RATELIMIT, "ratelimit");
    assert_eq!(EDGE_CACHE, "x-edge-cache");
    assert_eq!(PROFILE_CACHE_CONTROL, "no-store");
}

#[test]
fn pages_get_the_docs_policy_and_everything_else_the_api_policy() {
    assert_eq!(content_security_policy(Some("text/html")), DOCS_CSP);
    assert_eq!(
        content_security_policy(Some("Text/HTML; charset=utf-8")),
        DOCS_CSP
    );
    assert_eq!(content_security_policy(Some("application/json")), API_CSP);
    assert_eq!(content_security_policy(Some("text/htmlx")), API_CSP);
    assert_eq!(content_security_policy(None), API_CSP);
    for policy in [API_CSP, DOCS_CSP] {
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(
            !policy.contains("  "),
            "one space between directives: {policy}"
        );
        assert!(!policy.contains("script-src 'unsafe"), "{policy}");
    }
}

#[test]
fn request_ids_of_1_to_128_safe_bytes_are_kept() {
    for ok in ["a", "abc-123", "A.b_c:d-e", "0123456789"] {
        assert!(is_valid_request_id(ok.as_bytes()), "{ok:?}");
    }
    assert!(is_valid_request_id("x".repeat(REQUEST_ID_MAX).as_bytes()));
    assert!(!is_valid_request_id(
        "x".repeat(REQUEST_ID_MAX + 1).as_bytes()
    ));
    assert!(!is_valid_request_id(b""));
    for bad in ["bad id", "<x>", "a/b", "a\nb", "é", "a,b", "a;b", "\"a\""] {
        assert!(!is_valid_request_id(bad.as_bytes()), "{bad:?}");
    }
    assert!(!is_valid_request_id(&[b'a', 0xff]));
}

#[test]
fn bearer_tokens_are_read_with_any_scheme_case() {
    assert_eq!(bearer_token("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
    assert_eq!(bearer_token("bearer abc"), Ok("abc"));
    assert_eq!(bearer_token("BEARER abc"), Ok("abc"));
    assert_eq!(bearer_token("Bearer   abc  "), Ok("abc"));
    assert_eq!(bearer_token("Bearer "), Ok(""));
    assert_eq!(
        bearer_token("Basic dXNlcjpwYXNz"),
        Err(BearerError::NotBearer)
    );
    assert_eq!(bearer_token("Bearerabc"), Err(BearerError::Malformed));
    assert_eq!(bearer_token(""), Err(BearerError::Malformed));
    // Only the first space separates: the rest belongs to the (then invalid) token.
    assert_eq!(bearer_token("Bearer a b"), Ok("a b"));
}

#[test]
fn challenges_follow_rfc_6750() {
    assert_eq!(www_authenticate(ErrorCode::Unauthenticated), Some("Bearer"));
    assert_eq!(
        www_authenticate(ErrorCode::InvalidToken),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(www_authenticate(ErrorCode::Forbidden), None);
    assert_eq!(www_authenticate(ErrorCode::InvalidCredentials), None);
    assert_eq!(UNAVAILABLE_RETRY_AFTER_SECS, 1);
}

#[test]
fn rate_limit_headers_follow_the_ietf_draft() {
    let quota = Quota {
        limit: 3,
        window_ms: 60_000,
    };
    assert_eq!(
        rate_limit_policy(SCOPE_AUTH_IP, quota),
        "\"auth-ip\";q=3;w=60"
    );
    let mut tat = None;
    let mut last = None;
    for _ in 0..4 {
        let d = gcra(tat, 1_000_000, quota);
        if d.allowed {
            tat = Some(d.tat_us);
        }
        last = Some(d);
    }
    let refused = last.unwrap();
    assert!(!refused.allowed);
    assert_eq!(rate_limit(SCOPE_AUTH_IP, &refused), "\"auth-ip\";r=0;t=60");
    let first = gcra(None, 0, quota);
    assert_eq!(rate_limit(SCOPE_USER, &first), "\"user\";r=2;t=20");
    // Windows and resets round up to whole seconds.
    let odd = Quota {
        limit: 1,
        window_ms: 1_500,
    };
    assert_eq!(rate_limit_policy(SCOPE_USER, odd), "\"user\";q=1;w=2");
}

#[test]
fn the_429_detail_says_when_to_retry() {
    assert_eq!(rate_limited_detail(20), "Too many requests; retry in 20 s.");
    assert_eq!(rate_limited_detail(1), "Too many requests; retry in 1 s.");
}

#[test]
fn etags_match_strongly_weakly_and_by_wildcard() {
    assert!(etag_matches("\"a-1\"", "\"a-1\""));
    assert!(etag_matches("\"x\", W/\"a-1\"", "\"a-1\""));
    assert!(etag_matches(" \"x\" ,\"a-1\" ", "\"a-1\""));
    assert!(etag_matches("*", "\"a-1\""));
    assert!(!etag_matches("\"a-2\"", "\"a-1\""));
    assert!(!etag_matches("a-1", "\"a-1\""));
    assert!(!etag_matches("", "\"a-1\""));
}

#[test]
fn the_revocation_echo_round_trips() {
    let a = Uuid::from_u128(1);
    let b = Uuid::from_u128(2);
    let sid = Uuid::from_u128(3);
    let v = |user, sv| Revocation::Version { user, sv };
    let session = Revocation::Session {
        user: a,
        sid,
        until: 1_800_000_900,
    };
    let value = revoked_value([v(a, 3), v(b, 7), session]);
    assert_eq!(
        value,
        "00000000-0000-0000-0000-000000000001:3, 00000000-0000-0000-0000-000000000002:7, \
         00000000-0000-0000-0000-000000000001:00000000-0000-0000-0000-000000000003@1800000900"
    );
    assert_eq!(
        parse_revoked(&value).collect::<Vec<_>>(),
        [v(a, 3), v(b, 7), session]
    );
    assert_eq!(session.user(), a);
    assert_eq!(revoked_value([]), "");
    assert_eq!(parse_revoked("").count(), 0);
    // Members that do not parse are skipped; the others still apply.
    let mixed = format!("junk, {a}:x, nope:1, {b}:9,{a}:4, {a}:{sid}@x, {a}:nope@5");
    assert_eq!(
        parse_revoked(&mixed).collect::<Vec<_>>(),
        [v(b, 9), v(a, 4)]
    );
}

#[test]
fn country_codes_are_two_letters() {
    assert_eq!(country_code("de").as_deref(), Some("DE"));
    assert_eq!(country_code(" US ").as_deref(), Some("US"));
    assert_eq!(country_code("T1").as_deref(), Some("T1"));
    for bad in ["", "D", "DEU", "D-", "ü1"] {
        assert_eq!(country_code(bad), None, "{bad:?}");
    }
}

#[test]
fn the_feed_is_asked_for_full_pages() {
    assert_eq!(
        revocations_page_path(42),
        "/internal/revocations?since=42&limit=1000"
    );
    assert!(revocations_page_path(0).starts_with(REVOCATIONS_PATH));
    assert_eq!(REVOCATION_PAGE_MAX, 1000);
    assert_eq!(JWKS_PATH, "/.well-known/jwks.json");
}

#[test]
fn only_the_503_codes_carry_a_fixed_retry_after() {
    for code in ErrorCode::ALL {
        let expected = (code.status() == 503).then_some(UNAVAILABLE_RETRY_AFTER_SECS);
        assert_eq!(retry_after_secs(code), expected, "{code:?}");
    }
}
