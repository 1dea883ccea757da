//! Where the CPU went during a run, from `/proc`: the origin's async threads, its Argon2
//! threads, the load generator, PostgreSQL backends of the bench database, Redis, and
//! everything else on the machine ("foreign": other work that competed with the bench).
//! Linux only; elsewhere the figures are absent.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::figures::round3;

/// CPU use over a run, in cores (2.0 = two cores busy for the whole run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CpuUse {
    pub machine_busy: f64,
    pub origin_async: f64,
    pub origin_argon2: f64,
    pub loadgen: f64,
    pub bench_other_threads: f64,
    pub postgres: f64,
    pub redis: f64,
    pub foreign: f64,
}

/// Counters at one instant (clock ticks).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    total: u64,
    idle: u64,
    process: u64,
    threads: HashMap<&'static str, u64>,
    postgres: HashMap<u32, u64>,
    redis: HashMap<u32, u64>,
}

fn ticks_of(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn group(comm: &str) -> &'static str {
    if comm.starts_with("argon2-") {
        "argon2"
    } else if comm.starts_with("origin") {
        "origin"
    } else if comm.starts_with("loadgen") {
        "loadgen"
    } else {
        "other"
    }
}

/// Reads the counters; `db` names the bench database, whose backends are counted as PostgreSQL.
pub fn snapshot(db: &str) -> Option<Snapshot> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if cpu.len() < 5 {
        return None;
    }
    let mut snap = Snapshot {
        total: cpu.iter().sum(),
        idle: cpu[3] + cpu[4],
        process: ticks_of(&std::fs::read_to_string("/proc/self/stat").ok()?)?.1,
        ..Snapshot::default()
    };
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if let Some((comm, t)) = std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|s| ticks_of(&s))
            {
                *snap.threads.entry(group(&comm)).or_default() += t;
            }
        }
    }
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Some((comm, t)) = std::fs::read_to_string(p.path().join("stat"))
                .ok()
                .and_then(|s| ticks_of(&s))
            else {
                continue;
            };
            if comm == "postgres" {
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(db) {
                    snap.postgres.insert(pid, t);
                }
            } else if comm.starts_with("redis-server") {
                snap.redis.insert(pid, t);
            }
        }
    }
    Some(snap)
}

fn delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// The CPU used between two snapshots, in cores.
pub fn between(before: &Snapshot, after: &Snapshot, cores: usize) -> Option<CpuUse> {
    let total = after.total.checked_sub(before.total)?;
    if total == 0 {
        return None;
    }
    let cores_of = |ticks: u64| round3(ticks as f64 / total as f64 * cores as f64);
    let thread = |g: &str| {
        after
            .threads
            .get(g)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.threads.get(g).copied().unwrap_or(0))
    };
    let busy = total.saturating_sub(after.idle.saturating_sub(before.idle));
    let process = after.process.saturating_sub(before.process);
    let (origin, argon2, loadgen) = (thread("origin"), thread("argon2"), thread("loadgen"));
    let postgres = delta(&before.postgres, &after.postgres);
    let redis = delta(&before.redis, &after.redis);
    Some(CpuUse {
        machine_busy: cores_of(busy),
        origin_async: cores_of(origin),
        origin_argon2: cores_of(argon2),
        loadgen: cores_of(loadgen),
        bench_other_threads: cores_of(process.saturating_sub(origin + argon2 + loadgen)),
        postgres: cores_of(postgres),
        redis: cores_of(redis),
        foreign: cores_of(busy.saturating_sub(process + postgres + redis)),
    })
}

/// CPU ticks (user + system) of the calling thread.
pub fn thread_ticks() -> Option<u64> {
    ticks_of(&std::fs::read_to_string("/proc/thread-self/stat").ok()?).map(|(_, t)| t)
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let raw = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = raw.split_whitespace().filter_map(|v| v.parse().ok());
    Some([it.next()?, it.next()?, it.next()?])
}
