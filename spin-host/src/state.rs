//! Per-request store data and the linker that wires every import to it.
//!
//! Each request gets a fresh `Store<Ctx>` (a fresh guest instance, as in
//! Spin); only the key-value maps and the variables are shared, by `Arc`.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::SpinImports;
use crate::key_value::KvMaps;
use crate::logs::Logs;
use crate::variables::Variables;

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

/// WASI 0.2 and 0.3 (the component imports both, e.g. `wasi:cli/stdin@0.3.0`),
/// wasi:http 0.3 and the two Spin interfaces.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<Ctx>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    SpinImports::add_to_linker::<_, HasSelf<Ctx>>(&mut linker, |ctx| ctx)?;
    Ok(linker)
}
