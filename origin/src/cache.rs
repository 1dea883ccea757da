//! The user-view cache behind `GET /users/{id}` and `/users/me`.
//!
//! Entries carry the row version. A store only replaces an entry holding an older version, and
//! writers store their new version (or a tombstone version) after committing. So a reader that
//! fetched an old row just before a write cannot overwrite the newer entry afterwards: the
//! cache never goes backwards. Redis when configured (shared by every replica); otherwise a
//! bounded in-process map. A Redis failure is a miss.
//!
//! A write whose cache update fails (Redis unreachable) is remembered: until that update has
//! reached Redis, this replica reads nothing from Redis, and the update is retried on every
//! cache call and every second, so entries older than the write do not resurface when Redis
//! returns.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use users_core::model::UserView;
use uuid::Uuid;

use crate::redis_store::Redis;

/// Largest number of entries of the in-process cache.
pub const MEMORY_CAPACITY: usize = 10_000;
/// The version written when a user is deleted: no read can store anything after it.
pub const DELETED: i64 = i64::MAX;

/// Stores `ARGV[2]` under `KEYS[1]` at version `ARGV[1]` unless a newer (or equal and
/// non-empty) entry is there; expires in `ARGV[3]` ms.
const STORE_SCRIPT: &str = r"
local cur = redis.call('HGET', KEYS[1], 'v')
if cur then
  local c = tonumber(cur)
  local n = tonumber(ARGV[1])
  if c > n then return 0 end
  if c == n and redis.call('HGET', KEYS[1], 'd') ~= '' then return 0 end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

#[derive(Debug)]
/// One cached view (or a tombstone without data) at a version.
pub struct Entry {
    version: i64,
    data: Option<UserView>,
    expires: Instant,
}

/// Where cached views live.
#[derive(Debug)]
pub enum UserCache {
    Redis {
        redis: Redis,
        ttl: Duration,
        script: redis::Script,
        /// Updates that did not reach Redis: user id → version.
        pending: Mutex<HashMap<Uuid, i64>>,
    },
    Memory {
        entries: Mutex<HashMap<Uuid, Entry>>,
        ttl: Duration,
    },
}

impl UserCache {
    pub fn redis(redis: Redis, ttl: Duration) -> Self {
        Self::Redis {
            redis,
            ttl,
            script: redis::Script::new(STORE_SCRIPT),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn memory(ttl: Duration) -> Self {
        Self::Memory {
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Runs the versioned store script; `false` if Redis did not answer.
    async fn redis_put(&self, id: Uuid, version: i64, data: &str) -> bool {
        let Self::Redis {
            redis, ttl, script, ..
        } = self
        else {
            return true;
        };
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(redis.key(&Self::key(id)))
            .arg(version)
            .arg(data)
            .arg(ttl_ms);
        redis.script::<i64>(&invocation).await.is_some()
    }

    /// Retries the updates that did not reach Redis; `true` when none is left.
    pub async fn flush_pending(&self) -> bool {
        let Self::Redis { pending, .. } = self else {
            return true;
        };
        let due: Vec<(Uuid, i64)> = match pending.lock() {
            Ok(p) if p.is_empty() => return true,
            Ok(p) => p.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(_) => return false,
        };
        for (id, version) in due {
            if !self.redis_put(id, version, "").await {
                return false;
            }
            if let Ok(mut p) = pending.lock()
                && p.get(&id) == Some(&version)
            {
                p.remove(&id);
            }
        }
        pending.lock().is_ok_and(|p| p.is_empty())
    }

    /// How many updates have not reached Redis yet; while there are any, this replica reads
    /// nothing from Redis. A poisoned lock counts as one: [`Self::flush_pending`] never clears it.
    pub fn pending(&self) -> usize {
        match self {
            Self::Redis { pending, .. } => pending.lock().map_or(1, |p| p.len()),
            Self::Memory { .. } => 0,
        }
    }

    fn key(id: Uuid) -> String {
        format!("user:{}", id.simple())
    }

    /// The cached view of `id`, if any.
    pub async fn get(&self, id: Uuid) -> Option<UserView> {
        match self {
            Self::Redis { redis, .. } => {
                if !self.flush_pending().await {
                    return None;
                }
                let data: Option<String> = redis
                    .query(redis::cmd("HGET").arg(redis.key(&Self::key(id))).arg("d"))
                    .await
                    .flatten();
                data.filter(|d| !d.is_empty())
                    .and_then(|d| serde_json::from_str(&d).ok())
            }
            Self::Memory { entries, .. } => {
                let entries = entries.lock().ok()?;
                let entry = entries.get(&id)?;
                if entry.expires < Instant::now() {
                    None
                } else {
                    entry.data.clone()
                }
            }
        }
    }

    /// Stores `view` unless a newer version is cached.
    pub async fn store(&self, view: &UserView) {
        self.put(view.id, view.version, Some(view)).await;
    }

    /// Marks `id` as changed at `version` without a view: later stores of older versions fail.
    pub async fn invalidate(&self, id: Uuid, version: i64) {
        self.put(id, version, None).await;
    }

    async fn put(&self, id: Uuid, version: i64, view: Option<&UserView>) {
        match self {
            Self::Redis { pending, .. } => {
                let data = view
                    .and_then(|v| serde_json::to_string(v).ok())
                    .unwrap_or_default();
                if !self.redis_put(id, version, &data).await
                    && let Ok(mut pending) = pending.lock()
                {
                    let v = pending.entry(id).or_insert(version);
                    *v = (*v).max(version);
                }
            }
            Self::Memory { entries, ttl } => {
                let Ok(mut entries) = entries.lock() else {
                    return;
                };
                let now = Instant::now();
                if let Some(cur) = entries.get(&id)
                    && cur.expires >= now
                    && (cur.version > version || (cur.version == version && cur.data.is_some()))
                {
                    return;
                }
                if entries.len() >= MEMORY_CAPACITY && !entries.contains_key(&id) {
                    entries.retain(|_, e| e.expires >= now);
                    if entries.len() >= MEMORY_CAPACITY {
                        entries.clear();
                    }
                }
                entries.insert(
                    id,
                    Entry {
                        version,
                        data: view.cloned(),
                        expires: now + *ttl,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(version: i64, name: &str) -> UserView {
        UserView {
            id: Uuid::from_u128(1),
            username: name.into(),
            email: "a@example.com".into(),
            email_verified: false,
            pending_email: None,
            pending_email_confirmations: None,
            display_name: None,
            roles: vec![],
            is_active: true,
            mfa_enabled: false,
            created_at: String::new(),
            updated_at: String::new(),
            version,
        }
    }

    #[tokio::test]
    async fn a_stale_reader_cannot_overwrite_a_newer_entry() {
        let cache = UserCache::memory(Duration::from_secs(60));
        cache.store(&view(2, "new")).await;
        cache.store(&view(1, "old")).await;
        assert_eq!(cache.get(Uuid::from_u128(1)).await.unwrap().username, "new");
    }

    #[tokio::test]
    async fn invalidation_blocks_older_stores_but_not_the_new_version() {
        let cache = UserCache::memory(Duration::from_secs(60));
        cache.store(&view(1, "v1")).await;
        cache.invalidate(Uuid::from_u128(1), 2).await;
        assert!(cache.get(Uuid::from_u128(1)).await.is_none());
        cache.store(&view(1, "v1")).await;
        assert!(cache.get(Uuid::from_u128(1)).await.is_none());
        cache.store(&view(2, "v2")).await;
        assert_eq!(cache.get(Uuid::from_u128(1)).await.unwrap().username, "v2");
        cache.invalidate(Uuid::from_u128(1), DELETED).await;
        cache.store(&view(3, "v3")).await;
        assert!(cache.get(Uuid::from_u128(1)).await.is_none());
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache = UserCache::memory(Duration::from_millis(0));
        cache.store(&view(1, "v1")).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(cache.get(Uuid::from_u128(1)).await.is_none());
    }
}
