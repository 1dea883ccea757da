//! The Cloudflare Worker under `wrangler dev` (workerd, local Durable Objects and Cache API).
//!
//! Each edge gets a temporary directory holding a copy of the committed `wrangler.toml`
//! without its `[build]` section and with `main` pointing at the absolute
//! `build/worker/shim.mjs`, the Durable Objects' state (`--persist-to`) and wrangler's logs.
//! Wrangler runs in a process group of its own under a small `sh` watchdog that stops the group
//! if the test process disappears (a test killed on timeout leaves nothing behind); dropping
//! the handle stops the group (`users-harness`'s `ProcessGroup`: `SIGTERM`, then `SIGKILL` to
//! whatever is left) and removes the directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use users_harness::process::ProcessGroup;
use uuid::Uuid;

use super::scenarios::edge_scenarios;
use super::{EdgeHandle, EdgeRuntime, RunningEdge, repo_root};
use crate::helpers::{Api as _, Endpoint, free_port};

/// How long `wrangler dev` may take to answer its first health check.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the group has to exit after `SIGTERM` before it gets `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the command after `$1` (the test process's pid) and `$2` (the edge's directory); if the
/// test process disappears first, stops the whole process group and removes the directory.
/// The shell ignores `SIGTERM` itself (set after the command started, so the command does not
/// inherit it) to outlive the command and clean up.
const WATCHDOG: &str = r#"parent=$1; dir=$2; shift 2
"$@" &
child=$!
trap '' TERM
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
if kill -0 "$child" 2>/dev/null; then kill -TERM "-$$"; fi
wait "$child"
status=$?
kill -0 "$parent" 2>/dev/null || rm -rf "$dir"
exit $status"#;

/// `wrangler dev` with the built worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrangler;

edge_scenarios!(Wrangler);

/// The committed `wrangler.toml` without `[build]` (the worker is built already) and with
/// `main` set to `shim`.
fn dev_config(committed: &str, shim: &Path) -> String {
    let mut out = String::new();
    let mut in_build = false;
    let mut main_set = false;
    for line in committed.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]";
        }
        if in_build {
            continue;
        }
        if !main_set && (trimmed.starts_with("main ") || trimmed.starts_with("main=")) {
            out.push_str(&format!("main = {:?}\n", shim.display().to_string()));
            main_set = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(main_set, "wrangler.toml has no `main = …` line");
    out
}

/// The last `lines` lines of `path`.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running `wrangler dev` (the watchdog shell leads its process group).
struct WranglerProcess {
    group: ProcessGroup,
    dir: PathBuf,
    log: PathBuf,
}

impl RunningEdge for WranglerProcess {
    fn logs(&self) -> String {
        tail(&self.log, 200)
    }
}

impl Drop for WranglerProcess {
    fn drop(&mut self) {
        self.group.stop(STOP_GRACE);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why one attempt to start wrangler failed.
enum StartError {
    /// A port was taken between choosing it and binding it: try other ports.
    PortTaken(String),
    Failed(String),
}

impl Wrangler {
    async fn attempt(
        &self,
        root: &Path,
        origin: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<(WranglerProcess, String, Duration), StartError> {
        let dir = std::env::temp_dir().join(format!("users-edge-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the wrangler directory");
        let committed =
            std::fs::read_to_string(root.join("wrangler.toml")).expect("read wrangler.toml");
        let config = dir.join("wrangler.toml");
        std::fs::write(
            &config,
            dev_config(&committed, &root.join("build/worker/shim.mjs")),
        )
        .expect("write the dev wrangler.toml");
        let log = dir.join("wrangler.log");
        let out = File::create(&log).expect("create the wrangler log");
        let err = out.try_clone().expect("clone the log handle");
        let port = free_port();
        let inspector = free_port();

        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&dir)
            .arg(root.join("node_modules/.bin/wrangler"))
            .arg("dev")
            .arg("-c")
            .arg(&config)
            .args(["--ip", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .args(["--var", &format!("ORIGIN_URL:{origin}")]);
        for (name, value) in vars {
            cmd.args(["--var", &format!("{name}:{value}")]);
        }
        cmd.current_dir(&dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("CI", "true")
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .env("WRANGLER_LOG_PATH", dir.join("logs"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Failed(format!("spawn sh: {e}")))?;
        let mut process = WranglerProcess {
            group: ProcessGroup::new(child),
            dir,
            log,
        };
        let address = format!("http://127.0.0.1:{port}");
        let ready_line = format!("Ready on {address}");
        let health = Endpoint::with_timeout(&address, Duration::from_secs(5));
        loop {
            if let Ok(Some(status)) = process.group.try_wait() {
                let logs = process.logs();
                let why = format!("wrangler exited with {status}:\n{logs}");
                return Err(if logs.contains("Address already in use") {
                    StartError::PortTaken(why)
                } else {
                    StartError::Failed(why)
                });
            }
            // The log line proves this wrangler bound the port (not some other server).
            if std::fs::read_to_string(&process.log).is_ok_and(|l| l.contains(&ready_line))
                && let Ok(resp) = health.get("/edge/health").try_send().await
                && resp.status == 200
            {
                return Ok((process, address, started.elapsed()));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(StartError::Failed(format!(
                    "no healthy answer on {address} within {READY_TIMEOUT:?}:\n{}",
                    process.logs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl EdgeRuntime for Wrangler {
    fn name(&self) -> &'static str {
        "wrangler"
    }

    async fn start(&self, origin: &str, vars: &BTreeMap<String, String>) -> EdgeHandle {
        let root = repo_root();
        let shim = root.join("build/worker/shim.mjs");
        assert!(
            shim.exists() && root.join("build/index.js").exists(),
            "{} is missing: build the Cloudflare worker first with scripts/build-worker.sh \
             (scripts/test.sh does it before running the tests)",
            shim.display()
        );
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(
            wrangler.exists(),
            "{} is missing: install it with scripts/build-worker.sh (runs `npm ci` from \
             package-lock.json)",
            wrangler.display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            match self.attempt(&root, origin, vars).await {
                Ok((process, address, started_in)) => {
                    eprintln!(
                        "wrangler dev ready on {address} in {} ms",
                        started_in.as_millis()
                    );
                    return EdgeHandle::new(address, self.name(), started_in, Box::new(process));
                }
                Err(StartError::PortTaken(why)) => last = why,
                Err(StartError::Failed(why)) => panic!("wrangler dev did not start: {why}"),
            }
        }
        panic!("wrangler dev did not start (ports taken three times): {last}");
    }
}

#[test]
fn the_dev_config_drops_the_build_section_and_points_main_at_the_shim() {
    let committed = std::fs::read_to_string(repo_root().join("wrangler.toml")).unwrap();
    let out = dev_config(&committed, Path::new("/abs/build/worker/shim.mjs"));
    assert!(
        out.contains("main = \"/abs/build/worker/shim.mjs\"\n"),
        "{out}"
    );
    assert!(
        !out.contains("[build]") && !out.contains("build-worker.sh"),
        "{out}"
    );
    assert!(out.contains("[[durable_objects.bindings]]"), "{out}");
    assert!(
        out.contains("[vars]") && out.contains("[[migrations]]"),
        "{out}"
    );
}
