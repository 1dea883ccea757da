//! The Redis server of the tests and benchmarks (`TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`, no persistence), the Redis Cluster of the tests
//! (`TEST_REDIS_CLUSTER_URLS`, started by `scripts/test.sh`), and the keys under a prefix: each
//! test or run keeps its keys under a prefix of its own and deletes them at the end. Keys are
//! found with `SCAN` in batches, so a large keyspace never blocks Redis; on a cluster, on each
//! master.

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

/// `TEST_REDIS_CLUSTER_URLS`: the comma-separated seed nodes of the test Redis Cluster, if set.
pub fn cluster_urls() -> Option<String> {
    std::env::var("TEST_REDIS_CLUSTER_URLS")
        .ok()
        .filter(|urls| !urls.trim().is_empty())
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

/// The masters of the Redis Cluster that `seeds` (comma-separated node URLs) belongs to, as
/// `redis://host:port`, from `CLUSTER NODES` of the first seed that answers.
pub async fn cluster_masters(seeds: &str) -> anyhow::Result<Vec<String>> {
    let mut last_error = anyhow::anyhow!("no seed node in {seeds:?}");
    for seed in seeds.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let nodes = async {
            let mut conn = connection(seed).await?;
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut conn)
                .await
                .with_context(|| format!("CLUSTER NODES on {seed}"))?;
            anyhow::Ok(nodes)
        };
        match nodes.await {
            Ok(nodes) => return Ok(masters(&nodes)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// The masters' addresses in a `CLUSTER NODES` answer: `<id> <ip:port@bus[,host]> <flags> …`.
fn masters(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_id, addr, flags) = (fields.next()?, fields.next()?, fields.next()?);
            let is_master = flags.split(',').any(|f| f == "master");
            let addr = addr.split(['@', ',']).next()?;
            is_master.then(|| format!("redis://{addr}"))
        })
        .collect()
}

/// Every key that starts with `prefix` on the Redis Cluster of `seeds`.
pub async fn cluster_keys(seeds: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
    let mut all = Vec::new();
    for master in cluster_masters(seeds).await? {
        let mut conn = connection(&master).await?;
        all.extend(keys(&mut conn, prefix).await?);
    }
    Ok(all)
}

/// Deletes every key that starts with `prefix` from the Redis Cluster of `seeds`, on each
/// master the keys it holds (one `DEL` per key: keys of different slots cannot share one);
/// returns how many.
pub async fn delete_prefix_on_cluster(seeds: &str, prefix: &str) -> anyhow::Result<usize> {
    let mut deleted = 0;
    for master in cluster_masters(seeds).await? {
        let mut conn = connection(&master).await?;
        let keys = keys(&mut conn, prefix).await?;
        for chunk in keys.chunks(500) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.del(key);
            }
            let counts: Vec<usize> = pipe.query_async(&mut conn).await?;
            deleted += counts.iter().sum::<usize>();
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::{masters, prefix_pattern};

    #[test]
    fn the_masters_are_read_from_cluster_nodes() {
        let nodes = "\
d49 127.0.0.1:35177@45177 master - 0 1796408989827 1 connected 0-5460
e65 127.0.0.1:47525@57525,node-c myself,master - 0 0 3 connected 10923-16383
f8e 127.0.0.1:45223@55223 slave d49 0 1796408989000 2 connected
";
        assert_eq!(
            masters(nodes),
            ["redis://127.0.0.1:35177", "redis://127.0.0.1:47525"]
        );
    }

    #[test]
    fn the_pattern_matches_the_prefix_literally() {
        assert_eq!(prefix_pattern("it:a*b?[c]\\:"), "it:a\\*b\\?\\[c\\]\\\\:*");
    }
}
