//! nginx in front of two origin replicas over one database, with the committed
//! `deploy/nginx/nginx.conf`: requests are spread over both replicas, request ids and the body
//! limit hold at the proxy, and when one replica stops nginx fails over to the other without a
//! single failed request.
//!
//! The configuration is the committed file with only its marked blocks replaced (see
//! [`render`]): runtime paths inside a temporary directory, a free loopback port, the two
//! replicas as upstream servers, and an `X-Upstream` response header so the test can see which
//! replica answered. nginx runs in the foreground as a child process and is stopped on drop.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use users_harness::InProcessOrigin;
use uuid::Uuid;

use crate::helpers::{Api as _, Endpoint, Reply, free_port, spawn_app, start_origin_process};

/// The committed configuration under test.
const NGINX_CONF: &str = include_str!("../../deploy/nginx/nginx.conf");

/// Replaces the lines between `# @begin NAME` and `# @end NAME` for each `(NAME, text)` in
/// `blocks`, keeping the marker lines and everything else. Panics if a marker is missing, so a
/// renamed block cannot silently leave production settings in the test.
fn render(conf: &str, blocks: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(conf.len());
    let mut seen = BTreeSet::new();
    let mut skipping = false;
    for line in conf.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("# @begin ") {
            out.push_str(line);
            out.push('\n');
            if let Some((_, text)) = blocks.iter().find(|(n, _)| *n == name) {
                out.push_str(text);
                out.push('\n');
                seen.insert(name.to_owned());
                skipping = true;
            }
            continue;
        }
        if trimmed.starts_with("# @end ") {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (name, _) in blocks {
        assert!(
            seen.contains(*name),
            "deploy/nginx/nginx.conf has no `# @begin {name}` block"
        );
    }
    out
}

/// The nginx binary: `NGINX_BIN`, else `/usr/sbin/nginx`, else `nginx` on `PATH`.
fn nginx_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NGINX_BIN") {
        return bin.into();
    }
    let default = Path::new("/usr/sbin/nginx");
    if default.exists() {
        return default.to_owned();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .find(|p| p.exists())
        })
        .expect(
            "nginx is not installed: scripts/test.sh installs it \
             (apt-get install -y --no-install-recommends nginx), or set NGINX_BIN",
        )
}

/// A running nginx (master and one worker) in its own prefix directory.
struct Nginx {
    bin: PathBuf,
    dir: PathBuf,
    child: Child,
    /// `http://127.0.0.1:PORT`, with a short timeout so a stuck request fails the test
    /// quickly instead of hanging it.
    entry: Endpoint,
}

impl Nginx {
    /// Starts nginx in front of `upstreams` (`host:port` each) and waits until it answers.
    async fn start(upstreams: &[&str]) -> Self {
        let bin = nginx_binary();
        let mut last_error = String::new();
        // A free port can be taken between the probe and nginx's bind: try a few.
        for _ in 0..3 {
            let dir = std::env::temp_dir().join(format!("users-nginx-{}", Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("create the nginx prefix directory");
            let port = free_port();
            let d = dir.display();
            let servers: Vec<String> = upstreams
                .iter()
                .map(|a| format!("        server {a} max_fails=3 fail_timeout=10s;"))
                .collect();
            let conf = render(
                NGINX_CONF,
                &[
                    (
                        "process",
                        format!(
                            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;"
                        ),
                    ),
                    (
                        "paths",
                        format!(
                            "access_log {d}/access.log users;\n\
                             client_body_temp_path {d}/body;\n\
                             proxy_temp_path {d}/proxy;\n\
                             fastcgi_temp_path {d}/fastcgi;\n\
                             uwsgi_temp_path {d}/uwsgi;\n\
                             scgi_temp_path {d}/scgi;"
                        ),
                    ),
                    ("upstream-servers", servers.join("\n")),
                    ("listen", format!("listen 127.0.0.1:{port};")),
                    (
                        "test-hooks",
                        "add_header X-Upstream $upstream_addr always;".to_owned(),
                    ),
                ],
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            let child = Command::new(&bin)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut nginx = Self {
                bin: bin.clone(),
                dir,
                child,
                entry: Endpoint::with_timeout(
                    &format!("http://127.0.0.1:{port}"),
                    Duration::from_secs(10),
                ),
            };
            match nginx.wait_ready().await {
                Ok(()) => return nginx,
                Err(e) => last_error = e,
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// Polls `/healthz` through nginx for up to 10 s.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited with {status}: {}", self.error_log()));
            }
            if let Ok(resp) = self.entry.get("/healthz").try_send().await
                && resp.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within 10 s: {}", self.error_log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Fast shutdown through the master (it stops its worker too), then a hard kill if it
        // has not exited within 5 s.
        let _ = Command::new(&self.bin)
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An origin replica over the test's database that the test can stop (dropping it stops it
/// too).
struct Replica {
    /// `127.0.0.1:PORT`, as nginx's `$upstream_addr` names it.
    addr: String,
    origin: InProcessOrigin,
}

impl Replica {
    async fn start(vars: &HashMap<String, String>) -> Self {
        let origin = start_origin_process(vars).await;
        Self {
            addr: origin.addr().to_string(),
            origin,
        }
    }

    /// Stops accepting, drains in-flight requests and waits (at most 30 s) until it is gone.
    async fn stop(self) {
        self.origin
            .stop()
            .await
            .expect("the replica shuts down cleanly within 30 s");
    }
}

/// The replicas nginx tried for `resp`, in order, from `X-Upstream` (`$upstream_addr`): the
/// last one answered, earlier ones failed and were moved on from. Empty for an answer of
/// nginx's own (its error pages carry no `X-Upstream`).
fn tried(resp: &Reply) -> Vec<String> {
    resp.header("x-upstream")
        .map(|h| h.split(',').map(|a| a.trim().to_owned()).collect())
        .unwrap_or_default()
}

/// The replica that answered `resp`.
fn answered_by(resp: &Reply) -> String {
    tried(resp).pop().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_spreads_requests_and_fails_over_when_a_replica_stops() {
    let app = spawn_app().await;
    let first = app.endpoint().host_port().to_owned();
    let second = Replica::start(&app.vars).await;
    let nginx = Nginx::start(&[&first, &second.addr]).await;
    let entry = &nginx.entry;
    let admin = &app.admin;

    // Both replicas serve: round robin alternates over 20 requests.
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let resp = entry.get("/healthz").send().await;
        resp.expect_status(200);
        seen.insert(answered_by(&resp));
    }
    assert_eq!(
        seen,
        BTreeSet::from([first.clone(), second.addr.clone()]),
        "both replicas answer through nginx"
    );

    // A token issued through one replica works on whichever answers next (shared keys).
    let token = entry
        .login(&admin.username, &admin.password)
        .await
        .access_token;
    for _ in 0..4 {
        let resp = entry.bearer(&token).me().await;
        assert_eq!(resp.status, 200, "GET /users/me through nginx: {resp}");
    }

    // Request ids: the client's is passed on and echoed; without one, nginx makes one (32 hex
    // digits, unlike the origin's own UUIDs) and the origin keeps it.
    let mine = format!("nginx-{}", Uuid::new_v4().simple());
    let resp = entry.get("/healthz").request_id(&mine).send().await;
    assert_eq!(resp.request_id(), mine);
    let generated = entry.get("/healthz").send().await.request_id();
    assert!(
        generated.len() == 32 && generated.chars().all(|c| c.is_ascii_hexdigit()),
        "nginx's request id reaches the origin: {generated:?}"
    );

    // Oversized bodies stop at nginx, as the same problem the origin would give.
    let resp = entry
        .post("/auth/login")
        .typed_body("application/json", vec![b' '; 70 * 1024])
        .send()
        .await;
    assert!(
        resp.header("x-upstream").is_none(),
        "refused by nginx itself"
    );
    resp.assert_problem(413, "payload-too-large");

    // Metrics are for Prometheus on the replicas, not for the public entry point.
    let resp = entry.get("/metrics").send().await;
    resp.assert_problem(404, "not-found");

    // Stop the second replica (graceful: it drains, then its port is closed).
    let gone = second.addr.clone();
    second.stop().await;

    // Not one request fails: nginx retries the refused connections on the first replica.
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut retried = 0;
    for i in 0..60 {
        // 50 GETs, then 10 logins (POST: nginx may retry it only because the connection was
        // refused, i.e. the request never reached the stopped replica).
        let (what, resp) = if i < 50 {
            ("GET /healthz", entry.get("/healthz").send().await)
        } else {
            let login = entry.login_raw(&admin.username, &admin.password).await;
            ("POST /auth/login", login)
        };
        let status = resp.status;
        let path = tried(&resp);
        if path.len() > 1 {
            retried += 1;
        }
        if status != 200 || path.last() != Some(&first) {
            failures.push(format!("{what} #{i}: {status} via {path:?}"));
        }
    }
    let resp = entry.bearer(&token).me().await;
    if resp.status != 200 {
        failures.push(format!("GET /users/me: {}", resp.status));
    }
    assert!(
        failures.is_empty(),
        "requests failed after {gone} stopped:\n{}\nnginx error log:\n{}",
        failures.join("\n"),
        nginx.error_log()
    );
    // Passive health checks: nginx tried the stopped replica (round robin picks it within
    // two requests), failed over, and after max_fails skipped it.
    assert!(
        (1..=3).contains(&retried),
        "requests retried on the other replica: {retried}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failover took {:?}",
        started.elapsed()
    );
}

#[test]
fn render_replaces_marked_blocks_only() {
    let conf = "a;\n  # @begin x\n  old;\n  # @end x\nb;\n";
    let out = render(conf, &[("x", "  new;".to_owned())]);
    assert_eq!(out, "a;\n  # @begin x\n  new;\n  # @end x\nb;\n");
    let committed = render(NGINX_CONF, &[]);
    assert_eq!(committed, NGINX_CONF, "no blocks: the file as committed");
}
