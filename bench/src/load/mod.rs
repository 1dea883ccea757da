//! The HTTP load generator: closed-loop saturation and open-loop fixed rate.
//!
//! Latencies go into HDR histograms (1 µs … 120 s, 3 significant digits), one per status code
//! (`0` = transport error). In the open loop each request has a scheduled send time, is sent
//! no earlier, and its latency is measured from that time, so a slow server cannot slow the
//! arrival of requests and hide its own queueing (no coordinated omission).
//!
//! [`Target`] says what to send; [`closed`] and [`open`] drive it, each worker over its own
//! keep-alive connection (`conn`: hyper's HTTP/1.1 client connection, no pool, a request built
//! from parts made once, so the generator spends as little of the shared cores as it can);
//! `stats` keeps what came back and turns it into [`RunStats`].

mod conn;
mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Uri};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use self::conn::Conn;
use self::stats::Recorder;
pub use self::stats::{Latency, RunStats};
use crate::figures::round3;

/// Builds the request with sequence number `k` of a target (an origin-form URI: path and query).
pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Bytes> + Send + Sync>;

/// What to send, where, and what answer counts as success.
#[derive(Clone)]
pub struct Target {
    /// The server's `host:port`.
    addr: Arc<str>,
    host: HeaderValue,
    pub make: MakeRequest,
    pub expect: u16,
    /// Next sequence number; shared by every run of the target so ids never repeat.
    pub seq: Arc<AtomicU64>,
}

/// `GET path` with `authorization` (when given).
pub fn get(path: &Uri, authorization: Option<&HeaderValue>) -> Request<Bytes> {
    let mut req = Request::new(Bytes::new());
    *req.uri_mut() = path.clone();
    if let Some(auth) = authorization {
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
    }
    req
}

/// `POST path` with a JSON body.
pub fn post_json(path: &Uri, body: String) -> Request<Bytes> {
    let mut req = Request::new(Bytes::from(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = path.clone();
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    req
}

/// `Bearer <token>` as a header value.
pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    HeaderValue::try_from(format!("Bearer {token}")).context("a token fit for a header")
}

/// The server (`host:port`) and the origin-form URI (path and query) of an absolute `url`.
pub fn split_url(url: &str) -> anyhow::Result<(String, Uri)> {
    let uri: Uri = url.parse().with_context(|| format!("URL {url}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("URL {url} names no server"))?
        .to_string();
    let path = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .with_context(|| format!("path of {url}"))?;
    Ok((authority, path))
}

impl Target {
    /// Requests `make(k)` to the server of `base` (`http://host:port`, any path ignored).
    pub fn new(
        expect: u16,
        base: &str,
        make: impl Fn(u64) -> Request<Bytes> + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let (addr, _) = split_url(base)?;
        let host = HeaderValue::try_from(addr.as_str()).context("a server name fit for Host")?;
        Ok(Self {
            addr: addr.into(),
            host,
            make: Arc::new(make),
            expect,
            seq: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The same `GET` of `url` every time, with `authorization` (when given).
    pub fn get(expect: u16, url: &str, authorization: Option<HeaderValue>) -> anyhow::Result<Self> {
        let (_, path) = split_url(url)?;
        Self::new(expect, url, move |_| get(&path, authorization.as_ref()))
    }

    /// The next request of this target, addressed to its server.
    fn next_request(&self) -> Request<Bytes> {
        let k = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut req = (self.make)(k);
        req.headers_mut().insert(HOST, self.host.clone());
        req
    }

    /// A connection of one worker to this target's server.
    fn conn(&self) -> Conn {
        Conn::new(&self.addr)
    }

    /// Sends one request over `conn`; returns its status (`0` on a transport error) and, for
    /// errors, the problem `type` (or the transport failure).
    async fn send(&self, conn: &mut Conn) -> (u16, Option<String>) {
        match conn.send(self.next_request()).await {
            Ok((status, body)) if status >= 400 => {
                let kind = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(no problem type)".to_owned());
                (status, Some(format!("{status} {kind}")))
            }
            Ok((status, _)) => (status, None),
            Err(failure) => (0, Some(format!("transport: {}", failure.as_str()))),
        }
    }

    /// Sends one request and fails unless it gets the expected status: a check before a run.
    pub async fn probe(&self, what: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .conn()
            .send(self.next_request())
            .await
            .map_err(|f| anyhow!("{what}: transport: {}", f.as_str()))?;
        if status != self.expect {
            bail!(
                "{what}: expected {}, got {status}: {}",
                self.expect,
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("expect", &self.expect)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// `concurrency` workers each send a request, wait for the answer, and send the next, until
/// `duration` has passed.
pub async fn closed(target: &Target, concurrency: usize, duration: Duration) -> RunStats {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let target = target.clone();
        set.spawn(async move {
            let (mut rec, mut conn) = (Recorder::default(), target.conn());
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let (status, error) = target.send(&mut conn).await;
                rec.record(status, t0.elapsed(), error);
            }
            (rec, Instant::now())
        });
    }
    let mut rec = Recorder::default();
    let mut end = start;
    while let Some(joined) = set.join_next().await {
        if let Ok((r, done)) = joined {
            rec.merge(r);
            end = end.max(done);
        }
    }
    let mut stats = RunStats::from(&rec, target.expect, end - start);
    stats.concurrency = Some(concurrency);
    stats
}

/// The pacer's shortest sleep. Requests that fall due meanwhile are released together: about
/// 2.5 at a time at 25 000 req/s, where tokio's timer (1 ms ticks) would release 25 at once.
const PACE: Duration = Duration::from_micros(100);

/// Sends `rate` requests per second for `duration` on a fixed schedule, whatever the answers,
/// from at most `connections` requests in flight (as wrk2 does).
///
/// A pacer on a thread of its own releases each request at its scheduled time, to within
/// [`PACE`] (a thread's sleep, not the async timer's millisecond ticks, so arrivals are as
/// even as the schedule). Each of `connections` workers takes the next released request, sends
/// it, and records its latency from the scheduled time: a request that waits for a free
/// worker counts that wait, so a slow answer still counts the delay of every request behind it
/// (no coordinated omission). The client never opens more than `connections` connections: a
/// stall cannot snowball into a storm of new connections that measures the client rather than
/// the server.
pub async fn open(target: &Target, rate: f64, duration: Duration, connections: usize) -> RunStats {
    let rate = rate.max(0.1);
    let n = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(5);
    let scheduled = move |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    let due = Arc::new(Semaphore::new(0));
    let pacer = {
        let due = Arc::clone(&due);
        tokio::task::spawn_blocking(move || {
            let mut released = 0_u64;
            while released < n {
                let elapsed = Instant::now().saturating_duration_since(start);
                let upto = if elapsed.is_zero() {
                    0
                } else {
                    ((elapsed.as_secs_f64() * rate).floor() as u64 + 1).min(n)
                };
                if upto > released {
                    due.add_permits(usize::try_from(upto - released).unwrap_or(usize::MAX));
                    released = upto;
                }
                if released < n {
                    let wait = scheduled(released).saturating_duration_since(Instant::now());
                    std::thread::sleep(wait.max(PACE));
                }
            }
        })
    };
    let next = Arc::new(AtomicU64::new(0));
    let max_lag_us = Arc::new(AtomicU64::new(0));
    let last_sent = Arc::new(Mutex::new(start));
    let mut set = JoinSet::new();
    for _ in 0..connections.max(1) {
        let (target, next, due) = (target.clone(), Arc::clone(&next), Arc::clone(&due));
        let (max_lag_us, last_sent) = (Arc::clone(&max_lag_us), Arc::clone(&last_sent));
        set.spawn(async move {
            let (mut rec, mut conn) = (Recorder::default(), target.conn());
            // Closed once the last request is taken: the other workers then stop waiting.
            while let Ok(permit) = due.acquire().await {
                permit.forget();
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i + 1 >= n {
                    due.close();
                }
                if i >= n {
                    break;
                }
                let at = scheduled(i);
                let now = Instant::now();
                // The pacer's lateness and the wait for a free worker.
                let lag = now.saturating_duration_since(at);
                max_lag_us.fetch_max(
                    u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                if i + 1 == n
                    && let Ok(mut t) = last_sent.lock()
                {
                    *t = now;
                }
                let (status, error) = target.send(&mut conn).await;
                rec.record(status, at.elapsed(), error);
            }
            (rec, Instant::now())
        });
    }
    let mut rec = Recorder::default();
    let mut end = start;
    while let Some(joined) = set.join_next().await {
        if let Ok((r, done)) = joined {
            rec.merge(r);
            end = end.max(done);
        }
    }
    let _ = pacer.await;
    let dispatched = last_sent.lock().map(|t| *t).unwrap_or(end);
    let mut stats = RunStats::from(&rec, target.expect, end.saturating_duration_since(start));
    stats.mode = "open".to_owned();
    stats.target_rps = Some(round3(rate));
    stats.sent_rps = Some(round3(
        n as f64
            / dispatched
                .saturating_duration_since(start)
                .as_secs_f64()
                .max(1e-9),
    ));
    stats.max_send_lag_ms = Some(round3(max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0));
    stats.concurrency = Some(connections);
    stats
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// What the test server saw: connections accepted, and each request's head.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        heads: Mutex<Vec<String>>,
    }

    /// A server that answers every request `404` with a problem when its path is `/missing`,
    /// `200` otherwise, and closes each connection after its third answer.
    async fn server() -> (String, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Seen::default());
        let state = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for answered in 1..=3 {
                        let head = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                                buf.drain(..end + 4);
                                break head;
                            }
                            let mut chunk = [0_u8; 1024];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let (status, body) = if head.starts_with("GET /missing ") {
                            ("404 Not Found", r#"{"type":"/problems/not-found"}"#)
                        } else {
                            ("200 OK", "ok")
                        };
                        state.heads.lock().unwrap().push(head);
                        let close = if answered == 3 {
                            "connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{close}\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[test]
    fn split_url_gives_the_server_and_the_origin_form() {
        let (addr, path) = split_url("http://127.0.0.1:8080/users?limit=20").unwrap();
        assert_eq!(
            (addr.as_str(), path.to_string().as_str()),
            ("127.0.0.1:8080", "/users?limit=20")
        );
        assert_eq!(split_url("http://h:1").unwrap().1, "/");
        assert!(split_url("/no/server").is_err());
    }

    #[tokio::test]
    async fn a_worker_keeps_its_connection_and_opens_another_when_the_server_closes_it() {
        let (base, seen) = server().await;
        let target =
            Target::get(200, &format!("{base}/p?q=1"), Some(bearer("t0k").unwrap())).unwrap();
        let stats = closed(&target, 1, Duration::from_millis(200)).await;
        assert!(stats.requests >= 6, "{stats:?}");
        assert_eq!((stats.errors, stats.ok), (0, stats.requests), "{stats:?}");
        // One connection per three answers: kept alive, reopened after each close.
        let connections = seen.connections.load(Ordering::SeqCst) as u64;
        assert_eq!(connections, stats.requests.div_ceil(3), "{stats:?}");
        let heads = seen.heads.lock().unwrap();
        let host = base.trim_start_matches("http://");
        for head in heads.iter() {
            let head = head.to_ascii_lowercase();
            assert!(head.starts_with("get /p?q=1 http/1.1\r\n"), "{head}");
            assert!(head.contains(&format!("\r\nhost: {host}")), "{head}");
            assert!(head.contains("\r\nauthorization: bearer t0k"), "{head}");
        }
    }

    #[tokio::test]
    async fn unexpected_answers_and_transport_failures_are_counted_by_kind() {
        let (base, _) = server().await;
        let missing = Target::get(200, &format!("{base}/missing"), None).unwrap();
        let stats = closed(&missing, 2, Duration::from_millis(100)).await;
        assert!(stats.requests > 0);
        assert_eq!(stats.ok, 0);
        assert_eq!(stats.error_kinds["404 /problems/not-found"], stats.requests);
        assert!(missing.probe("missing").await.is_err());

        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let gone = Target::get(200, &format!("http://127.0.0.1:{port}/"), None).unwrap();
        let stats = open(&gone, 200.0, Duration::from_millis(100), 4).await;
        assert_eq!(stats.requests, 20, "{stats:?}");
        assert_eq!(stats.error_kinds["transport: connect"], 20, "{stats:?}");
    }
}
