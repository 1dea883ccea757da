//! The HTTP/1.1 front: accept loop, request translation, one guest call per
//! request.
//!
//! Per request: a fresh `Store` and instance from the shared `ServicePre`;
//! hyper's request becomes a wasi:http 0.3 request (absolute URI rebuilt,
//! Spin's `spin-*` headers replaced by trusted ones); `handle` runs inside
//! `run_concurrent`, which also collects the whole response body, because the
//! guest writes the body from tasks that only make progress while the store's
//! event loop runs. A trap or an `error-code` becomes a problem+json `500`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;

use crate::logs::Logs;
use crate::state::{Ctx, KvMaps, Variables};

/// Headers Spin sets itself; a client's copies are never passed on.
const SPIN_HEADERS: [&str; 7] = [
    "spin-client-addr",
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-base-path",
];
const SPIN_CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");
const SPIN_FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");

/// The RFC 9457 body of every host-made `500`.
const PROBLEM_500: &str = r#"{"type":"about:blank","title":"Internal Server Error","status":500}"#;

/// What every connection of one host shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) pre: ServicePre<Ctx>,
    pub(crate) kv: KvMaps,
    pub(crate) variables: Variables,
    pub(crate) logs: Logs,
    /// The bound address: the authority when a request has no usable `Host`.
    pub(crate) local: SocketAddr,
}

/// Accepts connections until `shutdown` fires (or its sender is dropped).
/// Returning drops the listener and aborts every open connection.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&shared)));
                }
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    shared.logs.host(format_args!("accept failed: {err}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let service = service_fn(|req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, peer, req).await) }
    });
    let served = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(err) = served
        && !err.is_incomplete_message()
    {
        shared
            .logs
            .host(format_args!("connection from {peer}: {err}"));
    }
}

/// Runs one request through a fresh guest instance; never fails.
async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    // Method and path only: headers carry tokens, queries may too.
    let what = format!("{} {}", req.method(), req.uri().path());
    match call_guest(shared, peer, req).await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => {
            let msg = format!("{what}: guest returned error-code {code:?}");
            shared.logs.host(format_args!("{msg}"));
            problem_500()
        }
        Err(err) => {
            shared
                .logs
                .host(format_args!("{what}: guest failed: {err:?}"));
            problem_500()
        }
    }
}

async fn call_guest(
    shared: &Shared,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> wasmtime::Result<Result<Response<Full<Bytes>>, ErrorCode>> {
    let req = to_guest_request(req, peer, shared.local)?;
    let ctx = Ctx::new(
        Arc::clone(&shared.kv),
        Arc::clone(&shared.variables),
        &shared.logs,
    );
    let mut store = Store::new(&shared.engine, ctx);
    let service = shared.pre.instantiate_async(&mut store).await?;
    let (request, request_io) =
        wasmtime_wasi_http::p3::Request::from_http(wasmtime_wasi_http::default_hooks(), req);
    store
        .run_concurrent(async move |accessor| {
            let response = match service.handle(accessor, request).await? {
                Ok(response) => response,
                Err(code) => return Ok(Err(code)),
            };
            let response = accessor.with(|access| response.into_http(access, request_io))?;
            let (parts, body) = response.into_parts();
            // Still inside `run_concurrent`: the guest streams the body from
            // its own tasks, which stop when the event loop stops.
            let body = body
                .collect()
                .await
                .map_err(|err| wasmtime::format_err!("reading the response body: {err}"))?
                .to_bytes();
            Ok(Ok(Response::from_parts(parts, Full::new(body))))
        })
        .await?
}

/// hyper's request as the guest must see it: an absolute `http://` URI (hyper
/// gives only the path) and Spin's trusted headers in place of the client's.
fn to_guest_request<B>(
    req: Request<B>,
    peer: SocketAddr,
    local: SocketAddr,
) -> wasmtime::Result<Request<B>> {
    let (mut parts, body) = req.into_parts();
    let authority = parts
        .headers
        .get(HOST)
        .and_then(|host| Authority::try_from(host.as_bytes()).ok())
        .or_else(|| parts.uri.authority().cloned())
        .map_or_else(|| Authority::try_from(local.to_string()), Ok)?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()?;

    for name in SPIN_HEADERS {
        parts.headers.remove(name);
    }
    parts
        .headers
        .insert(SPIN_CLIENT_ADDR, HeaderValue::try_from(peer.to_string())?);
    parts
        .headers
        .insert(SPIN_FULL_URL, HeaderValue::try_from(parts.uri.to_string())?);
    Ok(Request::from_parts(parts, body))
}

fn problem_500() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(PROBLEM_500.as_bytes())));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "192.0.2.7:51000";
    const LOCAL: &str = "127.0.0.1:3000";

    fn guest_request(req: http::request::Builder) -> Request<()> {
        let req = req.body(()).unwrap();
        to_guest_request(req, PEER.parse().unwrap(), LOCAL.parse().unwrap()).unwrap()
    }

    #[test]
    fn rebuilds_an_absolute_uri_from_the_host_header() {
        let req = guest_request(
            Request::get("/users/me?fields=a%20b").header(HOST, "api.example.test:8443"),
        );
        let url = "http://api.example.test:8443/users/me?fields=a%20b";
        assert_eq!(req.uri().to_string(), url);
        assert_eq!(req.headers()[&SPIN_FULL_URL], url);
    }

    #[test]
    fn falls_back_to_the_listen_address() {
        let req = guest_request(Request::get("/").header(HOST, "not a host"));
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:3000/");
        let req = guest_request(Request::get("/health"));
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:3000/health");
    }

    #[test]
    fn replaces_client_sent_spin_headers() {
        let mut req = Request::get("/").header(HOST, "h");
        for name in SPIN_HEADERS {
            req = req.header(name, "spoofed");
        }
        let req = guest_request(req.header("spin-client-addr", "6.6.6.6:1"));
        assert_eq!(req.headers().get_all(&SPIN_CLIENT_ADDR).iter().count(), 1);
        assert_eq!(req.headers()[&SPIN_CLIENT_ADDR], PEER);
        assert_eq!(req.headers()[&SPIN_FULL_URL], "http://h/");
        for name in &SPIN_HEADERS[2..] {
            assert!(!req.headers().contains_key(*name), "{name}");
        }
    }

    #[test]
    fn problem_is_rfc9457_json() {
        let res = problem_500();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
        let body: &[u8] = PROBLEM_500.as_bytes();
        assert_eq!(
            body,
            br#"{"type":"about:blank","title":"Internal Server Error","status":500}"#
        );
    }
}
