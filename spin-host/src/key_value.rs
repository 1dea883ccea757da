//! `spin:key-value/key-value@3.0.0` over the host's in-memory
//! [`KvMaps`](crate::state::KvMaps): the host traits of `bindings`,
//! implemented for [`Ctx`].
//!
//! `store.open(label)` succeeds only for the labels the host was configured
//! with (as Spin only opens the stores listed in the manifest); the resource
//! ([`KvStore`]) merely remembers the label. Like Spin's key-value API there is
//! no atomic increment and no TTL.

use std::collections::HashMap;
use std::future;

use wasmtime::component::{Accessor, FutureReader, HasSelf, Resource, StreamReader};

use crate::bindings::KvStore;
use crate::bindings::spin::key_value::key_value::{self as wit, Error};
use crate::state::{Ctx, lock_kv};

type KvAccessor = Accessor<Ctx, HasSelf<Ctx>>;

/// Runs `f` on the map of the store behind `store`.
fn with_map<R>(
    accessor: &KvAccessor,
    store: &Resource<KvStore>,
    f: impl FnOnce(&mut HashMap<String, Vec<u8>>) -> R,
) -> wasmtime::Result<Result<R, Error>> {
    accessor.with(|mut access| {
        let ctx = access.get();
        let label = &ctx.table.get(store)?.label;
        Ok(match lock_kv(&ctx.kv).get_mut(label) {
            Some(map) => Ok(f(map)),
            None => Err(Error::NoSuchStore),
        })
    })
}

impl wit::Host for Ctx {}

impl wit::HostStore for Ctx {
    fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl wit::HostStoreWithStore<Ctx> for HasSelf<Ctx> {
    async fn open(
        accessor: &KvAccessor,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, Error>> {
        accessor.with(|mut access| {
            let ctx = access.get();
            if !lock_kv(&ctx.kv).contains_key(&label) {
                return Ok(Err(Error::NoSuchStore));
            }
            Ok(Ok(ctx.table.push(KvStore { label })?))
        })
    }

    async fn get(
        accessor: &KvAccessor,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        with_map(accessor, &store, |map| map.get(&key).cloned())
    }

    async fn set(
        accessor: &KvAccessor,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        with_map(accessor, &store, |map| {
            map.insert(key, value);
        })
    }

    async fn delete(
        accessor: &KvAccessor,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        with_map(accessor, &store, |map| {
            map.remove(&key);
        })
    }

    async fn exists(
        accessor: &KvAccessor,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        with_map(accessor, &store, |map| map.contains_key(&key))
    }

    /// A snapshot of the keys, streamed in one batch; the trailing future
    /// carries `no-such-store` if the store's label is gone.
    async fn get_keys(
        accessor: &KvAccessor,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let (keys, result) = match with_map(accessor, &store, |map| map.keys().cloned().collect())?
        {
            Ok(keys) => (keys, Ok(())),
            Err(err) => (Vec::new(), Err(err)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let done = future::ready(Ok::<_, wasmtime::Error>(result));
            let future = FutureReader::new(&mut access, done)?;
            Ok((stream, future))
        })
    }
}
