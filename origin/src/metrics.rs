//! Prometheus metrics, one registry per application (no globals: tests run several origins in
//! one process).
//!
//! Requests are counted and timed by route template (never the raw path, so ids do not explode
//! the label set), method and status, by `http::middleware::metrics`. Gauges for the hashing
//! queue and the database pool are set when `/metrics` is scraped (`http::routes::ops`); their
//! bounds once at start (`startup`). Readiness, the Redis fallback and the mail outbox are
//! sampled every second by `monitor`. Security events (failed logins, lock-outs, refresh-token
//! reuse) are counted where they happen. The alerting rules over all of them are
//! `deploy/prometheus/alerts.yml`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use users_core::wire;

/// Every metric the origin exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub hash_queue_depth: IntGauge,
    pub hash_rejections: IntCounter,
    pub db_pool_connections: IntGauge,
    pub db_pool_available: IntGauge,
    pub db_pool_waiters: IntGauge,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub rate_limited: IntCounterVec,
    pub hash_queue_capacity: IntGauge,
    pub db_pool_max_size: IntGauge,
    pub ready: IntGauge,
    pub redis_fallback: IntGauge,
    pub redis_errors: IntCounter,
    pub mail_outbox_messages: IntGauge,
    pub mail_outbox_oldest_age: IntGauge,
    pub login_failures: IntCounter,
    pub login_lockouts: IntCounter,
    pub refresh_reuse: IntCounter,
    pub legacy_hashes: IntGauge,
    /// Logins naming no account, by the format of the stand-in checked (SPEC §10).
    pub unknown_logins: IntCounterVec,
    /// 1 while the replica follows PostgreSQL's change notifications (SPEC §11); 0 while it
    /// checks every request against PostgreSQL instead.
    pub memo_following: IntGauge,
    /// Times the notification connection started listening (and the memory was forgotten).
    pub memo_resyncs: IntCounter,
    /// Write requests after which this replica waited to hear its own changes (one PostgreSQL
    /// round trip each; a login, which changes nothing a replica remembers, is not settled).
    pub memo_settles: IntCounter,
    /// Authorisations and user views by where they came from: `kind` is `principal`
    /// (`from` `memory` or `database`), `token` (`memory`, or `verified`: its signature was
    /// checked) or `view` (`memory`, or `shared`: the Redis cache or PostgreSQL).
    pub memo_reads: IntCounterVec,
    /// The series of `memo_reads`, resolved once (they are counted on every request).
    pub memo: MemoReads,
}

/// The series of `users_memo_reads_total`.
#[derive(Debug, Clone)]
pub struct MemoReads {
    pub principal_memory: IntCounter,
    pub principal_database: IntCounter,
    pub token_memory: IntCounter,
    pub token_verified: IntCounter,
    pub view_memory: IntCounter,
    pub view_shared: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let labels = &["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template and status",
            ),
            labels,
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            labels,
        )?;
        let hash_queue_depth = IntGauge::new(
            "users_hash_queue_depth",
            "Password hashes waiting or running",
        )?;
        let hash_rejections = IntCounter::new(
            "users_hash_rejections_total",
            "Requests refused because the hashing queue was full",
        )?;
        let db_pool_connections =
            IntGauge::new("users_db_pool_connections", "Open database connections")?;
        let db_pool_available =
            IntGauge::new("users_db_pool_available", "Idle database connections")?;
        let db_pool_waiters = IntGauge::new(
            "users_db_pool_waiters",
            "Requests waiting for a database connection",
        )?;
        let cache_hits = IntCounter::new("users_cache_hits_total", "User-view cache hits")?;
        let cache_misses = IntCounter::new("users_cache_misses_total", "User-view cache misses")?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "users_rate_limited_total",
                "Requests refused by a rate limit",
            ),
            &["scope"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(hash_queue_depth.clone()))?;
        registry.register(Box::new(hash_rejections.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(db_pool_available.clone()))?;
        registry.register(Box::new(db_pool_waiters.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(cache_misses.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        let hash_queue_capacity = IntGauge::new(
            "users_hash_queue_capacity",
            "Password hashes taken at once (threads plus queue); beyond it requests get 503",
        )?;
        let db_pool_max_size = IntGauge::new(
            "users_db_pool_max_size",
            "Most database connections the pool opens (DATABASE_POOL_SIZE)",
        )?;
        let ready = IntGauge::new(
            "users_ready",
            "1 when PostgreSQL and, if configured, Redis answered the last readiness probe",
        )?;
        let redis_fallback = IntGauge::new(
            "users_redis_fallback",
            "1 while Redis is configured but not used: unreachable, or cache updates not delivered",
        )?;
        let redis_errors = IntCounter::new(
            "users_redis_errors_total",
            "Redis calls that failed or timed out (each fell back to PostgreSQL or in-process state)",
        )?;
        let mail_outbox_messages = IntGauge::new(
            "users_mail_outbox_messages",
            "Mail waiting in the outbox (sampled while SMTP_URL is set)",
        )?;
        let mail_outbox_oldest_age = IntGauge::new(
            "users_mail_outbox_oldest_age_seconds",
            "Age of the oldest mail waiting in the outbox, 0 when empty",
        )?;
        let login_failures = IntCounter::new(
            "users_login_failures_total",
            "Failed logins: wrong password, unknown or inactive account",
        )?;
        let login_lockouts = IntCounter::new(
            "users_login_lockouts_total",
            "Failed logins that locked their identifier (the 5th failure in the window and later)",
        )?;
        let refresh_reuse = IntCounter::new(
            "users_refresh_reuse_total",
            "Spent refresh tokens presented again; each revoked its whole family",
        )?;
        let legacy_hashes = IntGauge::new(
            "users_password_hashes_legacy",
            "Accounts whose password hash is in another system's format or outdated Argon2 \
             (replaced by the configured Argon2id at their next login); read at each scrape",
        )?;
        registry.register(Box::new(legacy_hashes.clone()))?;
        let unknown_logins = IntCounterVec::new(
            Opts::new(
                "users_login_unknown_total",
                "Logins naming no account, by the hash format of the stand-in they were checked \
                 against (drawn from the stored hashes' shapes, so they cost what an account does)",
            ),
            &["format"],
        )?;
        registry.register(Box::new(unknown_logins.clone()))?;
        registry.register(Box::new(hash_queue_capacity.clone()))?;
        registry.register(Box::new(db_pool_max_size.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(redis_fallback.clone()))?;
        let memo_following = IntGauge::new(
            "users_memo_following",
            "1 while change notifications are followed (reads from memory); 0 while every request is checked against PostgreSQL",
        )?;
        let memo_resyncs = IntCounter::new(
            "users_memo_resyncs_total",
            "Times the change-notification connection started listening and the memory was forgotten",
        )?;
        let memo_settles = IntCounter::new(
            "users_memo_settles_total",
            "Write requests after which the replica waited to hear its own changes before answering",
        )?;
        let memo_reads = IntCounterVec::new(
            Opts::new(
                "users_memo_reads_total",
                "Principals, verified tokens and user views by where they came from",
            ),
            &["kind", "from"],
        )?;
        let memo = MemoReads {
            principal_memory: memo_reads.with_label_values(&["principal", "memory"]),
            principal_database: memo_reads.with_label_values(&["principal", "database"]),
            token_memory: memo_reads.with_label_values(&["token", "memory"]),
            token_verified: memo_reads.with_label_values(&["token", "verified"]),
            view_memory: memo_reads.with_label_values(&["view", "memory"]),
            view_shared: memo_reads.with_label_values(&["view", "shared"]),
        };
        registry.register(Box::new(memo_following.clone()))?;
        registry.register(Box::new(memo_resyncs.clone()))?;
        registry.register(Box::new(memo_settles.clone()))?;
        registry.register(Box::new(memo_reads.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(mail_outbox_messages.clone()))?;
        registry.register(Box::new(mail_outbox_oldest_age.clone()))?;
        registry.register(Box::new(login_failures.clone()))?;
        registry.register(Box::new(login_lockouts.clone()))?;
        registry.register(Box::new(refresh_reuse.clone()))?;
        for scope in [wire::SCOPE_AUTH_IP, wire::SCOPE_USER, "login-failures"] {
            rate_limited.with_label_values(&[scope]);
        }
        Ok(Self {
            registry,
            requests,
            latency,
            hash_queue_depth,
            hash_rejections,
            db_pool_connections,
            db_pool_available,
            db_pool_waiters,
            cache_hits,
            cache_misses,
            rate_limited,
            hash_queue_capacity,
            db_pool_max_size,
            ready,
            redis_fallback,
            redis_errors,
            mail_outbox_messages,
            mail_outbox_oldest_age,
            login_failures,
            login_lockouts,
            refresh_reuse,
            legacy_hashes,
            unknown_logins,
            memo_following,
            memo_resyncs,
            memo_settles,
            memo_reads,
            memo,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
