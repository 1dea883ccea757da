//! What a run measured: the recorder the workers fill (a latency histogram per status code,
//! `0` = transport error, 1 µs … 120 s, 3 significant digits) and the figures a report keeps of
//! it ([`RunStats`], [`Latency`]).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cpu::CpuUse;
use crate::figures::round3;

/// Latencies in microseconds.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

/// The answers of a run so far: a latency histogram per status, counts of each kind of error.
#[derive(Debug, Default, Clone)]
pub(super) struct Recorder {
    by_status: BTreeMap<u16, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub(super) fn record(&mut self, status: u16, latency: Duration, error: Option<String>) {
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

    pub(super) fn merge(&mut self, other: Self) {
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
    pub(super) fn from(rec: &Recorder, expect: u16, elapsed: Duration) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_stats_count_answers_by_status() {
        let mut a = Recorder::default();
        a.record(200, Duration::from_millis(2), None);
        a.record(200, Duration::from_millis(4), None);
        let mut b = Recorder::default();
        b.record(
            503,
            Duration::from_micros(300),
            Some("503 overloaded".into()),
        );
        b.record(0, Duration::from_secs(1), Some("transport: connect".into()));
        a.merge(b);
        let stats = RunStats::from(&a, 200, Duration::from_secs(2));
        assert_eq!((stats.requests, stats.ok, stats.errors), (4, 2, 2));
        assert_eq!((stats.throughput_rps, stats.ok_rps), (2.0, 1.0));
        assert_eq!(stats.status(503).map(|l| l.count), Some(1));
        assert_eq!(
            stats.by_status.keys().collect::<Vec<_>>(),
            ["0", "200", "503"]
        );
        assert_eq!(stats.error_kinds["transport: connect"], 1);
        assert!((stats.status(200).unwrap().max_ms - 4.0).abs() < 0.01);
    }
}
