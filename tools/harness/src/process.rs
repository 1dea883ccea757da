//! Child processes in a process group of their own (the edge runtimes: `wrangler dev`, the
//! Spin test host), stopped as a group: `SIGTERM` to the group, a grace period while any live
//! member remains, then `SIGKILL` to whatever is left, and the leader reaped.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running process that leads its own process group (spawned with `process_group(0)`);
/// [`Self::stop`] stops the whole group.
#[derive(Debug)]
pub struct ProcessGroup {
    child: Child,
}

impl ProcessGroup {
    /// Takes over `child`, which must lead its process group (`Command::process_group(0)`).
    pub fn new(child: Child) -> Self {
        Self { child }
    }

    /// The leader's pid, which is the group's id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The leader's exit status if it has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// `SIGTERM` to the group; after up to `grace` while a member lives, `SIGKILL`; then
    /// reaps the leader.
    pub fn stop(&mut self, grace: Duration) {
        let pgid = self.child.id();
        // The leader is not reaped before the group is gone, so `pgid` cannot be reused.
        signal_group(pgid, "TERM");
        let deadline = Instant::now() + grace;
        while group_alive(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if group_alive(pgid) {
            signal_group(pgid, "KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether any live (not zombie) process is in process group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
        pgrp == Some(pgid) && state != "Z" && state != "X"
    })
}

/// Sends `signal` (`TERM`, `KILL`) to every process of group `pgid`.
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn stopping_ends_every_process_of_the_group() {
        let child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let mut group = ProcessGroup::new(child);
        let pgid = group.id();
        std::thread::sleep(Duration::from_millis(200));
        assert!(group_alive(pgid));
        group.stop(Duration::from_secs(5));
        assert!(!group_alive(pgid));
    }
}
