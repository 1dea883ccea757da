//! The linker that wires every import of the component to [`Ctx`].
//!
//! WASI and wasi:http come from wasmtime-wasi(-http) through `Ctx`'s
//! `WasiView`/`WasiHttpView` (in `state`); the two Spin interfaces come from
//! `bindings`, whose host traits `key_value` and `variables` implement for
//! `Ctx`. It sits above all of them, so none of them needs to know it.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::SpinImports;
use crate::state::Ctx;

/// WASI 0.2 and 0.3 (the component imports both, e.g. `wasi:cli/stdin@0.3.0`),
/// wasi:http 0.3 and the two Spin interfaces.
pub(crate) fn build(engine: &Engine) -> wasmtime::Result<Linker<Ctx>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    SpinImports::add_to_linker::<_, HasSelf<Ctx>>(&mut linker, |ctx| ctx)?;
    Ok(linker)
}
