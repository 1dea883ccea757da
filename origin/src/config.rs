//! Configuration from the environment (`.env` honoured by `main`), validated once at start.
//!
//! [`Config::from_lookup`] reads every variable through a lookup function, so tests pass a map
//! and production passes `std::env::var`. All problems are reported together, one line each.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A value that must never reach a log: `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the origin needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL connection string (required).
    pub database_url: Secret<String>,
    /// `DATABASE_LISTEN_URL`: the connection that follows change notifications (`LISTEN`),
    /// straight to the primary when `DATABASE_URL` goes through a transaction-mode pooler
    /// (default `DATABASE_URL`).
    pub database_listen_url: Secret<String>,
    /// `DATABASE_POOL_SIZE`: maximum pooled connections (default 16).
    pub database_pool_size: usize,
    /// `LISTEN_ADDR`: socket address to bind (default `127.0.0.1:8080`; port 0 picks one).
    pub listen_addr: SocketAddr,
    /// `PUBLIC_URL`: the externally visible base URL, used for links in mail (default
    /// `http://<LISTEN_ADDR>`). Never derived from a request's `Host`.
    pub public_url: String,
    /// `SMTP_URL`: e.g. `smtp://mail:25` or `smtps://user:pass@mail:465`. Unset: mail stays in
    /// the outbox table.
    pub smtp_url: Option<Secret<String>>,
    /// `MAIL_FROM`: sender address of outgoing mail (default `no-reply@localhost`).
    pub mail_from: String,
    /// `MAIL_POLL_MS`: how often the mail sender looks at the outbox (default 1000).
    pub mail_poll_ms: u64,
    /// `ADMIN_USERNAME`, `ADMIN_EMAIL`, `ADMIN_PASSWORD`: an admin created at start if absent.
    pub admin: Option<AdminBootstrap>,
    /// `ALLOW_REGISTRATION`: whether `POST /auth/register` is open (default true).
    pub allow_registration: bool,
    /// Token settings.
    pub tokens: TokenConfig,
    /// Signing keys.
    pub keys: KeyConfig,
    /// Password hashing.
    pub hashing: HashConfig,
    /// `PASSWORD_RESET_TTL`: seconds a reset token stays valid (default 1800).
    pub password_reset_ttl: i64,
    /// `IDEMPOTENCY_TTL`: seconds the answer to a request with an `Idempotency-Key` is kept
    /// for its repeats (default 86400).
    pub idempotency_ttl: i64,
    /// E-mail verification.
    pub email: EmailConfig,
    /// `REQUEST_TIMEOUT_MS`: a request still unanswered after this long gets `503` (a hung
    /// dependency must not hold clients forever; default 8000).
    pub request_timeout_ms: u64,
    /// Redis, caching and rate limits.
    pub redis: RedisConfig,
    /// Rate limits.
    pub limits: LimitConfig,
    /// Which peers may tell the client address.
    pub proxies: ProxyConfig,
    /// Second factors.
    pub mfa: MfaConfig,
}

/// Second factors (SPEC §8).
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// `MFA_REQUIRED_ROLES`: comma-separated role names whose permissions need a token proved
    /// with a TOTP code (`otp` in `amr`). Default: none.
    pub required_roles: Vec<String>,
    /// `MFA_ISSUER`: the issuer an authenticator app shows beside the account (default: the host
    /// of `PUBLIC_URL`).
    pub issuer: String,
}

/// What an account whose address is not verified may do (`UNVERIFIED_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnverifiedPolicy {
    /// Everything works; `email_verified: false` is visible (the default).
    Allow,
    /// The right password of an unverified account answers `403` `email-unverified`.
    Block,
}

/// E-mail verification (SPEC §6).
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `UNVERIFIED_POLICY`: `allow` (default) or `block`.
    pub unverified_policy: UnverifiedPolicy,
    /// `EMAIL_VERIFY_TTL`: seconds a verification or change-confirmation link stays valid
    /// (default 86400).
    pub verify_ttl: i64,
    /// `EMAIL_RESEND_INTERVAL`: seconds between two verification or notice mails to one
    /// account (default 60).
    pub resend_interval: i64,
}

/// Redis and the user-view cache.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`: e.g. `redis://127.0.0.1:6379/0`. Unset (and no `REDIS_CLUSTER_URLS`):
    /// in-process cache and limits.
    pub url: Option<Secret<String>>,
    /// `REDIS_CLUSTER_URLS`: comma-separated seed nodes of a Redis Cluster
    /// (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`); not with `REDIS_URL`.
    pub cluster_urls: Option<Secret<Vec<String>>>,
    /// `REDIS_PREFIX`: prefix of every key (default `users:`); no `{` or `}`, which would
    /// choose the keys' hash slots on a cluster.
    pub prefix: String,
    /// `CACHE_TTL`: seconds a cached user view lives (default 300).
    pub cache_ttl: u64,
}

/// Rate limits, as `N/window` (`20/60s`, `300/1m`, `1000/1h`).
#[derive(Debug, Clone)]
pub struct LimitConfig {
    /// `RATE_LIMIT_AUTH_IP`: per client IP on `/auth/*` (default `30/60s`).
    pub auth_ip: users_core::ratelimit::Quota,
    /// `RATE_LIMIT_USER`: per user on authenticated routes (default `600/60s`).
    pub user: users_core::ratelimit::Quota,
    /// `LOGIN_FAILURE_WINDOW`: seconds failed logins of one identifier are remembered
    /// (default 900). After 5 failures each further one locks the identifier for 1 s, 2 s,
    /// 4 s … up to 15 min; a success clears them.
    pub login_failure_window: i64,
}

/// Client-address trust.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose `X-Forwarded-For` is believed.
    pub trusted: Vec<ipnet::IpNet>,
    /// `EDGE_SHARED_SECRET`: requests carrying it in `X-Edge-Secret` are from the edge, whose
    /// `X-Forwarded-For` is believed.
    pub edge_secret: Option<Secret<String>>,
}

/// The admin account ensured at start.
#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    pub username: String,
    pub email: String,
    pub password: Secret<String>,
}

/// Access and refresh tokens.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `JWT_ISSUER`: the `iss` claim (default: `PUBLIC_URL`).
    pub issuer: String,
    /// `JWT_AUDIENCE`: the `aud` claim (default `users-api`).
    pub audience: String,
    /// `ACCESS_TOKEN_TTL`: access-token lifetime in seconds (default 900).
    pub access_ttl: i64,
    /// `REFRESH_TOKEN_TTL`: refresh-token lifetime in seconds (default 30 days).
    pub refresh_ttl: i64,
}

/// Where keys come from.
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// `SIGNING_KEY_FILE`: file holding the base64url 32-byte Ed25519 seed. Unset: a key is
    /// generated once and kept in `DATA_DIR`.
    pub signing_key_file: Option<PathBuf>,
    /// `VERIFY_KEYS_FILE`: a JWKS of further public keys accepted (key rotation).
    pub verify_keys_file: Option<PathBuf>,
    /// `MFA_ENCRYPTION_KEY_FILE`: the keys sealing TOTP secrets and keying recovery-code
    /// hashes, one base64url 32-byte key per line, the current one first (older lines still
    /// open what they sealed). Unset: a key is generated once and kept in `DATA_DIR`.
    pub mfa_key_file: Option<PathBuf>,
    /// `DATA_DIR`: local state directory (default `.data`).
    pub data_dir: PathBuf,
}

/// Argon2id parameters and the hashing pool.
#[derive(Debug, Clone)]
pub struct HashConfig {
    /// `ARGON2_M_KIB`: memory cost in KiB (default 19456 = 19 MiB, OWASP).
    pub m_kib: u32,
    /// `ARGON2_T`: iterations (default 2).
    pub t: u32,
    /// `ARGON2_P`: parallelism (default 1).
    pub p: u32,
    /// `HASH_WORKERS`: hashing threads (default: the number of cores).
    pub workers: usize,
    /// `HASH_QUEUE`: hashes allowed to wait for a thread before requests get 503 (default
    /// 16 × workers).
    pub queue: usize,
}

/// Every problem found in the environment, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

struct Reader<F> {
    lookup: F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(&mut self, key: &str, default: T, what: &str) -> T {
        match self.get(key) {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                self.problems.push(format!("{key}: {raw:?} is not {what}"));
                default
            }),
        }
    }

    fn ranged<T>(&mut self, key: &str, default: T, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let v = self.parse(key, default, "a number");
        if v < min || v > max {
            self.problems
                .push(format!("{key}: {v} is outside {min}..={max}"));
            return default;
        }
        v
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        let database_url = r.get("DATABASE_URL");
        if database_url.is_none() {
            r.problems.push(
                "DATABASE_URL: required (e.g. postgres://postgres@127.0.0.1:5432/users)".into(),
            );
        } else if database_url
            .as_deref()
            .is_some_and(|u| u.parse::<tokio_postgres::Config>().is_err())
        {
            r.problems
                .push("DATABASE_URL: not a valid PostgreSQL connection string".into());
        }
        let database_listen_url = r.get("DATABASE_LISTEN_URL");
        if database_listen_url
            .as_deref()
            .is_some_and(|u| u.parse::<tokio_postgres::Config>().is_err())
        {
            r.problems
                .push("DATABASE_LISTEN_URL: not a valid PostgreSQL connection string".into());
        }
        let listen_addr: SocketAddr = r.parse(
            "LISTEN_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "a socket address like 127.0.0.1:8080",
        );
        let public_url = r
            .get("PUBLIC_URL")
            .unwrap_or_else(|| format!("http://{listen_addr}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            r.problems.push(format!(
                "PUBLIC_URL: {public_url:?} must start with http:// or https://"
            ));
        }
        let smtp_url = r.get("SMTP_URL");
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            r.problems
                .push("SMTP_URL: must start with smtp:// or smtps://".into());
        }
        let mail_from = r
            .get("MAIL_FROM")
            .unwrap_or_else(|| "no-reply@localhost".into());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            r.problems
                .push(format!("MAIL_FROM: {mail_from:?} is not a mail address"));
        }
        let mail_poll_ms = r.ranged("MAIL_POLL_MS", 1000, 10, 3_600_000);
        let admin = match (
            r.get("ADMIN_USERNAME"),
            r.get("ADMIN_EMAIL"),
            r.get("ADMIN_PASSWORD"),
        ) {
            (None, None, None) => None,
            (Some(username), Some(email), Some(password)) => Some(AdminBootstrap {
                username,
                email,
                password: Secret::new(password),
            }),
            _ => {
                r.problems.push(
                    "ADMIN_USERNAME, ADMIN_EMAIL, ADMIN_PASSWORD: set all three or none".into(),
                );
                None
            }
        };
        let allow_registration = r.parse("ALLOW_REGISTRATION", true, "true or false");
        let tokens = TokenConfig {
            issuer: r.get("JWT_ISSUER").unwrap_or_else(|| public_url.clone()),
            audience: r.get("JWT_AUDIENCE").unwrap_or_else(|| "users-api".into()),
            access_ttl: r.ranged(
                "ACCESS_TOKEN_TTL",
                users_core::token::DEFAULT_ACCESS_TTL,
                10,
                86_400,
            ),
            refresh_ttl: r.ranged("REFRESH_TOKEN_TTL", 30 * 86_400, 60, 365 * 86_400),
        };
        let keys = KeyConfig {
            signing_key_file: r.get("SIGNING_KEY_FILE").map(PathBuf::from),
            verify_keys_file: r.get("VERIFY_KEYS_FILE").map(PathBuf::from),
            mfa_key_file: r.get("MFA_ENCRYPTION_KEY_FILE").map(PathBuf::from),
            data_dir: PathBuf::from(r.get("DATA_DIR").unwrap_or_else(|| ".data".into())),
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = r.ranged("HASH_WORKERS", cores, 1, 1024);
        let hashing = HashConfig {
            m_kib: r.ranged("ARGON2_M_KIB", 19_456, 8, 4 * 1024 * 1024),
            t: r.ranged("ARGON2_T", 2, 1, 100),
            p: r.ranged("ARGON2_P", 1, 1, 64),
            workers,
            queue: r.ranged("HASH_QUEUE", 16 * workers, 1, 1_000_000),
        };
        let database_pool_size = r.ranged("DATABASE_POOL_SIZE", 16, 1, 1000);
        let password_reset_ttl = r.ranged("PASSWORD_RESET_TTL", 1800, 1, 86_400);
        let idempotency_ttl = r.ranged("IDEMPOTENCY_TTL", 86_400, 1, 7 * 86_400);
        let unverified_policy = match r.get("UNVERIFIED_POLICY").as_deref() {
            None | Some("allow") => UnverifiedPolicy::Allow,
            Some("block") => UnverifiedPolicy::Block,
            Some(other) => {
                r.problems.push(format!(
                    "UNVERIFIED_POLICY: {other:?} must be allow or block"
                ));
                UnverifiedPolicy::Allow
            }
        };
        let email = EmailConfig {
            unverified_policy,
            verify_ttl: r.ranged("EMAIL_VERIFY_TTL", 86_400, 60, 30 * 86_400),
            resend_interval: r.ranged("EMAIL_RESEND_INTERVAL", 60, 1, 86_400),
        };
        let request_timeout_ms = r.ranged("REQUEST_TIMEOUT_MS", 8000, 100, 600_000);
        let redis = redis_config(&mut r);
        let quota = |r: &mut Reader<_>, key: &str, default: &str| {
            let raw = r.get(key).unwrap_or_else(|| default.to_owned());
            users_core::ratelimit::Quota::parse(&raw).unwrap_or_else(|e| {
                r.problems.push(format!("{key}: {raw:?} {e}"));
                users_core::ratelimit::Quota {
                    limit: 1,
                    window_ms: 1000,
                }
            })
        };
        let limits = LimitConfig {
            auth_ip: quota(&mut r, "RATE_LIMIT_AUTH_IP", "30/60s"),
            user: quota(&mut r, "RATE_LIMIT_USER", "600/60s"),
            login_failure_window: r.ranged("LOGIN_FAILURE_WINDOW", 900, 1, 86_400),
        };
        let mut trusted = Vec::new();
        for item in r
            .get("TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => trusted.push(net),
                Err(_) => r.problems.push(format!(
                    "TRUSTED_PROXIES: {item:?} is not an IP address or CIDR"
                )),
            }
        }
        let mut required_roles = Vec::new();
        for item in r
            .get("MFA_REQUIRED_ROLES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match users_core::fields::RoleName::parse(item) {
                Ok(name) => required_roles.push(name.as_str().to_owned()),
                Err(_) => r
                    .problems
                    .push(format!("MFA_REQUIRED_ROLES: {item:?} is not a role name")),
            }
        }
        let host = public_url
            .split_once("://")
            .map_or(public_url.as_str(), |(_, rest)| rest);
        let host = host.split(['/', ':']).next().unwrap_or(host).to_owned();
        let issuer = r.get("MFA_ISSUER").unwrap_or(host);
        if issuer.contains(':') || issuer.is_empty() {
            r.problems
                .push("MFA_ISSUER: must be non-empty and hold no ':'".into());
        }
        let mfa = MfaConfig {
            required_roles,
            issuer,
        };
        let edge_secret = r.get("EDGE_SHARED_SECRET");
        if edge_secret.as_ref().is_some_and(|s| s.len() < 16) {
            r.problems
                .push("EDGE_SHARED_SECRET: must be at least 16 characters".into());
        }
        let proxies = ProxyConfig {
            trusted,
            edge_secret: edge_secret.map(Secret::new),
        };
        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(Self {
            database_listen_url: Secret::new(
                database_listen_url
                    .or_else(|| database_url.clone())
                    .unwrap_or_default(),
            ),
            database_url: Secret::new(database_url.unwrap_or_default()),
            database_pool_size,
            listen_addr,
            public_url,
            smtp_url: smtp_url.map(Secret::new),
            mail_from,
            mail_poll_ms,
            admin,
            allow_registration,
            tokens,
            keys,
            hashing,
            password_reset_ttl,
            idempotency_ttl,
            email,
            request_timeout_ms,
            redis,
            limits,
            proxies,
            mfa,
        })
    }
}

/// Whether `url` names a Redis server.
fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// `REDIS_URL` or `REDIS_CLUSTER_URLS` (one at most), `REDIS_PREFIX` and `CACHE_TTL`.
fn redis_config<F: Fn(&str) -> Option<String>>(r: &mut Reader<F>) -> RedisConfig {
    let url = r.get("REDIS_URL");
    if url.as_deref().is_some_and(|u| !is_redis_url(u)) {
        r.problems
            .push("REDIS_URL: must start with redis:// or rediss://".into());
    }
    let cluster_urls = r.get("REDIS_CLUSTER_URLS").map(|raw| {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    match &cluster_urls {
        Some(urls) if urls.is_empty() => r
            .problems
            .push("REDIS_CLUSTER_URLS: name at least one node (redis://host:port)".into()),
        Some(urls) => {
            // By position, never by value: a URL may carry a password.
            for (i, _) in urls.iter().enumerate().filter(|(_, u)| !is_redis_url(u)) {
                r.problems.push(format!(
                    "REDIS_CLUSTER_URLS: node {} must start with redis:// or rediss://",
                    i + 1
                ));
            }
        }
        None => {}
    }
    if url.is_some() && cluster_urls.is_some() {
        r.problems.push(
            "REDIS_URL, REDIS_CLUSTER_URLS: set one or the other (one server or a cluster), not both"
                .into(),
        );
    }
    let prefix = r.get("REDIS_PREFIX").unwrap_or_else(|| "users:".into());
    if prefix.contains(['{', '}']) {
        r.problems.push(
            "REDIS_PREFIX: must not contain { or } (they choose a cluster's hash slot)".into(),
        );
    }
    RedisConfig {
        url: url.map(Secret::new),
        cluster_urls: cluster_urls.map(Secret::new),
        prefix,
        cache_ttl: r.ranged("CACHE_TTL", 300, 1, 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn database_url_alone_is_enough() {
        let c = from(&[("DATABASE_URL", "postgres://u@localhost/db")]).unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.hashing.m_kib, 19_456);
        assert_eq!(c.tokens.access_ttl, 900);
        assert!(c.allow_registration);
        assert_eq!(c.email.unverified_policy, UnverifiedPolicy::Allow);
        assert_eq!(c.email.verify_ttl, 86_400);
        assert_eq!(c.email.resend_interval, 60);
    }

    #[test]
    fn the_unverified_policy_is_allow_or_block() {
        let base = ("DATABASE_URL", "postgres://u@localhost/db");
        let block = from(&[base, ("UNVERIFIED_POLICY", "block")]).unwrap();
        assert_eq!(block.email.unverified_policy, UnverifiedPolicy::Block);
        let err = from(&[base, ("UNVERIFIED_POLICY", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("UNVERIFIED_POLICY"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_once() {
        let err = from(&[
            ("LISTEN_ADDR", "nope"),
            ("ARGON2_T", "0"),
            ("ADMIN_EMAIL", "a@b.c"),
        ])
        .unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        let text = err.to_string();
        for key in ["DATABASE_URL", "LISTEN_ADDR", "ARGON2_T", "ADMIN_USERNAME"] {
            assert!(text.contains(key), "{text}");
        }
    }

    #[test]
    fn redis_is_one_server_or_one_cluster() {
        let base = ("DATABASE_URL", "postgres://u@localhost/db");
        let nodes = "redis://10.0.0.1:6379, rediss://10.0.0.2:6380,";
        let cluster = from(&[base, ("REDIS_CLUSTER_URLS", nodes)]).unwrap();
        let urls = cluster.redis.cluster_urls.expect("the cluster's nodes");
        assert_eq!(
            urls.expose(),
            &["redis://10.0.0.1:6379", "rediss://10.0.0.2:6380"]
        );
        assert!(cluster.redis.url.is_none());

        let both = [
            base,
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_CLUSTER_URLS", nodes),
        ];
        let err = from(&both).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].contains("not both"), "{err}");
    }

    #[test]
    fn cluster_nodes_are_redis_urls_and_reported_by_position() {
        let base = ("DATABASE_URL", "postgres://u@localhost/db");
        let bad = "redis://a:1,http://user:hunter2@b:2";
        let err = from(&[base, ("REDIS_CLUSTER_URLS", bad)]).unwrap_err();
        assert_eq!(
            err.0,
            ["REDIS_CLUSTER_URLS: node 2 must start with redis:// or rediss://"]
        );
        let err = from(&[base, ("REDIS_CLUSTER_URLS", " , ")]).unwrap_err();
        assert!(err.0[0].contains("at least one node"), "{err}");
        let c = from(&[base, ("REDIS_CLUSTER_URLS", "redis://u:hunter2@a:1")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn the_redis_prefix_may_not_choose_a_hash_slot() {
        let base = ("DATABASE_URL", "postgres://u@localhost/db");
        for prefix in ["{users}:", "users}:", "users{"] {
            let err = from(&[base, ("REDIS_PREFIX", prefix)]).unwrap_err();
            assert!(err.0[0].starts_with("REDIS_PREFIX:"), "{prefix}: {err}");
        }
        assert_eq!(from(&[base]).unwrap().redis.prefix, "users:");
    }

    #[test]
    fn secrets_never_print() {
        let c = from(&[("DATABASE_URL", "postgres://u:hunter2@localhost/db")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
