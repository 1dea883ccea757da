//! The edge tier end to end: a real edge runtime in front of a real origin.
//!
//! The scenarios ([`scenarios`], one file per theme) are written once, against the small
//! [`EdgeRuntime`] trait: "start an edge in front of this origin with these variables". Each
//! runtime implements it and gets one test per scenario from [`scenarios::edge_scenarios!`]:
//!
//! - [`wrangler`]: the Cloudflare Worker (`build/worker/shim.mjs`, built by
//!   `scripts/build-worker.sh`) under `wrangler dev`, i.e. workerd with local Durable Objects
//!   and Cache API.
//! - [`spin`]: the Spin component (`target/wasm32-wasip2/release/users_edge.wasm`, built by
//!   `scripts/build-spin.sh`) in the wasmtime test host, configured from `spin.toml`.
//!
//! A runtime is given every variable the scenario relies on (see [`scenarios::edge_vars`]),
//! so no scenario depends on one runtime's defaults. A failing test prints the edge's log;
//! `EDGE_LOG=1` prints it for every test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod scenarios;

/// The repository's root (the runtimes' builds and manifests live there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// A way to run the edge tier locally.
#[allow(async_fn_in_trait)]
pub trait EdgeRuntime {
    /// A short name for messages (`wrangler`, `spin`, …).
    fn name(&self) -> &'static str;

    /// Starts an edge in front of `origin` (`http://127.0.0.1:PORT`, its `ORIGIN_URL`) with the
    /// variables `vars` (name → value), and waits until `GET /edge/health` answers `200`.
    /// Panics, saying what to do, when the runtime or its build is missing or the edge does
    /// not come up.
    async fn start(&self, origin: &str, vars: &BTreeMap<String, String>) -> EdgeHandle;
}

/// What a runtime keeps alive for a running edge; dropping it stops the edge and removes
/// whatever it put on disk.
pub trait RunningEdge: Send {
    /// The edge's recent log output, for failure messages.
    fn logs(&self) -> String;
}

/// A running edge; it is stopped when the handle is dropped. Its log is printed then if the
/// test failed, or always with `EDGE_LOG` set.
pub struct EdgeHandle {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The runtime's [`EdgeRuntime::name`].
    pub runtime: &'static str,
    /// From spawning the runtime until the edge answered its health check.
    pub started_in: Duration,
    running: Box<dyn RunningEdge>,
}

impl EdgeHandle {
    pub fn new(
        address: String,
        runtime: &'static str,
        started_in: Duration,
        running: Box<dyn RunningEdge>,
    ) -> Self {
        Self {
            address,
            runtime,
            started_in,
            running,
        }
    }

    /// The edge's recent log output.
    pub fn logs(&self) -> String {
        self.running.logs()
    }
}

impl Drop for EdgeHandle {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("EDGE_LOG").is_some() {
            // Runtimes log a request after answering it: let the last lines arrive.
            std::thread::sleep(Duration::from_millis(300));
            eprintln!(
                "---- {} edge log ----\n{}\n---- end of the {} edge log ----",
                self.runtime,
                self.logs(),
                self.runtime
            );
        }
    }
}

impl std::fmt::Debug for EdgeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeHandle")
            .field("address", &self.address)
            .field("runtime", &self.runtime)
            .field("started_in", &self.started_in)
            .finish_non_exhaustive()
    }
}

mod spin;
mod wrangler;
