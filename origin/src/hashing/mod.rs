//! Argon2id password hashing off the async threads; hashes of other systems' formats
//! ([`crate::legacy_hash`]) are verified here too, and replaced at the first right password.
//!
//! A fixed set of OS threads (one per core by default) takes jobs from a bounded queue. When the
//! queue is full the caller gets [`HashError::Overloaded`] at once (503 + `Retry-After`) instead
//! of unbounded latency. Jobs keep the caller's tracing span.
//!
//! Each thread keeps its Argon2 working memory (`m_kib` KiB) between jobs: allocating and
//! faulting in a fresh 19 MiB for every hash costs about as much as a third of the hash itself
//! (`argon`: the Argon2 computation and its bounds).

mod argon;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};

use argon2::Params;
use argon2::password_hash::PasswordHash;
use tokio::sync::oneshot;

use crate::config::HashConfig;
use crate::legacy_hash;

use self::argon::{hash_with, matches, over_bounds};

type Job = Box<dyn FnOnce() + Send>;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every thread is busy and the queue is full: come back later (`503`).
    #[error("the hashing queue is full")]
    Overloaded,
    /// The pool stopped, a job was lost, or Argon2 refused its input.
    #[error("hashing failed: {0}")]
    Failed(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub ok: bool,
    /// A new hash with the current parameters, when the stored one used others.
    pub rehash: Option<String>,
}

/// What a login for an unknown account is checked against, so that it costs what a login of
/// an account costs: a stored hash of each shape (format and costs) that accounts other than
/// native ones have, weighted by how many have it, and the native dummy for the rest.
#[derive(Debug, Default)]
struct StandIns {
    native: u64,
    foreign: Vec<(u64, String)>,
}

/// The hashing pool.
#[derive(Debug)]
pub struct Hasher {
    tx: SyncSender<Job>,
    params: Params,
    dummy_hash: String,
    stand_ins: RwLock<StandIns>,
    queued: Arc<AtomicUsize>,
    /// Jobs running or waiting at most: threads plus queue.
    capacity: usize,
    rejections: prometheus::IntCounter,
}

impl Hasher {
    /// Starts the pool; `rejections` counts requests refused because the queue was full.
    pub fn new(cfg: &HashConfig, rejections: prometheus::IntCounter) -> anyhow::Result<Self> {
        let params = Params::new(cfg.m_kib, cfg.t, cfg.p, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let (tx, rx) = sync_channel::<Job>(cfg.queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..cfg.workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx))?;
        }
        // Verified against for unknown users, so a failed login costs the same either way.
        let dummy_hash = hash_with(&params, "dummy password for timing equalisation")
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
        Ok(Self {
            tx,
            params,
            dummy_hash,
            stand_ins: RwLock::new(StandIns::default()),
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: cfg.workers + cfg.queue,
            rejections,
        })
    }

    /// Refuses work that would find the queue full anyway, before the caller spends anything
    /// on it (database look-ups). The queue itself stays the authority.
    pub fn admit(&self) -> Result<(), HashError> {
        if self.in_flight() >= self.capacity {
            self.rejections.inc();
            return Err(HashError::Overloaded);
        }
        Ok(())
    }

    /// Jobs waiting or running.
    pub fn in_flight(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Jobs running or waiting at most (threads plus queue); one more is refused.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, HashError> {
        let (done_tx, done_rx) = oneshot::channel();
        let span = tracing::Span::current();
        let queued = Arc::clone(&self.queued);
        let job: Job = Box::new(move || {
            let _entered = span.enter();
            let result = f();
            // Counted out before the caller can observe the result.
            queued.fetch_sub(1, Ordering::Relaxed);
            let _ = done_tx.send(result);
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                self.rejections.inc();
                tracing::warn!("password hashing queue full");
                return Err(HashError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(HashError::Failed("the hashing pool stopped".into()));
            }
        }
        done_rx
            .await
            .map_err(|_| HashError::Failed("a hashing job was dropped".into()))
    }

    /// Hashes `password` with the current parameters into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_with(&params, &password))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// How many accounts have a native hash, and a stored hash of each other shape with how
    /// many accounts have it: what [`Self::verify_unknown`] picks from from now on.
    pub fn set_stand_ins(&self, native: u64, foreign: Vec<(u64, String)>) {
        let mut s = self.stand_ins.write().unwrap_or_else(|p| p.into_inner());
        *s = StandIns { native, foreign };
    }

    /// The hash an unknown login with `pick` is checked against: a shape drawn with the
    /// accounts' weights, the same for the same `pick`.
    fn stand_in(&self, pick: u64) -> String {
        let s = self.stand_ins.read().unwrap_or_else(|p| p.into_inner());
        let total = s.native.max(1) + s.foreign.iter().map(|(w, _)| w).sum::<u64>();
        let mut at = pick % total;
        for (weight, hash) in &s.foreign {
            if at < *weight {
                return hash.clone();
            }
            at -= weight;
        }
        self.dummy_hash.clone()
    }

    /// Checks `password` for a login that names no account, against a stand-in of the shape
    /// `pick` draws (a keyed digest of the login, so a repeat costs the same); always fails.
    /// Also the format it was checked in.
    pub async fn verify_unknown(
        &self,
        password: String,
        pick: u64,
    ) -> Result<(Verification, &'static str), HashError> {
        let stored = self.stand_in(pick);
        let format = legacy_hash::Format::of(&stored).map_or("argon2", legacy_hash::Format::name);
        let verification = self.check(password, stored, false).await?;
        Ok((verification, format))
    }

    /// Checks `password` against `stored`; with no stored hash, checks a dummy and fails.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        match stored {
            Some(stored) => self.check(password, stored, true).await,
            None => self.check(password, self.dummy_hash.clone(), false).await,
        }
    }

    /// Checks `password` against `stored`; fails unless `known` (a stand-in costs the same).
    async fn check(
        &self,
        password: String,
        stored: String,
        known: bool,
    ) -> Result<Verification, HashError> {
        let params = self.params.clone();
        let dummy = self.dummy_hash.clone();
        self.run(move || {
            let failed = Verification {
                ok: false,
                rehash: None,
            };
            // Another system's format (an imported account): checked within its bounds, and
            // replaced by the configured Argon2id at the first right password.
            if !matches!(
                legacy_hash::Format::of(&stored),
                None | Some(legacy_hash::Format::Argon2)
            ) {
                // Computed whether or not the account is known: a stand-in costs the same.
                let matched = legacy_hash::verify(&stored, &password);
                let ok = known && matched;
                let rehash = if ok {
                    hash_with(&params, &password).ok()
                } else {
                    None
                };
                return Verification { ok, rehash };
            }
            let Ok(parsed) = PasswordHash::new(&stored) else {
                // No password (`!`, an account without one): it costs a native check too.
                if let Ok(d) = PasswordHash::new(&dummy) {
                    let _ = matches(&d, &password);
                }
                return failed;
            };
            // An imported Argon2 hash costlier than both the bounds and this server's own
            // parameters is never computed.
            if Params::try_from(&parsed).is_ok_and(|p| over_bounds(&p, &params)) {
                return failed;
            }
            let ok = matches(&parsed, &password) && known;
            let outdated = Params::try_from(&parsed).map_or(true, |p| {
                p.m_cost() != params.m_cost()
                    || p.t_cost() != params.t_cost()
                    || p.p_cost() != params.p_cost()
            }) || parsed.algorithm.as_str() != "argon2id";
            let rehash = if ok && outdated {
                hash_with(&params, &password).ok()
            } else {
                None
            };
            Verification { ok, rehash }
        })
        .await
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    // Hashing yields to the async threads: under overload they must still answer `503` (and
    // everything else) at once, while idle cores keep hashing at full speed.
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "could not lower the hashing threads' priority");
    }
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unknown_login_draws_a_stand_in_by_weight_and_never_succeeds() {
        let h = Hasher::new(&cfg(64, 1, 4), counter()).unwrap();
        let bcrypt = bcrypt::hash("correct horse battery", 4).unwrap();
        // Nothing imported: every unknown login is checked against the native dummy.
        let (v, format) = h.verify_unknown("x".into(), 7).await.unwrap();
        assert_eq!((v.ok, format), (false, "argon2"));
        // One native account for every three bcrypt ones: picks 0–2 of each 4 are bcrypt.
        h.set_stand_ins(1, vec![(3, bcrypt.clone())]);
        let formats: Vec<&str> = [0u64, 1, 2, 3, 4, 7, 8]
            .iter()
            .map(|&pick| {
                legacy_hash::Format::of(&h.stand_in(pick)).map_or("?", legacy_hash::Format::name)
            })
            .collect();
        assert_eq!(
            formats,
            [
                "bcrypt", "bcrypt", "bcrypt", "argon2", "bcrypt", "argon2", "bcrypt"
            ]
        );
        // The stand-in's own password is still refused: it belongs to no login.
        let (v, format) = h
            .verify_unknown("correct horse battery".into(), 0)
            .await
            .unwrap();
        assert_eq!(
            (v, format),
            (
                Verification {
                    ok: false,
                    rehash: None
                },
                "bcrypt"
            )
        );
        // An account without a password (`!`) fails like any other wrong password.
        assert!(!h.verify("x".into(), Some("!".into())).await.unwrap().ok);
    }

    fn counter() -> prometheus::IntCounter {
        prometheus::IntCounter::new("rejections", "test").unwrap()
    }

    fn cfg(m_kib: u32, workers: usize, queue: usize) -> HashConfig {
        HashConfig {
            m_kib,
            t: 1,
            p: 1,
            workers,
            queue,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_outdated_ones_are_rehashed() {
        let old = Hasher::new(&cfg(64, 1, 4), counter()).unwrap();
        let hash = old.hash("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let same = old
            .verify("correct horse battery".into(), Some(hash.clone()))
            .await
            .unwrap();
        assert_eq!(
            same,
            Verification {
                ok: true,
                rehash: None
            }
        );
        assert!(
            !old.verify("wrong".into(), Some(hash.clone()))
                .await
                .unwrap()
                .ok
        );

        let new = Hasher::new(&cfg(128, 1, 4), counter()).unwrap();
        let v = new
            .verify("correct horse battery".into(), Some(hash))
            .await
            .unwrap();
        assert!(v.ok);
        assert!(
            v.rehash
                .unwrap()
                .starts_with("$argon2id$v=19$m=128,t=1,p=1$")
        );
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let h = Hasher::new(&cfg(64, 1, 4), counter()).unwrap();
        let v = h
            .verify("dummy password for timing equalisation".into(), None)
            .await
            .unwrap();
        assert!(!v.ok);
    }

    #[test]
    fn admission_is_refused_while_threads_and_queue_are_full() {
        let h = Hasher::new(&cfg(64, 1, 1), counter()).unwrap();
        assert!(h.admit().is_ok());
        // One job running and one waiting: as full as one thread and a queue of one get.
        h.queued.fetch_add(2, Ordering::Relaxed);
        assert!(matches!(h.admit(), Err(HashError::Overloaded)));
        assert_eq!(h.rejections.get(), 1);
        h.queued.fetch_sub(1, Ordering::Relaxed);
        assert!(h.admit().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once() {
        let h = Arc::new(Hasher::new(&cfg(32 * 1024, 1, 1), counter()).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let h = Arc::clone(&h);
                tokio::spawn(async move { h.hash("some long password here".into()).await })
            })
            .collect();
        let mut overloaded = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), Err(HashError::Overloaded)) {
                overloaded += 1;
            }
        }
        assert!(
            overloaded >= 1,
            "one worker and a queue of one cannot take eight jobs at once"
        );
        assert!(overloaded <= 7, "the first job is always accepted");
        assert_eq!(h.in_flight(), 0);
    }
}
