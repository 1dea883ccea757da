//! The data the host keeps: shared by every request of one host
//! ([`KvMaps`], [`Variables`]) and per request ([`Ctx`]).
//!
//! Each request gets a fresh `Store<Ctx>` (a fresh guest instance, as in
//! Spin); only the key-value maps and the variables are shared, by `Arc`.
//! Both are created by [`crate::start`]: one (empty) map per configured store
//! label, so state persists across requests as it does in Spin, and the
//! variables as configured. This module knows no bindings: the Spin host
//! traits are implemented for `Ctx` in `key_value` and `variables`, and
//! `linker` wires everything to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::logs::Logs;

/// Every key-value store of one host: label → (key → value).
pub(crate) type KvMaps = Arc<Mutex<HashMap<String, HashMap<String, Vec<u8>>>>>;

/// Locks the maps. A panic while holding the lock cannot leave a plain
/// `HashMap` half-updated, so a poisoned lock is simply taken over.
pub(crate) fn lock_kv(maps: &KvMaps) -> MutexGuard<'_, HashMap<String, HashMap<String, Vec<u8>>>> {
    maps.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The variables of one host, shared read-only by every request.
pub(crate) type Variables = Arc<HashMap<String, String>>;

/// The `T` of `Store<T>`: WASI, wasi:http and Spin state of one request.
pub(crate) struct Ctx {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) kv: KvMaps,
    pub(crate) variables: Variables,
}

impl Ctx {
    pub(crate) fn new(kv: KvMaps, variables: Variables, logs: &Logs) -> Self {
        Self {
            table: ResourceTable::new(),
            // No args, env, preopens or stdin; output goes to the host's logs.
            wasi: WasiCtx::builder()
                .stdout(logs.guest_output(false))
                .stderr(logs.guest_output(true))
                .build(),
            http: WasiHttpCtx::new(),
            kv,
            variables,
        }
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            // Default hooks on purpose: outbound requests go anywhere through
            // wasmtime-wasi-http's own `default_send_request`, bugs included,
            // so tests see what the component sees on a stock runtime.
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}
