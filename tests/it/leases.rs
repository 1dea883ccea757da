//! A large per-user quota is spent from leases (SPEC §11: reads that scale out): a busy user's
//! requests cost one Redis script call per lease, not one each, and the quota still holds across
//! replicas. A Redis server of the test's own counts the calls exactly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Api as _, free_port, spawn_app_set};

/// A `redis-server` of this test alone, stopped on drop.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian's redis-server package)");
        let own = Self { child, port };
        let started = Instant::now();
        while own.connection().await.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        own
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        client.get_multiplexed_async_connection().await.ok()
    }

    /// Script calls served so far (`EVALSHA` and `EVAL`).
    async fn script_calls(&self) -> u64 {
        let mut conn = self.connection().await.expect("the test's Redis answers");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quota: leases of up to 10 requests (a 64th of it).
const LIMIT: u32 = 640;

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_users_quota_is_spent_from_leases_and_never_exceeded_across_replicas() {
    let redis = OwnRedis::start().await;
    let quota = format!("{LIMIT}/60s");
    let app = spawn_app_set(&[("REDIS_URL", &redis.url()), ("RATE_LIMIT_USER", &quota)]).await;
    let b = app.spawn_replica().await;
    let user = app.new_user().await;
    let token = app.login(&user.username, &user.password).await.access_token;
    let replicas = [app.endpoint(), b];
    let calls_before = redis.script_calls().await;

    let (mut allowed, mut refused) = (0u32, 0u32);
    let started = Instant::now();
    for i in 0..LIMIT + 60 {
        let reply = replicas[i as usize % 2].bearer(&token).me().await;
        match reply.status {
            200 => allowed += 1,
            429 => {
                reply.assert_problem(429, "rate-limited");
                refused += 1;
            }
            _ => panic!("request {i}: {reply}"),
        }
    }
    // GCRA refills one request every 60 s / LIMIT meanwhile.
    let refilled = (started.elapsed().as_secs_f64() * f64::from(LIMIT) / 60.0).ceil() as u32;
    let calls = redis.script_calls().await - calls_before;

    assert!(
        allowed <= LIMIT + refilled,
        "{allowed} requests allowed of a quota of {LIMIT} (+{refilled} refilled) over two replicas"
    );
    // What each replica still holds of its last lease (< 10) is all a lease can cost.
    assert!(
        allowed >= LIMIT - 20,
        "{allowed} of {LIMIT} allowed: leases wasted more than they hold"
    );
    assert!(
        refused >= 60u32.saturating_sub(refilled),
        "{refused} refused"
    );
    // One call a request without leases; with them, about one a lease of up to 10.
    assert!(
        calls * 3 < u64::from(allowed),
        "{calls} script calls for {allowed} allowed requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_quota_is_exact_with_one_call_a_request() {
    let redis = OwnRedis::start().await;
    let app = spawn_app_set(&[("REDIS_URL", &redis.url()), ("RATE_LIMIT_USER", "40/60s")]).await;
    let b = app.spawn_replica().await;
    let user = app.new_user().await;
    let token = app.login(&user.username, &user.password).await.access_token;
    let replicas = [app.endpoint(), b];
    let calls_before = redis.script_calls().await;
    let mut statuses = Vec::new();
    for i in 0..45 {
        statuses.push(replicas[i % 2].bearer(&token).me().await.status);
    }
    let calls = redis.script_calls().await - calls_before;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        40,
        "exactly the quota, whichever replica: {statuses:?}"
    );
    assert!(statuses[40..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(calls >= 45, "one script call a request: {calls}");
}
