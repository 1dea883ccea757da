//! Edge configuration, read through a lookup function (Worker vars and secrets, Spin
//! variables, or a map in tests) and validated once.

use users_core::ratelimit::Quota;
use users_core::token::{Jwks, KeySet};

/// Every setting the edge reads, pipeline and adapters together. Spin variables carry the
/// same names in lower case (`origin_url`).
pub const SETTINGS: [&str; 13] = [
    "ORIGIN_URL",
    "EDGE_SHARED_SECRET",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWKS",
    "JWKS_TTL",
    "RATE_LIMIT_AUTH_IP",
    "RATE_LIMIT_USER",
    "PROFILE_CACHE_TTL",
    "STALE_IF_ERROR",
    "REVOCATION_SYNC_INTERVAL",
    "CORS_ORIGINS",
    "ORIGIN_TIMEOUT_MS",
];

/// Everything the pipeline needs to know.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `ORIGIN_URL`: base URL of the origin (required), e.g. `https://origin.internal`.
    pub origin_url: String,
    /// `EDGE_SHARED_SECRET`: sent to the origin in `X-Edge-Secret` (required, ≥ 16 chars).
    pub edge_secret: String,
    /// `JWT_ISSUER` (required) and `JWT_AUDIENCE` (default `users-api`).
    pub issuer: String,
    pub audience: String,
    /// `JWKS`: inline public keys. Unset: fetched from the origin's JWKS and cached.
    pub static_keys: Option<KeySet>,
    /// `JWKS_TTL`: seconds a fetched key set is trusted before it is fetched again (default 300).
    pub jwks_ttl_ms: i64,
    /// `RATE_LIMIT_AUTH_IP` (default `30/60s`) and `RATE_LIMIT_USER` (default `600/60s`).
    pub auth_ip_quota: Quota,
    pub user_quota: Quota,
    /// `PROFILE_CACHE_TTL`: seconds a cached profile is served (default 30).
    pub profile_ttl_ms: i64,
    /// `STALE_IF_ERROR`: seconds past its TTL a cached profile may still be served while the
    /// origin is unreachable (default 300).
    pub stale_if_error_ms: i64,
    /// `REVOCATION_SYNC_INTERVAL`: at most this many seconds between two polls of the origin's
    /// revocation feed: the bound on revocation lag for revocations made elsewhere (default 5).
    pub revocation_sync_ms: i64,
    /// `CORS_ORIGINS`: comma-separated allowed origins (`*` for any; default none).
    pub cors_origins: Vec<String>,
}

/// Every configuration problem, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid edge configuration: {}", self.0.join("; "))
    }
}

impl EdgeConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let origin_url = get("ORIGIN_URL").unwrap_or_else(|| {
            problems.push("ORIGIN_URL: required".to_owned());
            String::new()
        });
        if !(origin_url.is_empty()
            || origin_url.starts_with("http://")
            || origin_url.starts_with("https://"))
        {
            problems.push("ORIGIN_URL: must start with http:// or https://".to_owned());
        }
        let edge_secret = get("EDGE_SHARED_SECRET").unwrap_or_default();
        if edge_secret.len() < 16 {
            problems.push("EDGE_SHARED_SECRET: required, at least 16 characters".to_owned());
        }
        let issuer = get("JWT_ISSUER").unwrap_or_else(|| {
            problems.push("JWT_ISSUER: required (the origin's JWT_ISSUER)".to_owned());
            String::new()
        });
        let static_keys = match get("JWKS") {
            None => None,
            Some(raw) => match serde_json::from_str::<Jwks>(&raw) {
                Ok(jwks) => Some(KeySet::from_jwks(&jwks)),
                Err(e) => {
                    problems.push(format!("JWKS: not a JWK set: {e}"));
                    None
                }
            },
        };
        let mut secs = |key: &str, default: i64| -> i64 {
            match get(key) {
                None => default * 1000,
                Some(raw) => match raw.parse::<i64>() {
                    Ok(v) if (0..=86_400).contains(&v) => v * 1000,
                    _ => {
                        problems.push(format!(
                            "{key}: {raw:?} is not a number of seconds (0..=86400)"
                        ));
                        default * 1000
                    }
                },
            }
        };
        let jwks_ttl_ms = secs("JWKS_TTL", 300);
        let profile_ttl_ms = secs("PROFILE_CACHE_TTL", 30);
        let stale_if_error_ms = secs("STALE_IF_ERROR", 300);
        let revocation_sync_ms = secs("REVOCATION_SYNC_INTERVAL", 5);
        let mut quota = |key: &str, default: &str| {
            let raw = get(key).unwrap_or_else(|| default.to_owned());
            Quota::parse(&raw).unwrap_or_else(|e| {
                problems.push(format!("{key}: {raw:?} {e}"));
                Quota {
                    limit: 1,
                    window_ms: 1000,
                }
            })
        };
        let auth_ip_quota = quota("RATE_LIMIT_AUTH_IP", "30/60s");
        let user_quota = quota("RATE_LIMIT_USER", "600/60s");
        let cors_origins = get("CORS_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Self {
            origin_url: origin_url.trim_end_matches('/').to_owned(),
            edge_secret,
            issuer,
            audience: get("JWT_AUDIENCE").unwrap_or_else(|| "users-api".to_owned()),
            static_keys,
            jwks_ttl_ms,
            auth_ip_quota,
            user_quota,
            profile_ttl_ms,
            stale_if_error_ms,
            revocation_sync_ms,
            cors_origins,
        })
    }
}
