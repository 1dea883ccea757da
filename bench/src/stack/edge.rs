//! The edge runtimes as child processes, each in its own process group and stopped on drop: the
//! Cloudflare worker under `wrangler dev` (local workerd) and the Spin component in the
//! release-built wasmtime test host (`users-spin-host`). Both take the edge's variables in
//! upper case (the Spin host is given them in lower case, as Spin names variables). Stopping
//! the group is `users-harness`'s `ProcessGroup`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use users_harness::process::ProcessGroup;

/// How long the group has to exit after `SIGTERM` before it gets `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// An edge process in its own process group, stopped on drop.
#[derive(Debug)]
pub struct EdgeProcess {
    group: ProcessGroup,
    /// Where the process keeps its state, removed after it stops.
    dir: Option<PathBuf>,
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        self.group.stop(STOP_GRACE);
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The production Spin component (under `root`, the workspace) in the release-built test host;
/// returns the process and its base URL.
pub fn start_spin(root: &Path, vars: &[(&str, String)]) -> anyhow::Result<(EdgeProcess, String)> {
    let wasm = root.join("target/wasm32-wasip2/release/users_edge.wasm");
    let host = root.join("target/release/users-spin-host");
    if !wasm.exists() || !host.exists() {
        bail!(
            "{} or {} is missing: run scripts/build-spin.sh and cargo build --release -p users-spin-host",
            wasm.display(),
            host.display()
        );
    }
    let port = free_port()?;
    let mut cmd = Command::new(host);
    cmd.arg("--wasm")
        .arg(&wasm)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--store", "default", "--store", "profiles"]);
    for (k, v) in vars {
        cmd.args(["--var", &format!("{}={v}", k.to_ascii_lowercase())]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = cmd.spawn().context("start users-spin-host")?;
    Ok((
        EdgeProcess {
            group: ProcessGroup::new(child),
            dir: None,
        },
        format!("http://127.0.0.1:{port}"),
    ))
}

/// `wrangler.toml` with `main` pointing at the built shim and without the `[build]` command, so
/// `wrangler dev` serves what `scripts/build-worker.sh` built instead of building again.
fn wrangler_config(toml: &str, shim: &Path) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in toml.lines() {
        if line.trim() == "[build]" {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with("command") {
            skipping = false;
            continue;
        }
        if line.starts_with("main = ") {
            out.push_str(&format!("main = \"{}\"\n", shim.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The built worker (under `root`, the workspace) under `wrangler dev`, its state in a temporary
/// directory; returns the process and its base URL.
pub fn start_wrangler(
    root: &Path,
    vars: &[(&str, String)],
) -> anyhow::Result<(EdgeProcess, String)> {
    let shim = root.join("build/worker/shim.mjs");
    if !shim.exists() {
        bail!("{} is missing: run scripts/build-worker.sh", shim.display());
    }
    let dir = std::env::temp_dir().join(format!("users-bench-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let toml = std::fs::read_to_string(root.join("wrangler.toml"))?;
    let config = dir.join("wrangler.toml");
    std::fs::write(&config, wrangler_config(&toml, &shim))?;
    let port = free_port()?;
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.args(["dev", "-c"]).arg(&config);
    cmd.args(["--ip", "127.0.0.1", "--port", &port.to_string()]);
    cmd.args([
        "--inspector-port",
        &free_port()?.to_string(),
        "--persist-to",
    ])
    .arg(dir.join("state"));
    for (k, v) in vars {
        cmd.args(["--var", &format!("{k}:{v}")]);
    }
    cmd.env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("CI", "true")
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = cmd.spawn().context("start wrangler (npm ci first)")?;
    Ok((
        EdgeProcess {
            group: ProcessGroup::new(child),
            dir: Some(dir),
        },
        format!("http://127.0.0.1:{port}"),
    ))
}

/// Polls `url` until it answers 200, for up to a minute.
pub async fn wait_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{url} did not become ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrangler_config_serves_the_built_shim() {
        let toml = "name = \"users-edge\"\nmain = \"build/worker/shim.mjs\"\n\n[build]\n\
                    command = \"cargo install worker-build && worker-build --release\"\n\n\
                    [vars]\nA = \"1\"\n";
        let out = wrangler_config(toml, Path::new("/w/build/worker/shim.mjs"));
        assert_eq!(
            out,
            "name = \"users-edge\"\nmain = \"/w/build/worker/shim.mjs\"\n\n\n[vars]\nA = \"1\"\n"
        );
    }
}
