//! Rate-limit arithmetic shared by both tiers: GCRA (the generic cell rate algorithm) for
//! request quotas, and the growing lock-out of repeated login failures.
//!
//! The state of a GCRA limiter is one number, the theoretical arrival time (TAT) of the next
//! request, so it fits a single key in Redis or a Durable Object. Times are milliseconds
//! passed in by the caller.

use serde::{Deserialize, Serialize};

/// `limit` requests per `window_ms`, allowing the whole `limit` as a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub limit: u32,
    pub window_ms: i64,
}

/// Why a quota string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must look like 20/60s, 300/1m or 1000/1h (requests per window), with a non-zero count")]
pub struct QuotaError;

impl Quota {
    /// Parses `N/W` where `W` is seconds (`60`, `60s`), minutes (`1m`) or hours (`1h`).
    pub fn parse(raw: &str) -> Result<Self, QuotaError> {
        let (n, w) = raw.trim().split_once('/').ok_or(QuotaError)?;
        let limit: u32 = n.trim().parse().map_err(|_| QuotaError)?;
        let w = w.trim();
        let (num, unit_ms) = match w.char_indices().last() {
            Some((i, 's')) => (&w[..i], 1000),
            Some((i, 'm')) => (&w[..i], 60_000),
            Some((i, 'h')) => (&w[..i], 3_600_000),
            _ => (w, 1000),
        };
        let num: i64 = num.parse().map_err(|_| QuotaError)?;
        if limit == 0 || num <= 0 || num > 1_000_000 {
            return Err(QuotaError);
        }
        Ok(Self {
            limit,
            window_ms: num * unit_ms,
        })
    }

    /// Time between two requests at the sustained rate.
    pub fn emission_interval_ms(self) -> f64 {
        self.window_ms as f64 / f64::from(self.limit)
    }

    /// The `w` of `RateLimit-Policy`, in whole seconds.
    pub fn window_secs(self) -> i64 {
        (self.window_ms + 999) / 1000
    }
}

/// The outcome of one request against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The TAT to store (unchanged when refused), in microseconds: whole milliseconds would
    /// round every request up and throttle fast quotas far below their rate.
    pub tat_us: i64,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// When refused: milliseconds until a request would be allowed.
    pub retry_after_ms: i64,
    /// Milliseconds until the quota is whole again.
    pub reset_ms: i64,
}

impl Decision {
    /// `Retry-After` in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> i64 {
        ((self.retry_after_ms + 999) / 1000).max(1)
    }

    /// The `t` of the `RateLimit` header, in whole seconds.
    pub fn reset_secs(&self) -> i64 {
        (self.reset_ms + 999) / 1000
    }
}

fn ceil_ms(us: f64) -> i64 {
    (us / 1000.0).ceil() as i64
}

/// Applies one request at `now_ms` to a limiter whose stored TAT is `tat_us` (none: fresh).
pub fn gcra(tat_us: Option<i64>, now_ms: i64, quota: Quota) -> Decision {
    let now = now_ms.saturating_mul(1000);
    let interval = quota.emission_interval_ms() * 1000.0;
    let window = quota.window_ms as f64 * 1000.0;
    let tat = tat_us.unwrap_or(now).max(now);
    let new_tat = tat as f64 + interval;
    let allow_at = new_tat - window;
    if allow_at > now as f64 {
        return Decision {
            allowed: false,
            tat_us: tat,
            remaining: 0,
            retry_after_ms: ceil_ms(allow_at - now as f64),
            reset_ms: ceil_ms(tat.saturating_sub(now) as f64),
        };
    }
    let used = new_tat - now as f64;
    let remaining = ((window - used) / interval).floor().max(0.0) as u32;
    Decision {
        allowed: true,
        tat_us: new_tat.ceil() as i64,
        remaining,
        retry_after_ms: 0,
        reset_ms: ceil_ms(used),
    }
}

/// Login failures tolerated per identifier before lock-outs start.
pub const LOGIN_FAILURES_FREE: u32 = 5;
/// First lock-out after the free failures, doubled at every further failure.
pub const LOGIN_LOCKOUT_BASE_SECS: i64 = 1;
/// Longest lock-out: 15 minutes (OWASP authentication cheat sheet's usual ceiling).
pub const LOGIN_LOCKOUT_MAX_SECS: i64 = 15 * 60;

/// How long an identifier is locked after its `failures`-th consecutive failure.
pub fn login_lockout_secs(failures: u32) -> Option<i64> {
    let over = failures.checked_sub(LOGIN_FAILURES_FREE)?;
    let secs = LOGIN_LOCKOUT_BASE_SECS.saturating_mul(1_i64 << over.min(20));
    Some(secs.min(LOGIN_LOCKOUT_MAX_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `scripts/fuzz.sh` (target `ratelimit`): a stored TAT far ahead of a clock far
    /// behind overflowed the reset time.
    #[test]
    fn extreme_stored_state_and_clock_do_not_overflow() {
        let quota = Quota::parse("1000000/1s").unwrap();
        for (tat, now) in [
            (i64::MAX, i64::MIN),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MAX),
        ] {
            let d = gcra(Some(tat), now, quota);
            assert!(d.allowed || d.retry_after_secs() >= 1, "{d:?}");
            let _ = d.reset_secs();
        }
    }
    use proptest::prelude::*;

    #[test]
    fn quotas_parse() {
        assert_eq!(
            Quota::parse("20/60"),
            Ok(Quota {
                limit: 20,
                window_ms: 60_000
            })
        );
        assert_eq!(
            Quota::parse("20/60s"),
            Ok(Quota {
                limit: 20,
                window_ms: 60_000
            })
        );
        assert_eq!(
            Quota::parse("300/1m"),
            Ok(Quota {
                limit: 300,
                window_ms: 60_000
            })
        );
        assert_eq!(
            Quota::parse(" 5 / 2h "),
            Ok(Quota {
                limit: 5,
                window_ms: 7_200_000
            })
        );
        for bad in ["", "20", "0/60", "20/0", "x/60", "20/-1", "20/1d"] {
            assert_eq!(Quota::parse(bad), Err(QuotaError), "{bad}");
        }
    }

    #[test]
    fn a_burst_of_limit_is_allowed_then_refused() {
        let q = Quota {
            limit: 3,
            window_ms: 3000,
        };
        let mut tat = None;
        for expected_remaining in [2, 1, 0] {
            let d = gcra(tat, 10_000, q);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = Some(d.tat_us);
        }
        let refused = gcra(tat, 10_000, q);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_ms, 1000);
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(refused.tat_us, tat.unwrap());
        // One emission interval later exactly one more request fits.
        assert!(gcra(tat, 11_000, q).allowed);
    }

    #[test]
    fn fast_quotas_are_not_throttled_by_rounding() {
        // 100 million per minute is far above 10 000 requests in one millisecond.
        let q = Quota {
            limit: 100_000_000,
            window_ms: 60_000,
        };
        let mut tat = None;
        for _ in 0..10_000 {
            let d = gcra(tat, 5_000, q);
            assert!(d.allowed);
            tat = Some(d.tat_us);
        }
    }

    #[test]
    fn lockouts_grow_and_cap() {
        assert_eq!(login_lockout_secs(4), None);
        assert_eq!(login_lockout_secs(5), Some(1));
        assert_eq!(login_lockout_secs(6), Some(2));
        assert_eq!(login_lockout_secs(9), Some(16));
        assert_eq!(login_lockout_secs(40), Some(LOGIN_LOCKOUT_MAX_SECS));
    }

    proptest! {
        #[test]
        fn never_more_than_limit_in_any_window(limit in 1u32..50, window in 1i64..10_000, gaps in prop::collection::vec(0i64..500, 1..200)) {
            let q = Quota { limit, window_ms: window };
            let mut tat = None;
            let mut now = 0;
            let mut allowed_at = Vec::new();
            for g in gaps {
                now += g;
                let d = gcra(tat, now, q);
                if d.allowed {
                    allowed_at.push(now);
                    tat = Some(d.tat_us);
                } else {
                    prop_assert!(d.retry_after_ms > 0);
                }
            }
            // GCRA's guarantee: over any span of time, at most the burst plus what the
            // sustained rate earns during that span.
            let interval = q.emission_interval_ms();
            for i in 0..allowed_at.len() {
                for j in i..allowed_at.len() {
                    let admitted = (j - i + 1) as f64;
                    let earned = f64::from(limit) + (allowed_at[j] - allowed_at[i]) as f64 / interval;
                    prop_assert!(admitted <= earned + 1e-9, "{admitted} admitted, {earned} earned");
                }
            }
        }
    }
}
