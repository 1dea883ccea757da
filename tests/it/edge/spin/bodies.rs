//! Bodies through the Spin component, against a hand-written origin ([`split_write_origin`]):
//! a response body sent after its headers reaches the client whole, and a request body over
//! the limit is refused whether its length is declared or it arrives chunked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::Spin;
use crate::edge::EdgeRuntime as _;
use crate::edge::scenarios::edge_vars;
use crate::helpers::{Api as _, Endpoint};

/// An origin that answers every request with its headers, then — after a pause, in a
/// separate write — a body echoing the request's body with padding (marked as a stub's: the
/// traffic log leaves it out). Returns its URL and the
/// number of requests it has read.
async fn split_write_origin(pause: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("an address");
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let received = String::from_utf8_lossy(&buf[head_end..head_end + length]);
                let body = json!({"received": received, "padding": "x".repeat(20_000)}).to_string();
                let headers = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}: 1\r\nconnection: close\r\n\r\n",
                    body.len(),
                    crate::helpers::STUB_HEADER
                );
                if socket.write_all(headers.as_bytes()).await.is_err()
                    || socket.flush().await.is_err()
                {
                    return;
                }
                tokio::time::sleep(pause).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), served)
}

/// A body that reaches the edge in a later TCP segment than its headers is forwarded whole
/// (the component keeps the outgoing request alive until the response body is read).
#[tokio::test(flavor = "multi_thread")]
async fn an_origin_body_sent_after_its_headers_reaches_the_client() {
    let (origin, _) = split_write_origin(Duration::from_millis(150)).await;
    let edge = Spin.start(&origin, &edge_vars(&[])).await;
    let client = Endpoint::new(&edge.address);
    for attempt in 1..=3 {
        let payload = json!({"login": format!("someone-{attempt}"), "password": "irrelevant"});
        let reply = client.post("/auth/login").json(&payload).send().await;
        let body: Value = reply.expect_json(200);
        assert_eq!(
            body["padding"].as_str().map(str::len),
            Some(20_000),
            "attempt {attempt}: the whole body arrived"
        );
        let received: Value = serde_json::from_str(body["received"].as_str().unwrap_or(""))
            .unwrap_or_else(|_| panic!("the origin received JSON: {body}"));
        assert_eq!(
            received, payload,
            "attempt {attempt}: the request body went out whole"
        );
    }
}

/// Request bodies over the origin's 64 KiB limit are refused at the edge with `413`, whether
/// the length is declared or the body arrives chunked, and never reach the origin; one at the
/// limit goes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_oversized_body_is_refused_before_it_is_read_whole() {
    let (origin, served) = split_write_origin(Duration::ZERO).await;
    let edge = Spin.start(&origin, &edge_vars(&[])).await;
    let client = Endpoint::new(&edge.address);
    let login = |body: String| {
        client
            .post("/auth/login")
            .typed_body("application/json", body)
            .send()
    };
    // `{"p":"…"}` of exactly 64 KiB, then one byte more.
    let at_limit = format!(r#"{{"p":"{}"}}"#, "x".repeat(64 * 1024 - 8));
    assert_eq!(at_limit.len(), 64 * 1024);
    let over = format!(r#"{{"p":"{}"}}"#, "x".repeat(64 * 1024 - 7));

    login(over).await.assert_problem(413, "payload-too-large");
    assert_eq!(served.load(Ordering::SeqCst), 0, "the origin saw nothing");

    // Chunked, no Content-Length: refused once the running total passes the limit.
    let addr = client.host_port().to_owned();
    let mut socket = TcpStream::connect(&addr)
        .await
        .expect("connect to the edge");
    let head = format!(
        "POST /auth/login HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    socket
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let chunk = "y".repeat(16 * 1024);
    for _ in 0..5 {
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        socket
            .write_all(framed.as_bytes())
            .await
            .expect("send a chunk");
    }
    socket.write_all(b"0\r\n\r\n").await.expect("end the body");
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "a 413 for 80 KiB sent chunked, got: {answer}"
    );
    assert!(answer.contains("payload-too-large"), "{answer}");
    assert_eq!(served.load(Ordering::SeqCst), 0, "the origin saw nothing");

    let ok = login(at_limit).await;
    assert_eq!(ok.status, 200, "{ok}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "the body at the limit was forwarded"
    );
}
