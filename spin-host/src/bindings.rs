//! Host-side bindings for the two Spin 3.0 interfaces the component imports,
//! generated from `wit/` (copied verbatim from spin-sdk 7.0.0's `wit/deps/`),
//! and [`KvStore`], the host value behind the key-value `store` resource.
//!
//! This is the bottom of the crate: it names no other module, so every module
//! that implements or links these interfaces depends on it, never the other
//! way round. `KvStore` lives here because `bindgen!`'s `with:` mapping names
//! the host type of the resource (without it the traits would take a
//! `Resource<Store>` of an empty generated enum, and `ResourceTable`'s typed
//! `get`/`delete` could not reach the label).
//!
//! Both interfaces declare only `async func`s, so `bindgen!` puts every
//! function into the `…WithStore` traits (they receive an `&Accessor`), while
//! the `store` resource destructor stays in the plain `HostStore` trait. The
//! implementations live in the `key_value` and `variables` modules.

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-imports",
    imports: { default: trappable },
    with: {
        "spin:key-value/key-value.store": crate::bindings::KvStore,
    },
});

/// The host value behind a guest's `store` resource: the label it opened.
#[derive(Debug)]
pub struct KvStore {
    pub(crate) label: String,
}
