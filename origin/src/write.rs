//! A write: a database transaction that remembers the cache updates its changes need and
//! applies them after the commit, so no handler has to remember them by hand.
//!
//! The cache never goes backwards (see `cache`): updates are applied only once the change is
//! committed, each with the version the change produced.

use std::sync::Arc;

use deadpool_postgres::{Client, Transaction};
use users_core::model::UserView;
use uuid::Uuid;

use crate::cache::{DELETED, UserCache};

/// One cache update, applied after the commit.
#[derive(Debug)]
enum Update {
    /// The user's view as committed.
    Store(UserView),
    /// The user changed (roles, permissions) and is now at this version.
    Invalidate(Uuid, i64),
}

/// A transaction and the cache updates it owes.
pub struct Write<'c> {
    /// The transaction: pass `&write.tx` to the queries.
    pub tx: Transaction<'c>,
    cache: Arc<UserCache>,
    updates: Vec<Update>,
}

impl std::fmt::Debug for Write<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("updates", &self.updates)
            .finish_non_exhaustive()
    }
}

impl<'c> Write<'c> {
    /// Starts a transaction on `client`.
    pub async fn begin(
        client: &'c mut Client,
        cache: &Arc<UserCache>,
    ) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            tx: client.transaction().await?,
            cache: Arc::clone(cache),
            updates: Vec::new(),
        })
    }

    /// After the commit, the cache holds `view`.
    pub fn store(&mut self, view: UserView) {
        self.updates.push(Update::Store(view));
    }

    /// After the commit, the cached view of `id` is older than `version`.
    pub fn invalidate(&mut self, id: Uuid, version: i64) {
        self.updates.push(Update::Invalidate(id, version));
    }

    /// After the commit, `id` is gone: no read may cache it again.
    pub fn deleted(&mut self, id: Uuid) {
        self.invalidate(id, DELETED);
    }

    /// Commits, then applies the cache updates in order.
    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.tx.commit().await?;
        for update in self.updates {
            match update {
                Update::Store(view) => self.cache.store(&view).await,
                Update::Invalidate(id, version) => self.cache.invalidate(id, version).await,
            }
        }
        Ok(())
    }
}
