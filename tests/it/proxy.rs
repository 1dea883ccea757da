//! A TCP proxy that lets a test take a dependency away from one origin without touching the
//! shared server: point `REDIS_URL` or `DATABASE_URL` at [`TcpProxy::addr`], then
//! [`TcpProxy::cut`] (every open connection is closed, new ones are dropped as soon as they are
//! accepted), [`TcpProxy::blackhole`] (connections stay open but nothing passes: a dependency
//! that hangs) and [`TcpProxy::restore`].

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Close every connection, and every new one at once.
    Cut,
    /// Keep connections open but forward nothing.
    Blackhole,
}

/// A running proxy; stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, _) = watch::channel(Mode::Open);
        let modes = mode.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(inbound, target, modes.subscribe()));
            }
        });
        Self { addr, mode, accept }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection; new ones are closed as soon as they are accepted.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Stops forwarding but keeps connections (and accepts new ones) open: the peer hangs.
    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    /// Forwards again (connections held by a blackhole are closed).
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Ends every connection task: their receivers see the sender gone.
        self.mode.send_replace(Mode::Cut);
    }
}

/// One accepted connection, for as long as the mode allows.
async fn serve(mut inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let initial = *mode.borrow_and_update();
    match initial {
        Mode::Cut => return,
        Mode::Blackhole => {
            // Hold the connection, silent, until the mode changes; then close it.
            let _ = mode.changed().await;
            return;
        }
        Mode::Open => {}
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let stopped = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => None,
        m = mode.wait_for(|m| *m != Mode::Open) => Some(m.map_or(Mode::Cut, |m| *m)),
    };
    if stopped == Some(Mode::Blackhole) {
        // Forward nothing more, but keep both sides open until the mode changes again.
        let _ = mode.changed().await;
    }
    let _ = inbound.shutdown().await;
}
