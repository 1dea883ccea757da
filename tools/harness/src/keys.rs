//! The Redis server of the tests and benchmarks (`TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`, no persistence) and the keys under a prefix: each test or run
//! keeps its keys under a prefix of its own and deletes them at the end. Keys are found with
//! `SCAN` in batches, so a large keyspace never blocks Redis.

use std::time::Duration;

use anyhow::Context as _;
use redis::aio::MultiplexedConnection;

/// The Redis server when `TEST_REDIS_URL` is unset.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `TEST_REDIS_URL`, else [`DEFAULT_REDIS_URL`].
pub fn redis_url() -> String {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => DEFAULT_REDIS_URL.to_owned(),
    }
}

/// A connection to the Redis at `url`, given 5 s to answer.
pub async fn connection(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).context("a valid Redis URL")?;
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .with_context(|| format!("Redis at {url} answers within 5 s"))?
    .with_context(|| format!("connect to Redis at {url}"))
}

/// `prefix` as a literal `SCAN MATCH` pattern followed by `*`.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// Every key that starts with `prefix`.
pub async fn keys(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<Vec<String>> {
    let pattern = prefix_pattern(prefix);
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Deletes every key that starts with `prefix` from the Redis at `url`; returns how many.
pub async fn delete_prefix(url: &str, prefix: &str) -> anyhow::Result<usize> {
    let mut conn = connection(url).await?;
    let keys = keys(&mut conn, prefix).await?;
    let mut deleted = 0;
    for chunk in keys.chunks(500) {
        let n: usize = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
        deleted += n;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn the_pattern_matches_the_prefix_literally() {
        assert_eq!(prefix_pattern("it:a*b?[c]\\:"), "it:a\\*b\\?\\[c\\]\\\\:*");
    }
}
