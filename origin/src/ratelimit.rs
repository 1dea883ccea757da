//! Rate limits (SPEC §4): GCRA quotas per client IP on `/auth/*` and per user on
//! authenticated routes, and growing lock-outs per login identifier after failed logins.
//!
//! The arithmetic is `users_core::ratelimit`. With Redis, each quota check is one atomic script
//! call shared by every replica; without Redis (or while it is unreachable) an in-process map
//! applies the same arithmetic per replica.
//!
//! The two keys of an identifier's lock-out (the failure count and the lock) share one hash tag
//! ([`Redis::tagged_key`]), so the pipeline and the `DEL` over both work on a Redis Cluster too;
//! each quota's key stands alone in its script.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{IntCounter, IntCounterVec};
use users_core::ratelimit::{Decision, Quota, gcra, login_lockout_secs};
use users_core::wire;

use crate::clock::now_ms;
use crate::redis_store::Redis;

/// GCRA in one atomic step; the same arithmetic as `users_core::ratelimit::gcra`, for up to
/// `ARGV[4]` requests at once (a lease, see [`Lease`]).
/// KEYS[1] = TAT key (µs); ARGV = now_us, interval_us, window_us, wanted. Returns
/// {granted, tat_before}: granted 0 is a refusal, and nothing is stored.
const GCRA_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
local n = math.floor((now + window - tat) / interval)
while n > 0 and tat + n * interval - window > now do n = n - 1 end
while tat + (n + 1) * interval - window <= now do n = n + 1 end
n = math.min(n, wanted)
if n < 1 then return {0, tat} end
local ceil_tat = math.ceil(tat + n * interval)
redis.call('SET', KEYS[1], ceil_tat, 'PX', math.max(1, math.ceil((ceil_tat - now) / 1000)))
return {n, tat}
";

/// A quota of `limit` requests may be spent from leases of at most `limit / LEASE_SHARE`
/// requests: quotas under twice that stay exact, one Redis call a request.
const LEASE_SHARE: u32 = 64;
/// The largest lease.
const LEASE_MAX: u32 = 256;
/// How long a lease's requests may be spent; what is left then is not used.
const LEASE_MS: i64 = 1000;

/// The largest lease of `quota`.
fn lease_cap(quota: Quota) -> u32 {
    (quota.limit / LEASE_SHARE).min(LEASE_MAX)
}

/// Requests of one key's quota taken from Redis at once and spent by this replica: a busy
/// user's requests cost one Redis call per lease instead of one each. A lease's size doubles
/// while leases run out before they expire and halves when one expires unspent, so it follows
/// the key's rate on this replica, at most one second of it: the quota is never exceeded
/// (every request spent was counted in Redis first), and a user moving to another replica is
/// refused early by at most what this one still holds for a second.
#[derive(Debug, Clone, Copy)]
struct Lease {
    left: u32,
    size: u32,
    expires_ms: i64,
    /// What the quota had left once the whole lease was taken, and when it was whole again.
    remaining: u32,
    reset_at_ms: i64,
}

/// Largest number of keys of the in-process limiter before expired ones are swept.
const MEMORY_KEYS: usize = 100_000;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    AuthIp,
    User,
    LoginFailures,
    /// An account's budget of wrong second-factor codes (SPEC §8).
    MfaGuesses,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthIp => wire::SCOPE_AUTH_IP,
            Self::User => wire::SCOPE_USER,
            Self::LoginFailures => "login-failures",
            Self::MfaGuesses => "mfa-guesses",
        }
    }
}

/// A refused request: what to tell the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: Scope,
    pub retry_after_secs: i64,
    /// The quota and its decision, when a quota (not a lock-out) refused the request: the
    /// answer then carries its `RateLimit-*` headers.
    pub quota: Option<(Quota, Decision)>,
}

#[derive(Debug, Default)]
struct Memory {
    tats: HashMap<String, i64>,
    failures: HashMap<String, (u32, i64)>,
    locks: HashMap<String, i64>,
}

/// What the login-failure throttle holds for an identifier when a login starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRecord {
    /// Seconds the identifier stays locked, if it is locked.
    pub locked_secs: Option<i64>,
    /// Whether failures are (or may be) counted against it; a success clears them.
    pub failures: bool,
}

/// What a limiter counts.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Refusals by scope (`users_rate_limited_total`).
    pub refused: IntCounterVec,
    /// Failed logins (`users_login_failures_total`).
    pub login_failures: IntCounter,
    /// Failed logins that locked their identifier (`users_login_lockouts_total`).
    pub lockouts: IntCounter,
}

/// The Redis keys of an identifier's login failures: in one hash slot, tagged by the
/// identifier (whatever braces it holds).
struct LoginKeys {
    /// Failed logins within the window (`lf:`).
    failures: String,
    /// Present while the identifier is locked out (`ll:`).
    lock: String,
}

impl LoginKeys {
    fn of(redis: &Redis, identifier: &str) -> Self {
        Self {
            failures: redis.tagged_key(identifier, &format!("lf:{identifier}")),
            lock: redis.tagged_key(identifier, &format!("ll:{identifier}")),
        }
    }
}

/// The limiter.
#[derive(Debug)]
pub struct Limiter {
    redis: Option<Redis>,
    gcra: redis::Script,
    memory: Mutex<Memory>,
    leases: Mutex<HashMap<String, Lease>>,
    /// How long failures are remembered, ms.
    failure_window_ms: i64,
    counters: Counters,
}

impl Limiter {
    /// A limiter over `redis` (or in process), counting into `counters`.
    pub fn new(redis: Option<Redis>, failure_window_secs: i64, counters: Counters) -> Self {
        Self {
            redis,
            gcra: redis::Script::new(GCRA_SCRIPT),
            memory: Mutex::new(Memory::default()),
            leases: Mutex::new(HashMap::new()),
            failure_window_ms: failure_window_secs * 1000,
            counters,
        }
    }

    /// Applies one request of `scope` under `key` to `quota`: the decision when allowed, what
    /// to tell the client (counted) when refused.
    pub async fn limit(&self, scope: Scope, key: &str, quota: Quota) -> Result<Decision, Limited> {
        let decision = self.check(key, quota).await;
        if decision.allowed {
            return Ok(decision);
        }
        Err(self.refuse(Limited {
            scope,
            retry_after_secs: decision.retry_after_secs(),
            quota: Some((quota, decision)),
        }))
    }

    /// The login-failure record of `identifier`, or the lock-out it is under (counted).
    pub async fn login_attempt(&self, identifier: &str) -> Result<LoginRecord, Limited> {
        let record = self.login_record(identifier).await;
        match record.locked_secs {
            None => Ok(record),
            Some(secs) => Err(self.refuse(Limited {
                scope: Scope::LoginFailures,
                retry_after_secs: secs,
                quota: None,
            })),
        }
    }

    fn refuse(&self, limited: Limited) -> Limited {
        self.counters
            .refused
            .with_label_values(&[limited.scope.as_str()])
            .inc();
        limited
    }

    /// Applies one request under `key` to `quota`.
    async fn check(&self, key: &str, quota: Quota) -> Decision {
        let now = now_ms();
        if let Some(redis) = &self.redis {
            let wanted = match self.spend_lease(key, quota, now) {
                Ok(decision) => return decision,
                Err(wanted) => wanted,
            };
            let mut inv = self.gcra.prepare_invoke();
            inv.key(redis.key(&format!("rl:{key}")))
                .arg(now * 1000)
                .arg(quota.emission_interval_ms() * 1000.0)
                .arg(quota.window_ms * 1000)
                .arg(wanted);
            if let Some((granted, tat_before)) = redis.script::<(i64, i64)>(&inv).await {
                return self.leased(key, quota, now, granted, tat_before);
            }
        }
        let Ok(mut mem) = self.memory.lock() else {
            return gcra(None, now, quota);
        };
        if mem.tats.len() >= MEMORY_KEYS {
            mem.tats.retain(|_, tat| *tat > now * 1000);
        }
        let decision = gcra(mem.tats.get(key).copied(), now, quota);
        if decision.allowed {
            mem.tats.insert(key.to_owned(), decision.tat_us);
        }
        decision
    }

    /// Spends one request of `key`'s lease: the decision, or (no lease, or spent, or expired)
    /// how many requests the next lease should hold.
    fn spend_lease(&self, key: &str, quota: Quota, now: i64) -> Result<Decision, u32> {
        let cap = lease_cap(quota);
        if cap < 2 {
            return Err(1);
        }
        let Ok(mut leases) = self.leases.lock() else {
            return Err(1);
        };
        let Some(lease) = leases.get_mut(key) else {
            return Err(1);
        };
        if now < lease.expires_ms && lease.left > 0 {
            lease.left -= 1;
            return Ok(Decision {
                allowed: true,
                tat_us: 0,
                remaining: lease.remaining.saturating_add(lease.left),
                retry_after_ms: 0,
                reset_ms: (lease.reset_at_ms - now).max(0),
            });
        }
        Err(if lease.left == 0 && now < lease.expires_ms {
            (lease.size * 2).min(cap)
        } else {
            (lease.size / 2).max(1)
        })
    }

    /// The decision on a request of `key` whose script call `granted` that many requests
    /// (one now, the rest leased) with the quota's TAT at `tat_before`.
    fn leased(&self, key: &str, quota: Quota, now: i64, granted: i64, tat_before: i64) -> Decision {
        let granted = u32::try_from(granted).unwrap_or(0);
        if granted == 0 {
            let decision = gcra(Some(tat_before), now, quota);
            // The script refused (and stored nothing): so does the answer.
            return Decision {
                allowed: false,
                retry_after_ms: decision.retry_after_ms.max(1),
                ..decision
            };
        }
        // Same inputs, same arithmetic: the headers say what the script stored, the whole
        // lease taken.
        let interval_us = (quota.emission_interval_ms() * 1000.0) as i64;
        let taken = tat_before.max(now * 1000) + i64::from(granted - 1) * interval_us;
        let last = gcra(Some(taken), now, quota);
        if let Ok(mut leases) = self.leases.lock() {
            if leases.len() >= MEMORY_KEYS {
                leases.retain(|_, l| l.expires_ms > now);
            }
            // Only quotas large enough for leases keep one, to grow the next.
            if lease_cap(quota) >= 2 {
                leases.insert(
                    key.to_owned(),
                    Lease {
                        left: granted - 1,
                        size: granted,
                        expires_ms: now + LEASE_MS,
                        remaining: last.remaining,
                        reset_at_ms: now + last.reset_ms,
                    },
                );
            }
        }
        Decision {
            allowed: true,
            remaining: last.remaining.saturating_add(granted - 1),
            ..last
        }
    }

    /// What is recorded against `identifier` before a login attempt: one Redis round trip.
    pub async fn login_record(&self, identifier: &str) -> LoginRecord {
        let now = now_ms();
        if let Some(redis) = &self.redis {
            let keys = LoginKeys::of(redis, identifier);
            let mut pipe = redis::pipe();
            pipe.cmd("PTTL").arg(&keys.lock).exists(&keys.failures);
            if let Some((ttl, failures)) = redis.pipeline::<(i64, bool)>(&pipe).await {
                return LoginRecord {
                    locked_secs: (ttl > 0).then(|| (ttl + 999) / 1000),
                    failures,
                };
            }
            // Unknown: a success must still try to clear whatever Redis holds.
            let mut record = self.memory_record(identifier, now);
            record.failures = true;
            return record;
        }
        self.memory_record(identifier, now)
    }

    fn memory_record(&self, identifier: &str, now: i64) -> LoginRecord {
        let Ok(mem) = self.memory.lock() else {
            return LoginRecord {
                locked_secs: None,
                failures: true,
            };
        };
        LoginRecord {
            locked_secs: mem
                .locks
                .get(identifier)
                .filter(|until| **until > now)
                .map(|until| (until - now + 999) / 1000),
            failures: mem.failures.contains_key(identifier) || mem.locks.contains_key(identifier),
        }
    }

    /// Records a failed login for `identifier` (counted); returns the lock-out it now has, if
    /// any (counted too).
    pub async fn login_failed(&self, identifier: &str) -> Option<i64> {
        self.counters.login_failures.inc();
        let lock = self.count_failure(identifier).await;
        if lock.is_some() {
            self.counters.lockouts.inc();
        }
        lock
    }

    /// Adds a failure to `identifier`'s record; returns the lock-out it now earns, if any.
    async fn count_failure(&self, identifier: &str) -> Option<i64> {
        let now = now_ms();
        if let Some(redis) = &self.redis {
            let keys = LoginKeys::of(redis, identifier);
            let mut pipe = redis::pipe();
            pipe.atomic()
                .incr(&keys.failures, 1)
                .pexpire(&keys.failures, self.failure_window_ms)
                .ignore();
            let counted: Option<(u32,)> = redis.pipeline(&pipe).await;
            if let Some((failures,)) = counted {
                let lock = login_lockout_secs(failures);
                if let Some(secs) = lock {
                    let _: Option<()> = redis
                        .query(redis::cmd("SET").arg(&keys.lock).arg(1).arg("EX").arg(secs))
                        .await;
                }
                return lock;
            }
        }
        let mut mem = self.memory.lock().ok()?;
        let window = self.failure_window_ms;
        let entry = mem
            .failures
            .entry(identifier.to_owned())
            .or_insert((0, now + window));
        if entry.1 < now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        let lock = login_lockout_secs(entry.0);
        if let Some(secs) = lock {
            mem.locks.insert(identifier.to_owned(), now + secs * 1000);
        }
        lock
    }

    /// A successful login clears the identifier's failures, if `record` saw any.
    pub async fn login_succeeded(&self, identifier: &str, record: &LoginRecord) {
        if !record.failures {
            return;
        }
        if let Some(redis) = &self.redis {
            let keys = LoginKeys::of(redis, identifier);
            let _: Option<i64> = redis
                .query(redis::cmd("DEL").arg(&keys.failures).arg(&keys.lock))
                .await;
        }
        if let Ok(mut mem) = self.memory.lock() {
            mem.failures.remove(identifier);
            mem.locks.remove(identifier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: LoginRecord = LoginRecord {
        locked_secs: None,
        failures: false,
    };

    fn limiter() -> Limiter {
        let refused = IntCounterVec::new(prometheus::Opts::new("refused", "refused"), &["scope"])
            .expect("counter");
        let counters = Counters {
            refused,
            login_failures: IntCounter::new("failures", "failures").expect("counter"),
            lockouts: IntCounter::new("lockouts", "lockouts").expect("counter"),
        };
        Limiter::new(None, 900, counters)
    }

    #[tokio::test]
    async fn a_refused_quota_is_counted_and_described() {
        let limiter = limiter();
        let quota = Quota {
            limit: 2,
            window_ms: 60_000,
        };
        for _ in 0..2 {
            assert!(limiter.limit(Scope::User, "u", quota).await.is_ok());
        }
        let limited = limiter.limit(Scope::User, "u", quota).await.unwrap_err();
        assert_eq!(limited.scope, Scope::User);
        assert!(limited.retry_after_secs >= 1);
        assert!(limited.quota.is_some_and(|(q, d)| q == quota && !d.allowed));
        assert!(
            limiter.limit(Scope::User, "other", quota).await.is_ok(),
            "per key"
        );
        assert_eq!(
            limiter.counters.refused.with_label_values(&["user"]).get(),
            1
        );
    }

    #[tokio::test]
    async fn a_locked_identifier_is_refused_with_its_lock_out() {
        let limiter = limiter();
        for _ in 0..5 {
            limiter.login_failed("alice").await;
        }
        let limited = limiter.login_attempt("alice").await.unwrap_err();
        assert_eq!(limited.scope, Scope::LoginFailures);
        assert_eq!(limited.retry_after_secs, 1);
        assert_eq!(limited.quota, None);
        assert!(limiter.login_attempt("bob").await.is_ok());
        assert_eq!(
            limiter
                .counters
                .refused
                .with_label_values(&["login-failures"])
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn a_login_record_shows_failures_and_the_lock_they_earn() {
        let limiter = limiter();
        assert_eq!(limiter.login_record("alice").await, CLEAN);

        assert_eq!(limiter.login_failed("alice").await, None);
        let after_one = limiter.login_record("alice").await;
        assert_eq!(after_one.locked_secs, None);
        assert!(after_one.failures);
        assert_eq!(limiter.login_record("bob").await, CLEAN, "per identifier");

        for _ in 0..3 {
            limiter.login_failed("alice").await;
        }
        assert_eq!(limiter.login_failed("alice").await, Some(1));
        let locked = limiter.login_record("alice").await;
        assert_eq!(locked.locked_secs, Some(1));
        assert!(locked.failures);
    }

    #[tokio::test]
    async fn failed_logins_and_the_lock_outs_they_earn_are_counted() {
        let limiter = limiter();
        for _ in 0..6 {
            limiter.login_failed("alice").await;
        }
        limiter.login_failed("bob").await;
        let counted = (
            limiter.counters.login_failures.get(),
            limiter.counters.lockouts.get(),
        );
        assert_eq!(
            counted,
            (7, 2),
            "(failures, lock-outs): alice's 5th and 6th lock"
        );
    }

    #[tokio::test]
    async fn a_success_clears_the_failures_its_record_saw() {
        let limiter = limiter();
        limiter.login_failed("alice").await;
        let record = limiter.login_record("alice").await;
        limiter.login_succeeded("alice", &record).await;
        assert_eq!(limiter.login_record("alice").await, CLEAN);
    }

    #[tokio::test]
    async fn a_failure_after_a_clean_record_outlives_that_success() {
        // The record is read before the password is checked; a failure that lands meanwhile is
        // a separate attempt and stays counted.
        let limiter = limiter();
        let record = limiter.login_record("alice").await;
        limiter.login_failed("alice").await;
        limiter.login_succeeded("alice", &record).await;
        assert!(limiter.login_record("alice").await.failures);
    }
}
