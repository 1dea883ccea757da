//! The origin, started in-process on a tokio runtime of the caller's choice: configured from a
//! map of the environment variables it reads (through `Config::from_lookup`, so the process's
//! own environment plays no part), built (migrations, keys, admin bootstrap, bind) and served
//! on that runtime until it is stopped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::anyhow;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The origin's configuration from `vars` alone.
pub fn config(vars: &HashMap<String, String>) -> anyhow::Result<users_origin::Config> {
    users_origin::Config::from_lookup(|k| vars.get(k).cloned()).map_err(|e| anyhow!("{e}"))
}

/// A running origin; dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct InProcessOrigin {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

impl InProcessOrigin {
    /// Builds the origin configured by `vars` and serves it on `runtime`.
    pub async fn start(runtime: &Handle, vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        Self::start_with(runtime, config(vars)?).await
    }

    /// Builds the origin with `config` and serves it on `runtime`.
    pub async fn start_with(
        runtime: &Handle,
        config: users_origin::Config,
    ) -> anyhow::Result<Self> {
        let (addr_tx, addr_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let server = runtime.spawn(async move {
            let app = users_origin::Application::build(config).await?;
            let _ = addr_tx.send(app.local_addr());
            app.run_with_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
        });
        match addr_rx.await {
            Ok(addr) => Ok(Self { addr, stop, server }),
            Err(_) => Err(match server.await {
                Ok(Err(e)) => e.context("the origin did not start"),
                Ok(Ok(())) => anyhow!("the origin stopped at once"),
                Err(e) => anyhow!("the origin panicked: {e}"),
            }),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets the server run for as long as its runtime does.
    pub fn detach(self) {
        // Without a send or a drop of the sender, the shutdown signal never completes.
        std::mem::forget(self.stop);
    }

    /// Asks the server to stop and waits up to 30 s for it to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(30), self.server).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(e.context("the origin stopped with an error")),
            Ok(Err(e)) => Err(anyhow!("the origin panicked: {e}")),
            Err(_) => Err(anyhow!("the origin did not stop within 30 s")),
        }
    }
}
