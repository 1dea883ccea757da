//! The traffic log: with `USERS_RESPONSE_LOG` set to a directory, every answer a [`Call`]
//! receives is appended to `<dir>/<process id>.ndjson` as one JSON line (method, path,
//! query, status, headers, body), for `scripts/check-responses.py` to validate against the
//! OpenAPI document after the suite (SPEC §9: the document is exact).
//!
//! [`Call`]: super::Call

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value, json};

use super::Reply;

/// The header a stand-in for the origin marks its answers with: they are not this API's, and
/// the log leaves them out.
pub const STUB_HEADER: &str = "x-test-stub";

/// The variable naming the directory of the log.
pub const LOG_DIR: &str = "USERS_RESPONSE_LOG";

fn log_file() -> Option<&'static Mutex<File>> {
    static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::var_os(LOG_DIR)?;
        std::fs::create_dir_all(&dir).ok()?;
        let path = std::path::Path::new(&dir).join(format!("{}.ndjson", std::process::id()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the response log");
        Some(Mutex::new(file))
    })
    .as_ref()
}

/// Appends the answer `reply` to `method url`, when the log is on.
pub fn record(method: &reqwest::Method, url: &reqwest::Url, reply: &Reply) {
    let Some(file) = log_file() else {
        return;
    };
    if reply.headers.contains_key(STUB_HEADER) {
        return;
    }
    let mut headers = Map::new();
    for (name, value) in &reply.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers.insert(name.as_str().to_owned(), Value::String(value));
    }
    let line = json!({
        "test": std::thread::current().name().unwrap_or_default(),
        "method": method.as_str(),
        "path": url.path(),
        "query": url.query(),
        "status": reply.status,
        "headers": headers,
        "body": reply.text,
    });
    let mut text = line.to_string();
    text.push('\n');
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    file.write_all(text.as_bytes())
        .expect("append to the response log");
}
