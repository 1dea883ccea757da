//! Host-side bindings for the two Spin 3.0 interfaces the component imports,
//! generated from `wit/` (copied verbatim from spin-sdk 7.0.0's `wit/deps/`).
//!
//! Both interfaces declare only `async func`s, so `bindgen!` puts every
//! function into the `…WithStore` traits (they receive an `&Accessor`), while
//! the `store` resource destructor stays in the plain `HostStore` trait. The
//! implementations live in [`crate::key_value`] and [`crate::variables`].

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-imports",
    imports: { default: trappable },
    with: {
        "spin:key-value/key-value.store": crate::key_value::KvStore,
    },
});
