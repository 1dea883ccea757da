//! Values in Spin key-value, which has no expiry: JSON values, and values in an envelope with
//! their expiry time, read as absent once it has passed and deleted by [`sweep`].

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::random::random;

/// Entries one sweep looks at, from a random starting point.
const SWEEP_BATCH: usize = 256;

/// A value with an expiry time, since Spin key-value has none.
#[derive(Serialize, Deserialize)]
struct Expiring<T> {
    expires_at_ms: i64,
    value: T,
}

#[derive(Deserialize)]
struct ExpiryOnly {
    expires_at_ms: i64,
}

pub async fn get_json<T: DeserializeOwned>(store: &Store, key: &str) -> Option<T> {
    let raw = store.get(key).await.ok()??;
    serde_json::from_slice(&raw).ok()
}

pub async fn set_json<T: Serialize>(store: &Store, key: &str, value: &T) {
    if let Ok(raw) = serde_json::to_vec(value) {
        let _ = store.set(key, raw).await;
    }
}

/// An expiring value, absent once expired.
pub async fn get_fresh<T: DeserializeOwned>(store: &Store, key: &str, now_ms: i64) -> Option<T> {
    let entry: Expiring<T> = get_json(store, key).await?;
    (entry.expires_at_ms > now_ms).then_some(entry.value)
}

pub async fn set_expiring<T: Serialize>(store: &Store, key: &str, value: &T, expires_at_ms: i64) {
    set_json(
        store,
        key,
        &Expiring {
            expires_at_ms,
            value,
        },
    )
    .await;
}

/// Deletes expired envelopes among a batch of keys starting at a random place.
pub async fn sweep(store: &Store, now_ms: i64) {
    let mut stream = store.get_keys().await;
    let mut keys = Vec::new();
    while let Some(key) = stream.next().await {
        keys.push(key);
    }
    if keys.is_empty() {
        return;
    }
    let start = (random::get_random_u64() % keys.len() as u64) as usize;
    for key in keys
        .iter()
        .cycle()
        .skip(start)
        .take(SWEEP_BATCH.min(keys.len()))
    {
        if let Some(entry) = get_json::<ExpiryOnly>(store, key).await
            && entry.expires_at_ms <= now_ms
        {
            let _ = store.delete(key).await;
        }
    }
}
