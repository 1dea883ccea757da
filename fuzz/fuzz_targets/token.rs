//! Access-token verification of arbitrary text: never panics, and nothing but the one token
//! the fixed key signed verifies (a forgery would be accepted with other claims).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use users_core::token::{AccessClaims, Audience, Expectations, KeySet, Signer};

const NOW: i64 = 1_800_000_000;

static SETUP: LazyLock<(KeySet, Expectations, String)> = LazyLock::new(|| {
    let signer = Signer::from_seed([7; 32]);
    let mut keys = KeySet::new();
    keys.insert(signer.public_key());
    let claims = AccessClaims {
        iss: "https://users.example".into(),
        aud: Audience::One("users-api".into()),
        sub: uuid::Uuid::from_u128(1),
        jti: "fuzz".into(),
        roles: vec!["user".into()],
        perms: Vec::new(),
        sv: 1,
        sid: Some(uuid::Uuid::from_u128(2)),
        email_verified: true,
        amr: vec!["pwd".into(), "otp".into()],
    };
    let token = signer.sign(claims, NOW, 900);
    let expect = Expectations {
        issuer: "https://users.example".into(),
        audience: "users-api".into(),
    };
    (keys, expect, token)
});

fuzz_target!(|data: &[u8]| {
    let (keys, expect, signed) = &*SETUP;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [
        text.to_owned(),
        format!("{signed}{text}"),
        spliced(signed, text),
    ] {
        if keys.verify(&candidate, expect, NOW).is_ok() {
            assert_eq!(&candidate, signed, "a token the key never signed verified");
        }
    }
});

/// The signed token with its payload segment replaced by `text`.
fn spliced(signed: &str, text: &str) -> String {
    let mut parts = signed.split('.');
    let header = parts.next().unwrap_or_default();
    let _payload = parts.next();
    let signature = parts.next().unwrap_or_default();
    format!("{header}.{text}.{signature}")
}
