//! Hand-made JWTs: decoding without verification, and signing arbitrary headers and claims,
//! so tests can forge exactly the token they mean (alg `none`, HS256 key confusion, foreign
//! keys, wrong audience) and sign valid ones with a seed they gave the origin.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A random 32-byte seed.
pub fn random_seed() -> [u8; 32] {
    rand::thread_rng().r#gen()
}

/// Writes `seed` as the origin's signing key (base64url, in `DATA_DIR`) and points
/// `SIGNING_KEY_FILE` at it.
pub fn use_signing_seed(vars: &mut HashMap<String, String>, seed: [u8; 32]) {
    let path = Path::new(&vars["DATA_DIR"]).join("test-signing-key");
    std::fs::write(&path, URL_SAFE_NO_PAD.encode(seed)).expect("write the signing key");
    vars.insert("SIGNING_KEY_FILE".into(), path.display().to_string());
}

/// The decoded header and claims of a JWT (no verification).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = |what: &str| -> Value {
        let part = parts.next().unwrap_or_else(|| panic!("JWT {what}"));
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url"))
            .expect("JSON part")
    };
    let header = decode("header");
    let claims = decode("claims");
    (header, claims)
}

/// Builds a compact JWS from a header and claims and signs `header.claims` with `sign`.
pub fn compact_jws(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `token` with its claims replaced by `claims` and its header and signature kept.
pub fn with_claims(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().expect("a JWT header");
    let signature = parts.nth(1).expect("a JWT signature");
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{claims}.{signature}")
}

/// `claims` with each member of `changes` set, or removed where it is `null`.
pub fn changed(claims: &Value, changes: Value) -> Value {
    let mut out = claims.clone();
    let members = out.as_object_mut().expect("claims are an object");
    for (key, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            members.remove(key);
        } else {
            members.insert(key.clone(), value.clone());
        }
    }
    out
}

/// The kid of `seed`'s key, asserting that `token` names it (its issuer signs with `seed`).
#[track_caller]
pub fn assert_signed_with(token: &str, seed: [u8; 32]) -> String {
    let kid = thumbprint(&public_key_of(seed));
    let (header, _) = jwt_parts(token);
    assert_eq!(
        header["kid"],
        json!(kid),
        "the origin signs with the test's seed"
    );
    kid
}

/// An EdDSA JWT over `claims`, signed with the key of `seed`, naming `kid`.
pub fn sign_eddsa(seed: [u8; 32], kid: &str, claims: &Value) -> String {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    compact_jws(&header, claims, |input| pair.sk.sign(input, None).to_vec())
}

/// The raw public key of `seed`.
pub fn public_key_of(seed: [u8; 32]) -> [u8; 32] {
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    *pair.pk
}

/// The RFC 7638 thumbprint of an Ed25519 public key.
pub fn thumbprint(public_key: &[u8]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public_key);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
