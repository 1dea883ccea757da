//! Refused tokens at the edge: every kind of bad token gets, byte for byte, the origin's
//! `401` for the same token, from the edge itself.

use serde_json::{Value, json};

use super::{EdgeRuntime, assert_edge_headers, origin_with, stack_over};
use crate::helpers::{Api as _, TestUser};
use crate::jwt::{
    assert_signed_with, changed, compact_jws, jwt_parts, now_secs, random_seed, sign_eddsa,
    use_signing_seed, with_claims,
};

/// Bad tokens for `user` (whose token the origin signed with `seed`), each with what is wrong
/// with it; `admin` is the id a tampered token claims.
fn forgeries(seed: [u8; 32], user: &TestUser, admin: uuid::Uuid) -> Vec<(&'static str, String)> {
    let kid = assert_signed_with(&user.access, seed);
    let (_, claims) = jwt_parts(&user.access);
    let with = |changes: Value| changed(&claims, changes);
    let now = now_secs();
    let tampered = with_claims(&user.access, &with(json!({"sub": admin.to_string()})));
    vec![
        ("garbage", "not-a-jwt".to_owned()),
        ("three empty parts", "..".to_owned()),
        (
            "alg none",
            compact_jws(
                &json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &claims,
                |_| Vec::new(),
            ),
        ),
        (
            "foreign key, the origin's kid",
            sign_eddsa(random_seed(), &kid, &claims),
        ),
        ("tampered claims", tampered),
        (
            "expired",
            sign_eddsa(
                seed,
                &kid,
                &with(json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600})),
            ),
        ),
        (
            "wrong audience",
            sign_eddsa(seed, &kid, &with(json!({"aud": "someone-else"}))),
        ),
        (
            "wrong issuer",
            sign_eddsa(seed, &kid, &with(json!({"iss": "http://evil.test"}))),
        ),
    ]
}

/// Tokens the edge refuses get byte for byte the origin's `401` for the same token, and are
/// not forwarded.
pub async fn invalid_tokens_get_the_origins_401_from_the_edge<R: EdgeRuntime>(rt: &R) {
    let seed = random_seed();
    let app = origin_with(|vars| use_signing_seed(vars, seed)).await;
    let s = stack_over(rt, app, &[]).await;
    let edge = s.edge();
    let origin = s.origin();
    let user = edge.new_user().await;
    edge.as_user(&user).me().await.expect_json(200);

    for (what, token) in forgeries(seed, &user, s.app.admin.id) {
        let why = format!("{what}: the edge refused it without asking the origin");
        let at_edge = s.assert_refused_at_the_edge(&token, &why).await;
        assert_edge_headers(what, &at_edge);
        let at_origin = origin.bearer(&token).me().await;
        assert_eq!(at_edge.status, at_origin.status, "{what}");
        assert_eq!(at_edge.text, at_origin.text, "{what}: the same body");
        for header in ["content-type", "www-authenticate"] {
            assert_eq!(
                at_edge.header(header),
                at_origin.header(header),
                "{what}: {header}"
            );
        }
    }
    // A token the origin signed, re-signed identically, still works: the edge knows the key.
    let kid = assert_signed_with(&user.access, seed);
    let (_, claims) = jwt_parts(&user.access);
    let resigned = sign_eddsa(seed, &kid, &claims);
    edge.bearer(&resigned).me().await.expect_json(200);
}
