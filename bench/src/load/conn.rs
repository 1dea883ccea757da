//! One load worker's HTTP/1.1 connection: hyper's client connection, with no pool in front of
//! it. A worker has one request in flight at a time, so it needs exactly one connection; it is
//! opened on the first request, kept alive, and opened again after an error or after the
//! server closed it. Every worker's connection is its own, as wrk's are, and is driven by the
//! worker's own task.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The longest a request may take, answer and body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Request,
    Body,
    Timeout,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Request => "request",
            Self::Body => "body",
            Self::Timeout => "timeout",
        }
    }
}

/// A worker's connection to `addr` (`host:port`).
pub struct Conn {
    addr: String,
    live: Option<Live>,
}

/// An open connection: the handle requests go in by, and the connection itself, which the
/// worker's own task drives while a request is out (no task of its own: no hand-off between
/// tasks on every request).
struct Live {
    sender: SendRequest<Body>,
    /// `None` once it ended.
    conn: Option<Pin<Box<Connection>>>,
}

type Connection = http1::Connection<TokioIo<TcpStream>, Body>;

type Body = Full<Bytes>;

/// How one request on one connection ended.
enum Outcome {
    Answer(u16, Bytes),
    /// Refused before it went out (the connection had closed): safe to send again.
    Unsent(Box<Request<Body>>),
    Failed(Failure),
}

impl Conn {
    pub fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            live: None,
        }
    }

    /// Sends `req` and reads the whole answer: its status and body.
    pub async fn send(&mut self, req: Request<Bytes>) -> Result<(u16, Bytes), Failure> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => {
                self.live = None;
                Err(failure)
            }
            Err(_) => {
                self.live = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn exchange(&mut self, req: Request<Bytes>) -> Result<(u16, Bytes), Failure> {
        let req = req.map(Full::new);
        // The server may have closed the kept connection since the last answer: a request that
        // never went out on it goes out again on a new connection, once.
        let req = match self
            .live
            .take()
            .filter(|l| l.conn.is_some() && !l.sender.is_closed())
        {
            Some(mut live) => match live.exchange(req).await {
                Outcome::Answer(status, body) => {
                    self.live = Some(live);
                    return Ok((status, body));
                }
                Outcome::Unsent(req) => *req,
                Outcome::Failed(failure) => return Err(failure),
            },
            None => req,
        };
        let mut live = self.connect().await?;
        match live.exchange(req).await {
            Outcome::Answer(status, body) => {
                self.live = Some(live);
                Ok((status, body))
            }
            Outcome::Unsent(_) => Err(Failure::Request),
            Outcome::Failed(failure) => Err(failure),
        }
    }

    async fn connect(&self) -> Result<Live, Failure> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|_| Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Failure::Connect)?;
        Ok(Live {
            sender,
            conn: Some(Box::pin(conn)),
        })
    }
}

impl Live {
    /// Sends `req` and reads its answer, driving the connection meanwhile. A connection that
    /// ends (closed or failed) first is dropped, which ends the request at once: with its answer
    /// if one came, else unsent or failed.
    async fn exchange(&mut self, req: Request<Body>) -> Outcome {
        let Some(mut conn) = self.conn.take() else {
            return Outcome::Unsent(Box::new(req));
        };
        let ready = tokio::select! {
            biased;
            ready = self.sender.ready() => ready.is_ok(),
            _ = &mut conn => false,
        };
        if !ready {
            return Outcome::Unsent(Box::new(req));
        }
        let sender = &mut self.sender;
        let work = async move {
            let resp = match sender.try_send_request(req).await {
                Ok(resp) => resp,
                Err(mut e) => {
                    return e
                        .take_message()
                        .map_or(Outcome::Failed(Failure::Request), |req| {
                            Outcome::Unsent(Box::new(req))
                        });
                }
            };
            match read(resp).await {
                Ok((status, body)) => Outcome::Answer(status, body),
                Err(failure) => Outcome::Failed(failure),
            }
        };
        tokio::pin!(work);
        let done = tokio::select! {
            biased;
            outcome = &mut work => Some(outcome),
            _ = &mut conn => None,
        };
        match done {
            Some(outcome) => {
                self.conn = Some(conn);
                outcome
            }
            None => {
                drop(conn);
                work.await
            }
        }
    }
}

/// The status and the whole body of an answer.
async fn read(resp: Response<Incoming>) -> Result<(u16, Bytes), Failure> {
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| Failure::Body)?
        .to_bytes();
    Ok((status, body))
}
