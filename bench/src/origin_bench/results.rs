//! What a run of the origin benchmark records: the figures of each scenario, the hashing limit,
//! the overload run and the targets checked, as written to `bench/results.json` (and read back
//! by `--render`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::load::RunStats;
use crate::seed::SeedReport;

/// One scenario's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    pub request: String,
    pub saturation: RunStats,
    pub half_rate: RunStats,
    pub extra: Value,
}

/// The Argon2 hashing limit measured in this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hashing {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    /// One Argon2id hash on one thread into a reused memory buffer
    /// (`hash_password_into_with_memory`): the algorithm's own cost. Samples in ms.
    pub single_thread_ms: Vec<f64>,
    /// The same, timed again right after the login runs: the machine's speed drifts on shared
    /// hosts, so the limit is taken from the samples on both sides of the login measurement.
    #[serde(default)]
    pub single_thread_after_ms: Vec<f64>,
    /// Median of `single_thread_ms` and `single_thread_after_ms` together.
    pub median_ms: f64,
    /// CPU time per hash of those samples, from `/proc` (10 ms ticks over all samples); above
    /// the wall time never, below it when other processes took the core meanwhile.
    pub cpu_ms_per_hash: Option<f64>,
    /// `cores ÷ median`: logins per second if every core did nothing but hash.
    pub limit_rps: f64,
    /// One hash through the PHC API the origin calls (`PasswordHasher::hash_password`), which
    /// allocates and fills the 19 MiB of blocks on every call. Samples in ms.
    pub phc_single_thread_ms: Vec<f64>,
    pub phc_median_ms: f64,
    /// `cores ÷ phc_median`.
    pub phc_limit_rps: f64,
    /// Hashes per second with one thread per core hashing at once into reused buffers
    /// (caches and memory bandwidth shared; buffers faulted in before the clock starts): the
    /// mean of the rates timed before and after the login runs, each over
    /// `parallel_window_s` (only before them, in 8 hashes per thread, in older results).
    pub parallel_rps: f64,
    /// That rate before the login runs.
    #[serde(default)]
    pub parallel_before_rps: f64,
    /// That rate after the login runs.
    #[serde(default)]
    pub parallel_after_rps: Option<f64>,
    /// How long the threads hashed at once, each time, in seconds.
    #[serde(default)]
    pub parallel_window_s: Option<f64>,
    pub hash_workers: usize,
    pub hash_queue: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overload {
    pub rate_rps: f64,
    pub stats: RunStats,
    pub share_503: f64,
    pub p50_503_ms: Option<f64>,
    pub p99_503_ms: Option<f64>,
    /// Requests refused because the hashing queue was full (origin counter).
    pub hash_rejections: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    pub date: String,
    pub git_commit: String,
    pub command: String,
    pub build: String,
    pub machine: Value,
    pub params: Value,
    pub seed: SeedReport,
    pub scenarios: Vec<Scenario>,
    pub hashing: Hashing,
    pub overload: Overload,
    pub targets: Vec<TargetCheck>,
    pub total_s: f64,
}
