//! The alerting rules (`deploy/prometheus/alerts.yml`) in a real Prometheus against a real
//! origin: Prometheus (Debian's `prometheus` package, started here on a free port with its own
//! data directory, a 1 s scrape and evaluation interval) scrapes the origin; cutting the
//! origin's Redis through the [`TcpProxy`] makes `UsersRedisFallback` fire in Prometheus'
//! `/api/v1/alerts`, and restoring Redis resolves it. The rule file is loaded as committed,
//! `for:` included, so the test takes a little over a minute.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use users_harness::process::ProcessGroup;
use uuid::Uuid;

use crate::helpers::{Api as _, TestApp, spawn_app_set};
use crate::proxy::TcpProxy;
use crate::testdb::redis_url;

/// The alert a Redis outage raises.
const REDIS_ALERT: &str = "UsersRedisFallback";
/// How long Prometheus may take to start and to scrape the origin once.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long the alert may take to fire: its `for: 1m`, plus scrapes and evaluations, plus
/// room for a busy machine.
const FIRE_DEADLINE: Duration = Duration::from_secs(180);
/// How long the alert may take to resolve once Redis is back.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(60);

/// The Prometheus binary: `PROMETHEUS_BIN`, else `/usr/bin/prometheus`, else `prometheus` on
/// `PATH`; a clear failure when there is none.
fn prometheus_binary() -> PathBuf {
    let candidates = match std::env::var_os("PROMETHEUS_BIN") {
        Some(bin) => vec![PathBuf::from(bin)],
        None => std::iter::once(PathBuf::from("/usr/bin/prometheus"))
            .chain(
                std::env::var_os("PATH")
                    .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|dir| dir.join("prometheus")),
            )
            .collect(),
    };
    candidates.into_iter().find(|p| p.is_file()).expect(
        "prometheus is not installed: scripts/test.sh installs it \
             (apt-get install -y --no-install-recommends prometheus), or set PROMETHEUS_BIN",
    )
}

/// The committed rule file.
fn alert_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/prometheus/alerts.yml")
        .canonicalize()
        .expect("deploy/prometheus/alerts.yml exists")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running Prometheus in a directory of its own (config, data, log), stopped and removed on
/// drop.
struct Prometheus {
    base: String,
    client: reqwest::Client,
    dir: PathBuf,
    process: ProcessGroup,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second with the committed rules,
    /// and waits until it answers.
    async fn start(target: &str) -> Self {
        let bin = prometheus_binary();
        let rules = alert_rules();
        let mut last_error = String::new();
        // A free port can be taken between the probe and Prometheus' bind: try a few.
        for _ in 0..3 {
            let dir = std::env::temp_dir().join(format!("users-prom-{}", Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("create the Prometheus directory");
            let config = format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: users-origin-test\n    static_configs:\n      \
                 - targets: ['{target}']\n",
                rules = rules.display()
            );
            let config_path = dir.join("prometheus.yml");
            std::fs::write(&config_path, config).expect("write prometheus.yml");
            let port = free_port();
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("create the log");
            let child = Command::new(&bin)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut prometheus = Self {
                base: format!("http://127.0.0.1:{port}"),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("an HTTP client"),
                dir,
                process: ProcessGroup::new(child),
            };
            match prometheus.wait_ready().await {
                Ok(()) => return prometheus,
                Err(e) => last_error = e,
            }
        }
        panic!("Prometheus did not start: {last_error}");
    }

    /// Polls `/-/ready` until it answers `200`.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                return Err(format!("prometheus exited with {status}: {}", self.log()));
            }
            let ready = self.client.get(format!("{}/-/ready", self.base)).send();
            if ready.await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {START_DEADLINE:?}: {}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>`'s `data`.
    async fn api(&self, path: &str) -> Value {
        let url = format!("{}/api/v1/{path}", self.base);
        let body: Value = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
        assert_eq!(body["status"], "success", "GET {url}: {body}");
        body["data"].clone()
    }

    /// The value of the instant query `query`'s only sample, if it has one.
    async fn query(&self, query: &str) -> Option<f64> {
        let data = self.api(&format!("query?query={query}")).await;
        let result = data["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: one sample at most, got {data}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// The active (pending or firing) alerts named `name`.
    async fn alerts(&self, name: &str) -> Vec<Value> {
        let data = self.api("alerts").await;
        data["alerts"]
            .as_array()
            .expect("an alert list")
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect()
    }

    /// The names of every alerting rule loaded.
    async fn alerting_rules(&self) -> Vec<String> {
        let data = self.api("rules?type=alert").await;
        data["groups"]
            .as_array()
            .expect("rule groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared test Redis' address (`TEST_REDIS_URL`).
fn redis_addr() -> SocketAddr {
    let url = redis_url();
    let authority = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("TEST_REDIS_URL {url}: no address"))
}

/// Polls `check` every 500 ms until it gives `Some`, or panics after `deadline` with `what`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// An origin whose Redis goes through a proxy, and Prometheus scraping it.
async fn origin_behind_redis_proxy_and_prometheus() -> (TestApp, TcpProxy, Prometheus) {
    let proxy = TcpProxy::start(redis_addr()).await;
    let app = spawn_app_set(&[("REDIS_URL", &format!("redis://{}", proxy.addr()))]).await;
    let target = app.address.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&target).await;
    (app, proxy, prometheus)
}

#[tokio::test(flavor = "multi_thread")]
async fn cutting_redis_fires_the_redis_alert_in_prometheus_and_restoring_it_resolves_it() {
    let (app, proxy, prometheus) = origin_behind_redis_proxy_and_prometheus().await;
    let rules = prometheus.alerting_rules().await;
    assert!(
        rules.iter().any(|r| r == REDIS_ALERT),
        "the committed rules are loaded: {rules:?}"
    );
    let healthy = eventually("a scrape showing Redis in use", START_DEADLINE, || {
        prometheus.query("users_redis_fallback")
    })
    .await;
    assert_eq!(healthy, 0.0, "Redis is in use before the cut");
    assert_eq!(
        prometheus.alerts(REDIS_ALERT).await,
        Vec::<Value>::new(),
        "no alert while Redis answers"
    );

    proxy.cut();
    let cut_at = Instant::now();

    let firing = eventually("the Redis alert firing", FIRE_DEADLINE, || async {
        let alerts = prometheus.alerts(REDIS_ALERT).await;
        alerts.into_iter().find(|a| a["state"] == "firing")
    })
    .await;
    let fired_after = cut_at.elapsed();
    let target = app.address.trim_start_matches("http://");
    assert_eq!(
        (
            &firing["labels"]["instance"],
            &firing["labels"]["severity"],
            &firing["annotations"]["runbook_url"],
        ),
        (
            &Value::from(target),
            &Value::from("warning"),
            &Value::from("docs/runbook.md#usersredisfallback"),
        ),
        "the alert names the replica, its severity and its runbook: {firing}"
    );
    assert!(
        fired_after >= Duration::from_secs(60),
        "fired after {fired_after:?}, before its `for: 1m`"
    );
    // Meanwhile the API keeps answering from PostgreSQL.
    app.as_admin().me().await.expect_status(200);

    proxy.restore();
    let restored_at = Instant::now();

    eventually("the Redis alert resolved", RESOLVE_DEADLINE, || async {
        prometheus
            .alerts(REDIS_ALERT)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    eprintln!(
        "{REDIS_ALERT}: fired {fired_after:?} after the cut, resolved {:?} after the restore",
        restored_at.elapsed()
    );
}
