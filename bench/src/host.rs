//! The machine and the checkout a run happens on: its cores and the tokio runtimes a benchmark
//! runs on them, how a run ends (it finishes, panics, or is interrupted with Ctrl-C: then the run
//! is dropped, which stops what it started, and the caller removes what the run created); and,
//! as the reports describe them, the clock, the commit, the CPU model, the memory and the kernel
//! (from `/proc`: absent elsewhere than Linux).

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::runtime::{Builder, Runtime};

/// The machine's cores (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A multi-threaded runtime with `threads` workers named `name` (the CPU accounting groups
/// threads by name, see [`crate::cpu`]).
pub fn multi_thread(name: &str, threads: usize) -> std::io::Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
}

/// Runs `run` on its own task until it ends or Ctrl-C arrives; a panic becomes an error.
pub async fn until_interrupted<T: Send + 'static>(
    run: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    let mut task = tokio::spawn(run);
    tokio::select! {
        joined = &mut task => {
            joined.unwrap_or_else(|e| Err(anyhow::anyhow!("the bench panicked: {e}")))
        }
        _ = tokio::signal::ctrl_c() => {
            task.abort();
            Err(anyhow::anyhow!("interrupted"))
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Now, in RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The trimmed output of a successful `git` command in the current directory.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// `HEAD`'s commit.
pub fn git_head() -> Option<String> {
    git(&["rev-parse", "HEAD"])
}

/// `HEAD`'s commit, with `-dirty` when the work tree has changes; `unknown` outside a checkout.
pub fn git_commit() -> String {
    let Some(head) = git_head() else {
        return "unknown".into();
    };
    let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `MemTotal` in MiB.
pub fn mem_total_mb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// The kernel release (empty if unknown).
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}
