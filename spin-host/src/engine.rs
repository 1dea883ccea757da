//! The process-wide wasmtime `Engine` and a cache of compiled components.
//!
//! Compiling the component takes about 0.35 s, and a test binary starts one
//! host per test, so both live in process-wide caches. They hold no
//! configuration: the cache key is the file itself (canonical path, length,
//! modification time), so a rebuilt `.wasm` is compiled again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use wasmtime::component::Component;
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine};

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);
static COMPONENTS: Mutex<Option<HashMap<ComponentKey, Component>>> = Mutex::new(None);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ComponentKey {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

/// The shared engine (an `Arc` inside: cloning is cheap), created on first use
/// with the component-model async support wasi:http 0.3 needs.
pub(crate) fn shared() -> wasmtime::Result<Engine> {
    let mut engine = ENGINE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(engine) = engine.as_ref() {
        return Ok(engine.clone());
    }
    let mut config = Config::new();
    config.wasm_component_model_async(true);
    let created = Engine::new(&config)?;
    *engine = Some(created.clone());
    Ok(created)
}

/// The compiled component at `path`, compiled on a blocking thread the first
/// time (concurrent first calls wait for one compilation).
pub(crate) async fn component(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let engine = engine.clone();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || load(&engine, &path)).await?
}

fn load(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("component {}", path.display()))?;
    let meta = canonical
        .metadata()
        .with_context(|| format!("component {}", path.display()))?;
    let key = ComponentKey {
        len: meta.len(),
        modified: meta.modified()?,
        path: canonical,
    };
    // Held while compiling, so a second caller waits instead of compiling too.
    let mut cache = COMPONENTS.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(component) = cache.get(&key) {
        return Ok(component.clone());
    }
    let component = Component::from_file(engine, &key.path)
        .with_context(|| format!("compiling component {}", path.display()))?;
    cache.insert(key, component.clone());
    Ok(component)
}
