//! The edge-origin header contract on arbitrary header values: bearer parsing, request ids,
//! `If-None-Match`, the revocation echo and the CSP choice never panic; what they accept keeps
//! their promises (a bearer token is part of the value, a kept request id
//! is short, a revocation echo round-trips).
#![no_main]

use libfuzzer_sys::fuzz_target;
use users_core::wire;

fuzz_target!(|data: &[u8]| {
    let id_ok = wire::is_valid_request_id(data);
    if id_ok {
        assert!(!data.is_empty() && data.len() <= wire::REQUEST_ID_MAX);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = wire::bearer_token(text) {
        assert!(text.contains(token), "{text:?} gave {token:?}");
    }
    let (header, etag) = text.split_once('\n').unwrap_or((text, "\"v1\""));
    let _ = wire::etag_matches(header, etag);
    let parsed: Vec<_> = wire::parse_revoked(text).collect();
    let echoed = wire::revoked_value(parsed.iter().copied());
    assert_eq!(wire::parse_revoked(&echoed).collect::<Vec<_>>(), parsed);
    let _ = wire::content_security_policy(Some(text));
});
