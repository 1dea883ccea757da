//! An origin over a Redis Cluster of its own (three masters this test starts, stops and starts
//! again on free ports; the shared servers are never touched): down when the origin starts, up,
//! gone, back. Throughout, every request is answered from PostgreSQL and in-process state
//! within the budget and each failed Redis call is counted; once the cluster answers, the
//! origin uses it again without a restart: `/readyz` is `200`, no call fails, and a failed
//! login is counted in the (restarted, empty) cluster.
//!
//! The cache and rate-limit suites also run on the shared test cluster (`redis_test!` in
//! [`crate::cache`] and [`crate::ratelimit`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::helpers::{Api as _, TestApp, TestUser, free_port, spawn_app_with, unique_name};

/// The slowest answer accepted from an origin whose cluster is gone.
const DOWN_BUDGET: Duration = Duration::from_secs(2);
/// How long the cluster and the origin get to find each other.
const SETTLE: Duration = Duration::from_secs(20);

/// Three `redis-server --cluster-enabled yes` children on loopback ports whose cluster bus
/// ports (+10000) are free too, keeping their cluster configuration in a directory of their
/// own; stopped, and the directory removed, when dropped.
struct PrivateCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    servers: Vec<Child>,
}

impl PrivateCluster {
    /// Picks the ports; nothing runs yet.
    fn new() -> Self {
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            let bus_free =
                port < 55_536 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
            if bus_free && !ports.contains(&port) {
                ports.push(port);
            }
        }
        let dir =
            std::env::temp_dir().join(format!("users-it-cluster-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        Self {
            ports,
            dir,
            servers: Vec::new(),
        }
    }

    /// `REDIS_CLUSTER_URLS` of this cluster.
    fn urls(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        urls.join(",")
    }

    /// Starts the three servers (with the configuration of an earlier start, if any).
    fn start_servers(&mut self) {
        for port in &self.ports {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(self.dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&self.dir)
                .args(["--save", "", "--appendonly", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("start redis-server (apt-get install redis-server): {e}")
                });
            self.servers.push(child);
        }
        for port in &self.ports {
            wait_until(&format!("redis-server on {port} answers"), || {
                cli(&["-p", &port.to_string(), "ping"]).is_some_and(|out| out.trim() == "PONG")
            });
        }
    }

    /// Joins the three fresh servers into one cluster (every slot on a master).
    fn create(&self) {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        cli(&args).expect("redis-cli --cluster create");
    }

    /// Waits until every node says `cluster_state:ok`.
    fn wait_ok(&self) {
        wait_until("cluster_state:ok on every node", || {
            self.ports.iter().all(|p| {
                cli(&["-p", &p.to_string(), "cluster", "info"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            })
        });
    }

    /// Kills the servers (their cluster configuration stays for the next start).
    fn stop(&mut self) {
        for mut child in self.servers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli args…`'s standard output, if it exits successfully.
fn cli(args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `done` every 100 ms for [`SETTLE`] at most; panics naming `what` after that.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {SETTLE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a blocking cluster step off the runtime the origin serves on.
async fn blocking<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(step)
        .await
        .expect("the cluster step")
}

/// `users_redis_errors_total` of the app.
async fn redis_errors(app: &TestApp) -> f64 {
    app.metrics().await.sum("users_redis_errors_total", &[])
}

/// Reads `user`'s own view twice, each within [`DOWN_BUDGET`].
async fn read_twice(app: &TestApp, user: &TestUser) {
    for _ in 0..2 {
        let start = Instant::now();
        app.as_user(user).me().await.expect_status(200);
        let took = start.elapsed();
        assert!(took < DOWN_BUDGET, "GET /users/me took {took:?}");
    }
}

/// Fails a login and reads until no Redis call fails, `/readyz` answers `200` and the failure
/// is counted on the cluster of `urls` ([`SETTLE`] at most).
async fn wait_for_redis(app: &TestApp, user: &TestUser, urls: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let before = redis_errors(app).await;
        let ghost = unique_name("ghost");
        let failed_login = app.login_raw(&ghost, "not-the-password-000000").await;
        failed_login.assert_problem(401, "invalid-credentials");
        read_twice(app, user).await;
        let failed = redis_errors(app).await - before;
        let ready = app.get("/readyz").send().await.status;
        let keys = users_harness::keys::cluster_keys(urls, app.redis_prefix()).await;
        let counted = keys
            .as_ref()
            .is_ok_and(|keys| keys.iter().any(|k| k.ends_with(&format!("lf:{ghost}"))));
        if failed == 0.0 && ready == 200 && counted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis not used again within {SETTLE:?}: {failed} failed calls, /readyz {ready}, \
             keys {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_outlives_its_cluster_and_uses_it_again_when_it_returns() {
    let mut cluster = PrivateCluster::new();
    let urls = cluster.urls();
    // Down at start: the origin starts, and serves.
    let app = spawn_app_with(|vars| {
        vars.remove("REDIS_URL");
        vars.insert("REDIS_CLUSTER_URLS".into(), urls.clone());
    })
    .await;
    let user = app.new_user().await;
    read_twice(&app, &user).await;
    let errors_down = redis_errors(&app).await;
    let ready_down = app.get("/readyz").send().await.status;

    // Up: used without a restart.
    cluster = blocking(move || {
        cluster.start_servers();
        cluster.create();
        cluster.wait_ok();
        cluster
    })
    .await;
    wait_for_redis(&app, &user, &urls).await;

    // Gone: still served; back (the same nodes, empty): used again.
    cluster = blocking(move || {
        cluster.stop();
        cluster
    })
    .await;
    read_twice(&app, &user).await;
    let errors_before = redis_errors(&app).await;
    read_twice(&app, &user).await;
    let errors_gone = redis_errors(&app).await;
    let ready_gone = app.get("/readyz").send().await.status;
    cluster = blocking(move || {
        cluster.start_servers();
        cluster.wait_ok();
        cluster
    })
    .await;
    wait_for_redis(&app, &user, &urls).await;

    assert!(
        errors_down >= 1.0,
        "failed calls are counted: {errors_down}"
    );
    assert_eq!(ready_down, 503, "/readyz while the cluster is down");
    assert!(
        errors_gone > errors_before,
        "{errors_before} → {errors_gone}"
    );
    assert_eq!(ready_gone, 503, "/readyz while the cluster is gone");
    drop(cluster);
}
