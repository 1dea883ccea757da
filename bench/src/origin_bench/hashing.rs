//! The Argon2id hashing limit: single hashes timed on one thread (into a reused buffer, and
//! through the PHC API the origin calls), `cores` threads hashing at once for
//! [`PARALLEL_WINDOW`], and both timed again after the login runs. Also the seed's one hash.
//!
//! The timing itself is blocking; the async steps run it with `spawn_blocking`, with the origin
//! idle.

use std::time::Instant;

use anyhow::anyhow;
use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};

use super::env::log;
use super::results::Hashing;
use crate::cpu;
use crate::figures::{median, round3};
use crate::seed::SEED_PASSWORD;

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_once(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow!("argon2: {e}"))?
        .to_string())
}

/// Single-thread hash samples per timing.
const HASH_SAMPLES: usize = 9;
/// How long `cores` threads hash at once, each time: seconds, as the login run is, so the rate
/// is one the machine sustains rather than a burst's.
const PARALLEL_WINDOW: std::time::Duration = std::time::Duration::from_secs(3);

/// One Argon2id hash of the seed password into `blocks`.
fn raw_hash(params: &Params, blocks: &mut [argon2::Block]) -> anyhow::Result<()> {
    let mut out = [0_u8; 32];
    argon2(params)
        .hash_password_into_with_memory(
            SEED_PASSWORD.as_bytes(),
            b"bench-salt-16-by",
            &mut out,
            blocks,
        )
        .map_err(|e| anyhow!("argon2: {e}"))
}

/// Times single hashes on this thread into a reused buffer (after one untimed hash that
/// faults the buffer in): wall-time samples in ms, and the CPU time per hash.
fn single_hashes(params: &Params) -> anyhow::Result<(Vec<f64>, Option<f64>)> {
    let mut blocks = vec![argon2::Block::default(); params.block_count()];
    raw_hash(params, &mut blocks)?;
    let mut samples = Vec::with_capacity(HASH_SAMPLES);
    let cpu_before = cpu::thread_ticks();
    for _ in 0..HASH_SAMPLES {
        let t = Instant::now();
        raw_hash(params, &mut blocks)?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let cpu_ms = match (cpu_before, cpu::thread_ticks()) {
        // Clock ticks are 10 ms (USER_HZ = 100).
        (Some(a), Some(b)) => Some(round3((b - a) as f64 * 10.0 / HASH_SAMPLES as f64)),
        _ => None,
    };
    Ok((samples, cpu_ms))
}

impl Hashing {
    /// Adds the samples timed after the login runs; the median and limit then cover both.
    fn with_samples_after(mut self, after: Vec<f64>, parallel_after: f64, cores: usize) -> Self {
        self.single_thread_after_ms = after.into_iter().map(round3).collect();
        self.parallel_after_rps = Some(round3(parallel_after));
        self.parallel_rps = round3((self.parallel_before_rps + parallel_after) / 2.0);
        let all: Vec<f64> = self
            .single_thread_ms
            .iter()
            .chain(&self.single_thread_after_ms)
            .copied()
            .collect();
        self.median_ms = round3(median(&all));
        self.limit_rps = round3(cores as f64 * 1000.0 / self.median_ms);
        self
    }
}

/// Hashes per second of `cores` threads hashing at once into reused buffers for
/// [`PARALLEL_WINDOW`] (counting the hashes each finished by then, over the time until the last
/// one finished).
fn parallel_rate(params: &Params, cores: usize) -> f64 {
    // Each thread faults its buffer in with an untimed hash, as the origin's threads have long
    // done; the clock starts when all are ready.
    let ready = std::sync::Barrier::new(cores + 1);
    let start = std::sync::OnceLock::<Instant>::new();
    let (hashes, took) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    let mut blocks = vec![argon2::Block::default(); params.block_count()];
                    let _ = raw_hash(params, &mut blocks);
                    ready.wait();
                    let deadline = *start.get_or_init(Instant::now) + PARALLEL_WINDOW;
                    let mut n = 0_u32;
                    while Instant::now() < deadline {
                        let _ = raw_hash(params, &mut blocks);
                        n += 1;
                    }
                    (n, Instant::now())
                })
            })
            .collect();
        ready.wait();
        let t0 = *start.get_or_init(Instant::now);
        let done: Vec<(u32, Instant)> = workers.into_iter().filter_map(|w| w.join().ok()).collect();
        let end = done.iter().map(|d| d.1).max().unwrap_or(t0);
        (done.iter().map(|d| f64::from(d.0)).sum::<f64>(), end - t0)
    });
    hashes / took.as_secs_f64().max(1e-9)
}

/// Times single Argon2id hashes on this thread (into a reused buffer, then through the PHC
/// API), then `cores` threads hashing at once.
fn time_hashing(params: &Params, cores: usize) -> anyhow::Result<Hashing> {
    let (samples, cpu_ms) = single_hashes(params)?;
    hash_once(params, SEED_PASSWORD)?;
    let mut phc = Vec::with_capacity(HASH_SAMPLES);
    for _ in 0..HASH_SAMPLES {
        let t = Instant::now();
        hash_once(params, SEED_PASSWORD)?;
        phc.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let parallel_rps = parallel_rate(params, cores);
    let (median_ms, phc_median_ms) = (median(&samples), median(&phc));
    Ok(Hashing {
        m_kib: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
        single_thread_ms: samples.into_iter().map(round3).collect(),
        single_thread_after_ms: Vec::new(),
        median_ms: round3(median_ms),
        cpu_ms_per_hash: cpu_ms,
        limit_rps: round3(cores as f64 * 1000.0 / median_ms),
        phc_single_thread_ms: phc.into_iter().map(round3).collect(),
        phc_median_ms: round3(phc_median_ms),
        phc_limit_rps: round3(cores as f64 * 1000.0 / phc_median_ms),
        parallel_rps: round3(parallel_rps),
        parallel_before_rps: round3(parallel_rps),
        parallel_after_rps: None,
        parallel_window_s: Some(PARALLEL_WINDOW.as_secs_f64()),
        hash_workers: 0,
        hash_queue: 0,
    })
}

/// The seed's hash of [`SEED_PASSWORD`] (a PHC string, as the origin stores it).
pub async fn seed_hash(params: &Params) -> anyhow::Result<String> {
    let params = params.clone();
    tokio::task::spawn_blocking(move || hash_once(&params, SEED_PASSWORD)).await?
}

/// The hashing limit, timed before the login runs; `hash_workers` and `hash_queue` are the
/// origin's settings, recorded alongside.
pub async fn time_before_logins(
    params: &Params,
    cores: usize,
    hash_workers: usize,
    hash_queue: usize,
) -> anyhow::Result<Hashing> {
    log("timing Argon2id hashes");
    let hashing = {
        let params = params.clone();
        tokio::task::spawn_blocking(move || time_hashing(&params, cores)).await??
    };
    let hashing = Hashing {
        hash_workers,
        hash_queue,
        ..hashing
    };
    log(format!(
        "one hash {:.1} ms (median of {}; {:.1} ms through the PHC API); limit {:.1} logins/s on \
         {cores} cores; {:.1} hashes/s measured with {cores} threads",
        hashing.median_ms,
        hashing.single_thread_ms.len(),
        hashing.phc_median_ms,
        hashing.limit_rps,
        hashing.parallel_rps
    ));
    Ok(hashing)
}

/// Single hashes timed again after the login runs: the limit becomes the median of the samples
/// on both sides of them.
pub async fn time_after_logins(
    hashing: Hashing,
    params: &Params,
    cores: usize,
) -> anyhow::Result<Hashing> {
    let (after, parallel_after) = {
        let params = params.clone();
        tokio::task::spawn_blocking(move || {
            single_hashes(&params).map(|(samples, _)| (samples, parallel_rate(&params, cores)))
        })
        .await??
    };
    let hashing = hashing.with_samples_after(after, parallel_after, cores);
    log(format!(
        "one hash {:.1} ms after the login runs (median of {:?}); limit over both sides {:.1} \
         logins/s; {parallel_after:.1} hashes/s with {cores} threads (before: {:.1})",
        median(&hashing.single_thread_after_ms),
        hashing.single_thread_after_ms,
        hashing.limit_rps,
        hashing.parallel_before_rps
    ));
    Ok(hashing)
}
