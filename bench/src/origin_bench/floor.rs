//! The latency floor: the same load generator, at the same rates, against a server that does no
//! work — axum on the origin's runtime, answering every request with the cached read's own bytes.
//! What is left of its tail belongs to the machine (the scheduler, the other tenants of a shared
//! VM) and to the client, not to the origin; the cached read's figures are read against it.

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::args::OPEN_CONNECTIONS;
use super::env::Env;
use super::scenario::measured;
use crate::load::{self, RunStats, Target};

/// The empty server at each of `rates` (req/s), answering `body` as `application/json`.
pub async fn floor(env: &Env, body: Bytes, rates: &[f64]) -> anyhow::Result<Vec<RunStats>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/floor", listener.local_addr()?);
    let app = Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(CONTENT_TYPE, "application/json")], body) }
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = env.origin_runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let target = Target::get(200, &url, None)?;
    let runs = async {
        target.probe("floor").await?;
        let mut runs = Vec::new();
        for &rate in rates {
            let stats = measured(
                env,
                load::open(&target, rate, env.args.duration(), OPEN_CONNECTIONS),
                |_| format!("floor (a server that does no work): at {rate:.0} req/s"),
            )
            .await;
            runs.push(stats);
            tokio::time::sleep(env.args.pause()).await;
        }
        Ok::<_, anyhow::Error>(runs)
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    runs
}
