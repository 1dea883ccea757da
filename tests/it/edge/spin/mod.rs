//! The Spin component: the production `.wasm` (built by `scripts/build-spin.sh`) in the
//! wasmtime test host (`users-spin-host`), configured from the committed `spin.toml` as Spin
//! would: the manifest's application variables with their defaults, the component's variable
//! templates resolved against them, its key-value stores and its source path. A variable the
//! manifest does not declare cannot be set, and a store it does not list cannot be opened.
//!
//! Besides the shared scenarios: [`manifest`] (reading `spin.toml`; the component's import set
//! and the manifest against the settings the edge reads), [`bodies`] (an origin that sends its
//! body after its headers, chunked oversized bodies) and [`store`] (expiry envelopes in the
//! key-value stores).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use users_spin_host::{HostConfig, RunningHost};

use super::scenarios::edge_scenarios;
use super::{EdgeHandle, EdgeRuntime, RunningEdge};
use crate::helpers::{Api as _, Endpoint};
use manifest::{Manifest, manifest, render};

mod bodies;
mod manifest;
mod store;

/// How long the host may take to answer its first health check.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Spin component in the wasmtime test host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spin;

edge_scenarios!(Spin);

/// The production component, or a panic saying how to build it.
fn component(m: &Manifest) -> PathBuf {
    assert!(
        m.source.exists(),
        "{} is missing: run scripts/build-spin.sh",
        m.source.display()
    );
    m.source.clone()
}

/// A running host (it stops serving when dropped).
struct SpinEdge {
    host: RunningHost,
}

impl RunningEdge for SpinEdge {
    fn logs(&self) -> String {
        self.host.logs()
    }
}

/// Starts the production component in the host, configured from `spin.toml` as Spin would
/// be, in front of `origin`, and waits until it is healthy.
async fn start_host(origin: &str, vars: &BTreeMap<String, String>) -> (RunningHost, Duration) {
    let m = manifest();
    // Application variables: the manifest's defaults, then what the test sets (by the
    // upper-case setting names the Worker uses, as Spin's environment provider does).
    let mut values: BTreeMap<String, String> = m
        .variables
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.default.clone()?)))
        .collect();
    let given = std::iter::once(("ORIGIN_URL", origin)).chain(
        vars.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| *k != "ORIGIN_URL"),
    );
    for (name, value) in given {
        let name = name.to_ascii_lowercase();
        assert!(
            m.variables.contains_key(&name),
            "spin.toml declares no variable {name:?}"
        );
        values.insert(name, value.to_owned());
    }
    for (name, v) in &m.variables {
        assert!(
            !v.required || values.contains_key(name),
            "the required variable {name:?} is not set"
        );
    }
    let mut config = HostConfig::new(component(&m));
    for (name, template) in &m.component_variables {
        config = config.variable(name, render(template, &values));
    }
    for store in &m.stores {
        config = config.store(store);
    }
    let started = Instant::now();
    let host = users_spin_host::start(config)
        .await
        .unwrap_or_else(|e| panic!("start the Spin test host: {e}"));
    let address = host.url();
    let health = Endpoint::new(&address);
    loop {
        if let Ok(resp) = health.get("/edge/health").try_send().await
            && resp.status == 200
        {
            break;
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "no healthy answer on {address} within {READY_TIMEOUT:?}:\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (host, started.elapsed())
}

impl EdgeRuntime for Spin {
    fn name(&self) -> &'static str {
        "spin"
    }

    async fn start(&self, origin: &str, vars: &BTreeMap<String, String>) -> EdgeHandle {
        let (host, started_in) = start_host(origin, vars).await;
        EdgeHandle::new(host.url(), "spin", started_in, Box::new(SpinEdge { host }))
    }
}
