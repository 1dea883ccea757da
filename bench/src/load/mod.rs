//! The HTTP load generator: closed-loop saturation and open-loop fixed rate.
//!
//! Latencies go into HDR histograms (1 µs … 120 s, 3 significant digits), one per status code
//! (`0` = transport error). In the open loop each request has a scheduled send time and its
//! latency is measured from that time (or from the actual send, if it left early), so a slow
//! server cannot slow the arrival of requests and hide its own queueing (no coordinated
//! omission).
//!
//! [`Target`] says what to send; [`closed`] and [`open`] drive it; `stats` keeps what came back
//! and turns it into [`RunStats`].

mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinSet;

use self::stats::Recorder;
pub use self::stats::{Latency, RunStats};
use crate::figures::round3;

/// Builds the request with sequence number `k` of a target.
pub type MakeRequest = Arc<dyn Fn(u64) -> reqwest::RequestBuilder + Send + Sync>;

/// What to send and what answer counts as success.
#[derive(Clone)]
pub struct Target {
    pub make: MakeRequest,
    pub expect: u16,
    /// Next sequence number; shared by every run of the target so ids never repeat.
    pub seq: Arc<AtomicU64>,
}

impl Target {
    pub fn new(
        expect: u16,
        make: impl Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
    ) -> Self {
        Self {
            make: Arc::new(make),
            expect,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sends one request; returns its status (`0` on a transport error) and, for errors, the
    /// problem `type` (or the transport failure).
    async fn send(&self) -> (u16, Option<String>) {
        let k = self.seq.fetch_add(1, Ordering::Relaxed);
        match (self.make)(k).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(body) if status >= 400 => {
                        let kind = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["type"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| "(no problem type)".to_owned());
                        (status, Some(format!("{status} {kind}")))
                    }
                    Ok(_) => (status, None),
                    Err(e) => (0, Some(format!("transport: body: {}", kind_of(&e)))),
                }
            }
            Err(e) => (0, Some(format!("transport: {}", kind_of(&e)))),
        }
    }

    /// Sends one request and fails unless it gets the expected status: a check before a run.
    pub async fn probe(&self, what: &str) -> anyhow::Result<()> {
        let k = self.seq.fetch_add(1, Ordering::Relaxed);
        let resp = (self.make)(k).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != self.expect {
            bail!("{what}: expected {}, got {status}: {text}", self.expect);
        }
        Ok(())
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("expect", &self.expect)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

fn kind_of(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// `concurrency` workers each send a request, wait for the answer, and send the next, until
/// `duration` has passed.
pub async fn closed(target: &Target, concurrency: usize, duration: Duration) -> RunStats {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let target = target.clone();
        set.spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let (status, error) = target.send().await;
                rec.record(status, t0.elapsed(), error);
            }
            (rec, Instant::now())
        });
    }
    let mut rec = Recorder::default();
    let mut end = start;
    while let Some(joined) = set.join_next().await {
        if let Ok((r, done)) = joined {
            rec.merge(r);
            end = end.max(done);
        }
    }
    let mut stats = RunStats::from(&rec, target.expect, end - start);
    stats.concurrency = Some(concurrency);
    stats
}

/// How early a request may leave before its scheduled time. Tokio's timer has a 1 ms
/// granularity; sending up to this much early (and measuring from the actual send) keeps the
/// timer's lateness out of the latencies without spinning.
const LOOKAHEAD: Duration = Duration::from_millis(1);

/// Sends `rate` requests per second for `duration` on a fixed schedule, whatever the answers,
/// from at most `connections` requests in flight (as wrk2 does): each of that many workers takes
/// the next scheduled request, sends it at its time (or at once, when it is already late), and
/// records its latency from the scheduled time. A slow answer therefore still counts the wait of
/// every request scheduled behind it (no coordinated omission), while the client never opens
/// more than `connections` connections: a stall cannot snowball into a storm of new
/// connections that measures the client rather than the server.
pub async fn open(target: &Target, rate: f64, duration: Duration, connections: usize) -> RunStats {
    let rate = rate.max(0.1);
    let n = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(5);
    let next = Arc::new(AtomicU64::new(0));
    let max_lag_us = Arc::new(AtomicU64::new(0));
    let last_sent = Arc::new(Mutex::new(start));
    let mut set = JoinSet::new();
    for _ in 0..connections.max(1) {
        let (target, next) = (target.clone(), Arc::clone(&next));
        let (max_lag_us, last_sent) = (Arc::clone(&max_lag_us), Arc::clone(&last_sent));
        set.spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
                if scheduled > Instant::now() + LOOKAHEAD {
                    tokio::time::sleep_until((scheduled - LOOKAHEAD).into()).await;
                }
                let now = Instant::now();
                let lag = now.saturating_duration_since(scheduled);
                max_lag_us.fetch_max(
                    u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                if i + 1 == n
                    && let Ok(mut t) = last_sent.lock()
                {
                    *t = now;
                }
                let origin = scheduled.max(now);
                let (status, error) = target.send().await;
                rec.record(status, origin.elapsed(), error);
            }
            (rec, Instant::now())
        });
    }
    let mut rec = Recorder::default();
    let mut end = start;
    while let Some(joined) = set.join_next().await {
        if let Ok((r, done)) = joined {
            rec.merge(r);
            end = end.max(done);
        }
    }
    let dispatched = last_sent.lock().map(|t| *t).unwrap_or(end);
    let mut stats = RunStats::from(&rec, target.expect, end.saturating_duration_since(start));
    stats.mode = "open".to_owned();
    stats.target_rps = Some(round3(rate));
    stats.sent_rps = Some(round3(
        n as f64
            / dispatched
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9),
    ));
    stats.max_send_lag_ms = Some(round3(max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0));
    stats.concurrency = Some(connections);
    stats
}
