//! The HTTP load generator: closed-loop saturation and open-loop fixed rate.
//!
//! Latencies go into HDR histograms (1 µs … 120 s, 3 significant digits), one per status code
//! (`0` = transport error). In the open loop each request has a scheduled send time and its
//! latency is measured from that time (or from the actual send, if it left early), so a slow
//! server cannot slow the arrival of requests and hide its own queueing (no coordinated
//! omission).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::cpu::CpuUse;
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

/// Latencies in microseconds.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Default)]
struct Recorder {
    by_status: BTreeMap<u16, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    fn record(&mut self, status: u16, latency: Duration, error: Option<String>) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.by_status
            .entry(status)
            .or_insert_with(histogram)
            .saturating_record(us);
        if let Some(e) = error {
            *self.errors.entry(e).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Self) {
        for (status, h) in other.by_status {
            let mine = self.by_status.entry(status).or_insert_with(histogram);
            let _ = mine.add(h);
        }
        for (e, n) in other.errors {
            *self.errors.entry(e).or_default() += n;
        }
    }

    fn all(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in self.by_status.values() {
            let _ = all.add(h);
        }
        all
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: round3(h.mean() / 1000.0),
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStats {
    /// `closed` (saturation) or `open` (fixed rate).
    pub mode: String,
    pub concurrency: Option<usize>,
    pub target_rps: Option<f64>,
    /// Requests dispatched per second (open loop).
    pub sent_rps: Option<f64>,
    /// Largest delay of a send behind its schedule, ms (open loop; counted in the latencies).
    pub max_send_lag_ms: Option<f64>,
    /// From the first send to the last answer.
    pub elapsed_s: f64,
    pub requests: u64,
    /// Answers with the expected status.
    pub ok: u64,
    pub errors: u64,
    /// Answers per second.
    pub throughput_rps: f64,
    pub ok_rps: f64,
    /// Every answer.
    pub latency: Latency,
    /// Per status code (`0` = transport error).
    pub by_status: BTreeMap<String, Latency>,
    /// Counts of each kind of unexpected answer: `"<status> <problem type>"` or transport.
    pub error_kinds: BTreeMap<String, u64>,
    /// CPU used during the run, in cores.
    pub cpu: Option<CpuUse>,
}

impl RunStats {
    fn from(rec: &Recorder, expect: u16, elapsed: Duration) -> Self {
        let all = rec.all();
        let requests = all.len();
        let ok = rec.by_status.get(&expect).map_or(0, Histogram::len);
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            mode: "closed".to_owned(),
            concurrency: None,
            target_rps: None,
            sent_rps: None,
            max_send_lag_ms: None,
            elapsed_s: round3(secs),
            requests,
            ok,
            errors: requests - ok,
            throughput_rps: round3(requests as f64 / secs),
            ok_rps: round3(ok as f64 / secs),
            latency: Latency::of(&all),
            by_status: rec
                .by_status
                .iter()
                .map(|(s, h)| (s.to_string(), Latency::of(h)))
                .collect(),
            error_kinds: rec.errors.clone(),
            cpu: None,
        }
    }

    /// Latency of the answers with `status`, if any.
    pub fn status(&self, status: u16) -> Option<&Latency> {
        self.by_status.get(&status.to_string())
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

/// Sends `rate` requests per second for `duration` on a fixed schedule, whatever the answers.
pub async fn open(target: &Target, rate: f64, duration: Duration) -> RunStats {
    let rate = rate.max(0.1);
    let n = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let start = Instant::now() + Duration::from_millis(5);
    let mut set: JoinSet<Instant> = JoinSet::new();
    let mut max_lag = Duration::ZERO;
    let mut end = start;
    let mut i = 0;
    while i < n {
        let now = Instant::now();
        while i < n {
            let scheduled = start + Duration::from_secs_f64(i as f64 / rate);
            if scheduled > now + LOOKAHEAD {
                break;
            }
            max_lag = max_lag.max(now.saturating_duration_since(scheduled));
            let origin = scheduled.max(now);
            let target = target.clone();
            let rec = Arc::clone(&rec);
            set.spawn(async move {
                let (status, error) = target.send().await;
                let done = Instant::now();
                if let Ok(mut r) = rec.lock() {
                    r.record(status, done - origin, error);
                }
                done
            });
            i += 1;
        }
        while let Some(joined) = set.try_join_next() {
            if let Ok(done) = joined {
                end = end.max(done);
            }
        }
        if i < n {
            let next = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until((next - LOOKAHEAD).into()).await;
        }
    }
    let dispatched = Instant::now();
    while let Some(joined) = set.join_next().await {
        if let Ok(done) = joined {
            end = end.max(done);
        }
    }
    let rec = match Arc::try_unwrap(rec) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => {
            let mut copy = Recorder::default();
            if let Ok(r) = shared.lock() {
                copy.merge(Recorder {
                    by_status: r.by_status.clone(),
                    errors: r.errors.clone(),
                });
            }
            copy
        }
    };
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
    stats.max_send_lag_ms = Some(round3(max_lag.as_secs_f64() * 1000.0));
    stats
}
