//! Access tokens: claims, signing and verification (SPEC §4).
//!
//! Tokens are JWTs signed with Ed25519 (`alg: EdDSA`) and carry a `kid`. Verification pins the
//! algorithm, requires a known `kid`, and checks `iss`, `aud`, `exp` and `nbf` against a time
//! passed in by the caller. The security version `sv` is checked by the caller, which knows the
//! user's current one.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_compact::{PublicKey, SecretKey};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt as _, Claims, Header, TimeOptions, UntrustedToken};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::UnixSeconds;
use crate::perms::Permission;

/// The only algorithm accepted, as named in the JOSE header.
pub const ALGORITHM: &str = "EdDSA";
/// Default access-token lifetime: 15 minutes (SPEC §4).
pub const DEFAULT_ACCESS_TTL: i64 = 15 * 60;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY: i64 = 30;
/// Longest token accepted before any parsing, in bytes.
pub const TOKEN_MAX: usize = 4096;

/// The permissions of `perms` this build knows.
fn known_permissions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Permission>, D::Error> {
    let names = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(names.iter().filter_map(|n| Permission::parse(n)).collect())
}

/// The application claims of an access token (the registered time claims are beside them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: Audience,
    /// The user id.
    pub sub: Uuid,
    pub jti: String,
    pub roles: Vec<String>,
    /// Permissions at issue time. A name this verifier does not know (a newer origin's) is
    /// left out, not an error: a tier that predates a permission cannot act on it anyway, and
    /// its tokens must keep working through a rolling upgrade.
    #[serde(deserialize_with = "known_permissions")]
    pub perms: Vec<Permission>,
    /// The user's security version at issue time.
    pub sv: i64,
    /// The session (one login, one refresh family) the token was issued to (SPEC §7). Absent
    /// only on tokens issued before sessions existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// Whether the user's e-mail address was verified at issue time (SPEC §6).
    #[serde(default)]
    pub email_verified: bool,
    /// How the login was proved (RFC 8176): `pwd`, and `otp` or `rc` after a second factor
    /// (SPEC §8). Absent on tokens issued before second factors existed: `pwd` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// `amr` value of a password (RFC 8176 §2).
pub const AMR_PASSWORD: &str = "pwd";
/// `amr` value of a one-time password (RFC 8176 §2): a TOTP code.
pub const AMR_OTP: &str = "otp";
/// `amr` value of a recovery code (SPEC §8).
pub const AMR_RECOVERY_CODE: &str = "rc";

/// `aud` as RFC 7519 allows it: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(one) => one == aud,
            Self::Many(many) => many.iter().any(|a| a == aud),
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub claims: AccessClaims,
    pub issued_at: UnixSeconds,
    pub expires_at: UnixSeconds,
    pub kid: String,
}

impl Verified {
    pub fn has(&self, perm: Permission) -> bool {
        self.claims.perms.contains(&perm)
    }
}

/// Why a token was refused. Clients only ever see one uniform 401; the variant is for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token algorithm is not EdDSA")]
    AlgorithmNotAllowed,
    #[error("token names no key or an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is wrong")]
    WrongIssuer,
    #[error("token audience is wrong")]
    WrongAudience,
}

/// What a verifier expects of every token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
}

/// The public keys that may verify tokens, by `kid` (several at once during rotation).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicKey>,
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under its RFC 7638 thumbprint and returns that `kid`.
    pub fn insert(&mut self, key: PublicKey) -> String {
        let kid = thumbprint(&key);
        self.keys.insert(kid.clone(), key);
        kid
    }

    /// Adds every key of `other` (keeping their `kid`s).
    pub fn merge(&mut self, other: KeySet) {
        self.keys.extend(other.keys);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JWKS document of these keys.
    pub fn to_jwks(&self) -> Jwks {
        let mut keys: Vec<Jwk> = self
            .keys
            .iter()
            .map(|(kid, key)| Jwk::from_key(kid, key))
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Jwks { keys }
    }

    /// Reads the Ed25519 keys of a JWKS document; other key types are skipped.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut set = Self::new();
        for jwk in &jwks.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                continue;
            }
            let Ok(raw) = URL_SAFE_NO_PAD.decode(&jwk.x) else {
                continue;
            };
            let Ok(key) = PublicKey::from_slice(&raw) else {
                continue;
            };
            set.keys.insert(jwk.kid.clone(), key);
        }
        set
    }

    /// Verifies `token` at time `now`.
    pub fn verify(
        &self,
        token: &str,
        expect: &Expectations,
        now: UnixSeconds,
    ) -> Result<Verified, TokenError> {
        if token.len() > TOKEN_MAX {
            return Err(TokenError::Malformed);
        }
        let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
        if untrusted.algorithm() != ALGORITHM {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let kid = untrusted
            .header()
            .key_id
            .clone()
            .ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        let token = Ed25519
            .validator::<AccessClaims>(key)
            .validate(&untrusted)
            .map_err(|e| match e {
                jwt_compact::ValidationError::MalformedClaims(_) => TokenError::Malformed,
                _ => TokenError::BadSignature,
            })?;
        let claims = token.claims();
        let options = time_options(now);
        claims
            .validate_expiration(&options)
            .map_err(|_| TokenError::Expired)?;
        if claims.not_before.is_some() {
            claims
                .validate_maturity(&options)
                .map_err(|_| TokenError::NotYetValid)?;
        }
        let custom = &claims.custom;
        if custom.iss != expect.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !custom.aud.contains(&expect.audience) {
            return Err(TokenError::WrongAudience);
        }
        Ok(Verified {
            claims: custom.clone(),
            issued_at: claims.issued_at.map_or(0, |t| t.timestamp()),
            expires_at: claims.expiration.map_or(0, |t| t.timestamp()),
            kid,
        })
    }
}

fn at(secs: UnixSeconds) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

fn time_options(now: UnixSeconds) -> TimeOptions<impl Fn() -> DateTime<Utc>> {
    TimeOptions::new(chrono::Duration::seconds(LEEWAY), move || at(now))
}

/// Signs access tokens with one private key.
pub struct Signer {
    key: SecretKey,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for the key derived from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
        let kid = thumbprint(&pair.pk);
        Self { key: pair.sk, kid }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Signs `claims`, valid from `now` for `ttl` seconds.
    pub fn sign(&self, claims: AccessClaims, now: UnixSeconds, ttl: i64) -> String {
        let mut full = Claims::new(claims);
        full.issued_at = Some(at(now));
        full.not_before = Some(at(now));
        full.expiration = Some(at(now + ttl));
        let header = Header::empty()
            .with_key_id(self.kid.clone())
            .with_token_type("JWT");
        // Signing with an in-memory Ed25519 key and serialisable claims cannot fail.
        Ed25519.token(&header, &full, &self.key).unwrap_or_default()
    }
}

/// The RFC 7638 thumbprint of an Ed25519 key, base64url: its `kid`.
pub fn thumbprint(key: &PublicKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_ref());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A JSON Web Key Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key of a [`Jwks`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub crv: String,
    #[serde(default)]
    pub x: String,
    #[serde(default)]
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    fn from_key(kid: &str, key: &PublicKey) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.as_ref()),
            kid: kid.into(),
            alg: Some(ALGORITHM.into()),
            use_: Some("sig".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expectations {
        Expectations {
            issuer: "https://id.example".into(),
            audience: "users-api".into(),
        }
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://id.example".into(),
            aud: Audience::One("users-api".into()),
            sub: Uuid::from_u128(7),
            jti: "j1".into(),
            roles: vec!["user".into()],
            perms: vec![],
            sv: 3,
            sid: Some(Uuid::from_u128(9)),
            email_verified: true,
            amr: vec![AMR_PASSWORD.into(), AMR_OTP.into()],
        }
    }

    fn setup() -> (Signer, KeySet) {
        let signer = Signer::from_seed([7; 32]);
        let mut keys = KeySet::new();
        let kid = keys.insert(signer.public_key());
        assert_eq!(kid, signer.kid());
        (signer, keys)
    }

    #[test]
    fn a_signed_token_verifies() {
        let (signer, keys) = setup();
        let token = signer.sign(claims(), NOW, 900);
        let verified = keys.verify(&token, &expect(), NOW + 10).unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.expires_at, NOW + 900);
        assert_eq!(verified.issued_at, NOW);
    }

    #[test]
    fn time_is_checked_with_leeway() {
        let (signer, keys) = setup();
        let token = signer.sign(claims(), NOW, 900);
        assert_eq!(
            keys.verify(&token, &expect(), NOW + 900 + LEEWAY + 1),
            Err(TokenError::Expired)
        );
        assert!(
            keys.verify(&token, &expect(), NOW + 900 + LEEWAY - 1)
                .is_ok()
        );
        assert_eq!(
            keys.verify(&token, &expect(), NOW - LEEWAY - 1),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn issuer_and_audience_are_checked() {
        let (signer, keys) = setup();
        let token = signer.sign(claims(), NOW, 900);
        let mut e = expect();
        e.issuer = "other".into();
        assert_eq!(keys.verify(&token, &e, NOW), Err(TokenError::WrongIssuer));
        let mut e = expect();
        e.audience = "other".into();
        assert_eq!(keys.verify(&token, &e, NOW), Err(TokenError::WrongAudience));
        let mut c = claims();
        c.aud = Audience::Many(vec!["x".into(), "users-api".into()]);
        assert!(
            keys.verify(&signer.sign(c, NOW, 900), &expect(), NOW)
                .is_ok()
        );
    }

    #[test]
    fn unknown_keys_and_tampering_are_refused() {
        let (signer, keys) = setup();
        let other = Signer::from_seed([8; 32]);
        let foreign = other.sign(claims(), NOW, 900);
        assert_eq!(
            keys.verify(&foreign, &expect(), NOW),
            Err(TokenError::UnknownKey)
        );

        let token = signer.sign(claims(), NOW, 900);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        c["perms"] = serde_json::json!(["users:delete"]);
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(
            keys.verify(&parts.join("."), &expect(), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn permissions_this_build_does_not_know_are_left_out() {
        let mut c = serde_json::to_value(claims()).unwrap();
        c["perms"] = serde_json::json!(["users:read", "users:some_later_permission"]);
        let parsed: AccessClaims = serde_json::from_value(c).unwrap();
        assert_eq!(parsed.perms, [Permission::UsersRead]);
    }

    #[test]
    fn other_algorithms_are_refused() {
        let (signer, keys) = setup();
        let token = signer.sign(claims(), NOW, 900);
        let parts: Vec<&str> = token.split('.').collect();
        for alg in ["none", "HS256", "RS256", "Ed25519"] {
            let header = format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, signer.kid());
            let forged = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                parts[1],
                parts[2]
            );
            assert_eq!(
                keys.verify(&forged, &expect(), NOW),
                Err(TokenError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        assert_eq!(
            keys.verify("a.b", &expect(), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            keys.verify(&"a".repeat(5000), &expect(), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn jwks_round_trips_and_rotation_keeps_old_keys() {
        let (signer, mut keys) = setup();
        let next = Signer::from_seed([9; 32]);
        keys.insert(next.public_key());
        let parsed = KeySet::from_jwks(&keys.to_jwks());
        assert_eq!(parsed.len(), 2);
        assert!(
            parsed
                .verify(&signer.sign(claims(), NOW, 60), &expect(), NOW)
                .is_ok()
        );
        assert!(
            parsed
                .verify(&next.sign(claims(), NOW, 60), &expect(), NOW)
                .is_ok()
        );
    }
}
