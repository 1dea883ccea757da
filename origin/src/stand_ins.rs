//! What a login for an unknown account is checked against (SPEC §10): so that it costs what a
//! login of an existing account costs, whatever format that account's hash is in, the hashing
//! pool draws a stand-in from the shapes (format and costs) the stored hashes have, weighted by
//! how many accounts have each ([`crate::hashing::Hasher::set_stand_ins`]). This keeps them
//! current: at start, every [`REFRESH_EVERY`], and after an import.

use std::time::Duration;

use crate::legacy_hash::Format;
use crate::state::AppState;

/// How often every replica reads the shapes again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);

/// Reads the shapes of the stored hashes into the hashing pool. A failure keeps the shapes it
/// had (and is logged).
pub async fn refresh(state: &AppState) {
    let shapes = match state.db.get().await {
        Ok(client) => crate::db::users::hash_shapes(&client)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (all, shapes) = match shapes {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "could not read the shapes of the stored hashes");
            return;
        }
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    // Hashes in no format (accounts without a password) cost a native check.
    let foreign: Vec<(u64, String)> = shapes
        .into_iter()
        .filter(|(_, hash)| Format::of(hash).is_some())
        .map(|(n, hash)| (count(n), hash))
        .collect();
    let native = count(all).saturating_sub(foreign.iter().map(|(n, _)| n).sum());
    state.hasher.set_stand_ins(native, foreign);
}

/// Refreshes at start and every [`REFRESH_EVERY`].
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            refresh(&state).await;
        }
    })
}
