//! # users-spin-host
//!
//! A **test/dev host** for the edge tier's Spin component: it runs the exact
//! production `.wasm` (built by spin-sdk 7.0.0 with `#[http_service]`, so it
//! exports `wasi:http/handler@0.3.0`) on wasmtime 49 and serves it over
//! HTTP/1.1 on a local port, with in-memory key-value stores whose state
//! persists across requests. `wasmtime serve` implements neither
//! `spin:key-value` nor `spin:variables`; this crate lets integration tests,
//! benchmarks and local runs use the production component without the `spin`
//! CLI. It is **not a production runtime**: production is Spin / SpinKube.
//!
//! How the parts fit:
//! - [`start`] compiles the component once per process (`engine`), links WASI
//!   0.2 + 0.3, wasi:http 0.3 and the Spin interfaces (`linker`),
//!   pre-instantiates it and spawns the accept loop (`server`).
//! - `server` gives every request a fresh store and instance, as Spin does;
//!   only the key-value maps and the variables (both in `state`) are shared
//!   between requests.
//! - Imports between modules point one way, with no circle: `bindings`
//!   (generated from `wit/`) names no other module; `state` (the data: the
//!   per-request `Ctx`, the key-value maps, the variables) only `logs`;
//!   `key_value` and `variables` implement the Spin host traits of `bindings`
//!   for `Ctx`; `linker` and `server` sit on top.
//! - Like Spin, the host strips client-sent `spin-*` headers and sets
//!   `spin-client-addr` (peer `ip:port`) and `spin-full-url`.
//! - Outbound HTTP uses wasmtime-wasi-http's default `send_request`, allowed
//!   to any host: the component's own `allowed_outbound_hosts` discipline is
//!   not enforced here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), users_spin_host::Error> {
//! let host = users_spin_host::start(
//!     users_spin_host::HostConfig::new("target/wasm32-wasip2/release/users_edge.wasm")
//!         .variable("origin_url", "http://127.0.0.1:8080")
//!         .store("default"),
//! )
//! .await?;
//! println!("serving on {}", host.url());
//! host.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod bindings;
mod engine;
mod key_value;
mod linker;
mod logs;
mod server;
mod state;
mod variables;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmtime::error::Context as _;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::logs::Logs;
use crate::server::Shared;
use crate::state::KvMaps;

/// Errors of this crate are wasmtime's own error type (not anyhow's).
pub use wasmtime::Error;

/// What to run and how: the counterpart of a `spin.toml` with one component.
#[derive(Clone)]
pub struct HostConfig {
    /// The component to run (`.wasm` built for `wasm32-wasip2`).
    pub wasm: PathBuf,
    /// Where to listen; port 0 picks a free port (see [`RunningHost::addr`]).
    pub listen: SocketAddr,
    /// Application variables as `(name, value)`; names must be Spin-valid
    /// (lowercase letters, digits, single underscores, starting with a letter).
    pub variables: Vec<(String, String)>,
    /// Key-value store labels the component may open (Spin's
    /// `key_value_stores`); each starts empty.
    pub stores: Vec<String>,
}

impl HostConfig {
    /// Runs `wasm` on `127.0.0.1:0` with no variables and no stores.
    pub fn new(wasm: impl Into<PathBuf>) -> Self {
        Self {
            wasm: wasm.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            variables: Vec::new(),
            stores: Vec::new(),
        }
    }

    /// Adds the variable `name` = `value`.
    #[must_use]
    pub fn variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.push((name.into(), value.into()));
        self
    }

    /// Allows the key-value store `label`.
    #[must_use]
    pub fn store(mut self, label: impl Into<String>) -> Self {
        self.stores.push(label.into());
        self
    }
}

/// Variable values may be secrets (keys, tokens): `Debug` shows names only.
impl fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.variables.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HostConfig")
            .field("wasm", &self.wasm)
            .field("listen", &self.listen)
            .field("variables", &names)
            .field("stores", &self.stores)
            .finish()
    }
}

/// A host serving in the background of the current tokio runtime. Stops
/// serving when dropped, or on [`RunningHost::shutdown`]; either way open
/// connections are cut (it is a test host: nothing to drain).
pub struct RunningHost {
    /// The bound address (the real port when [`HostConfig::listen`] had 0).
    pub addr: SocketAddr,
    kv: KvMaps,
    logs: Logs,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for RunningHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningHost")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningHost {
    /// `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, cuts open connections and waits until the listener
    /// is closed.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            // Err only if the accept loop panicked or was aborted: stopped either way.
            let _ = task.await;
        }
    }

    /// Everything this host logged so far: its own error lines (guest traps,
    /// `error-code`s, connection errors) and the guest's stdout and stderr.
    /// Also echoed to this process's stderr/stdout as it happens.
    pub fn logs(&self) -> String {
        self.logs.snapshot()
    }

    /// The keys currently in store `label`, sorted; empty for an unknown label.
    pub fn kv_keys(&self, label: &str) -> Vec<String> {
        let maps = state::lock_kv(&self.kv);
        let mut keys: Vec<String> = maps
            .get(label)
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// The value of `key` in store `label`, if both exist.
    pub fn kv_get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        state::lock_kv(&self.kv).get(label)?.get(key).cloned()
    }

    /// Writes `key` in store `label` as the component would (e.g. to seed or
    /// corrupt state in a test). Fails for a label the host was not given.
    pub fn kv_set(&self, label: &str, key: &str, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let mut maps = state::lock_kv(&self.kv);
        let map = maps
            .get_mut(label)
            .ok_or_else(|| wasmtime::format_err!("no key-value store labelled {label:?}"))?;
        map.insert(key.to_owned(), value.into());
        Ok(())
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Compiles (or takes from the process-wide cache) the component, binds
/// `config.listen` and serves in a background task of the current tokio
/// runtime. Every call gets its own key-value state.
///
/// # Errors
/// An invalid variable name, an unreadable or invalid component, a component
/// importing something this host does not provide, or a failed bind.
pub async fn start(config: HostConfig) -> Result<RunningHost, Error> {
    let HostConfig {
        wasm,
        listen,
        variables,
        stores,
    } = config;
    for (name, _) in &variables {
        variables::check_name(name)
            .map_err(|reason| wasmtime::format_err!("variable name {name:?}: {reason}"))?;
    }

    let engine = engine::shared()?;
    let component = engine::component(&engine, &wasm).await?;
    let instance_pre = linker::build(&engine)?
        .instantiate_pre(&component)
        .with_context(|| format!("linking {}", wasm.display()))?;
    let pre = ServicePre::new(instance_pre)
        .with_context(|| format!("{} does not export wasi:http/handler@0.3.0", wasm.display()))?;

    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;

    let kv: KvMaps = Arc::new(Mutex::new(
        stores
            .into_iter()
            .map(|label| (label, HashMap::new()))
            .collect(),
    ));
    let logs = Logs::default();
    let shared = Arc::new(Shared {
        engine,
        pre,
        kv: Arc::clone(&kv),
        variables: Arc::new(variables.into_iter().collect()),
        logs: logs.clone(),
        local: addr,
    });
    let (shutdown, shutdown_rx) = oneshot::channel();
    let task = tokio::spawn(server::serve(listener, shared, shutdown_rx));
    Ok(RunningHost {
        addr,
        kv,
        logs,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}
