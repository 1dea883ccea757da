//! The hostile-string sweep: every operation of the origin's own `/openapi.json` (plus the
//! routes it does not describe), every string parameter it has (path, query, header, JSON
//! field, form field, and the headers every route reads), fed each hostile value in turn while
//! every other parameter holds a valid value, with the bootstrap admin's token so each request
//! gets past authentication.
//!
//! What must hold for every answer: no `5xx`; a `4xx` is an RFC 9457 problem; a value holding
//! NUL in a path, query, form or JSON string is never accepted (`2xx`), since PostgreSQL could
//! not have stored or compared it. Afterwards the origin's own `http_requests_total` must count
//! no `5xx` answer either (bar `503`, which the sweep retries), so an edge cannot hide one.

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::operations::{COMMON_HEADERS, Operation, Place, operations};
pub use super::values::{Hostile, edge_values, fixed_values, random_values};
use crate::helpers::{Api, Endpoint, Reply, TestApp, TestUser, strong_password, unique_name};

/// The valid values an operation's other parameters hold.
struct Fixture {
    admin_token: String,
    victim: TestUser,
    role: String,
    /// A user whose failed logins the sweep may cause (never the admin, whom it must not lock
    /// out).
    sweeper: TestUser,
}

impl Fixture {
    async fn new(app: &TestApp, target: &Endpoint, sweeper: &TestUser) -> Self {
        let admin = &app.admin;
        let admin_token = target
            .login(&admin.username, &admin.password)
            .await
            .access_token;
        let victim = app.new_user().await;
        let role = unique_name("sw-");
        // Tokens of earlier operations may be revoked (`logout-all`): a fresh one.
        let origin_token = app
            .login(&admin.username, &admin.password)
            .await
            .access_token;
        app.bearer(&origin_token)
            .post_role(
                &json!({"name": role, "description": "sweep", "permissions": ["users:read"]}),
            )
            .await
            .expect_status(201);
        Self {
            admin_token,
            victim,
            role,
            sweeper: sweeper.clone(),
        }
    }

    fn path_value(&self, op_path: &str, name: &str) -> String {
        match name {
            "id" => self.victim.id.to_string(),
            "name" if op_path.starts_with("/users/") => "user".into(),
            "name" => self.role.clone(),
            _ => "sample".into(),
        }
    }

    fn field_value(&self, name: &str) -> Value {
        match name {
            "username" => json!(unique_name("sw")),
            "email" => json!(format!("{}@example.com", unique_name("sw"))),
            "password" => json!(strong_password()),
            "current_password" => json!(self.victim.password),
            "login" => json!(self.sweeper.username),
            "display_name" => json!("Sweep Tester"),
            "name" => json!(unique_name("sw-")),
            "description" => json!("A role of the sweep"),
            "roles" => json!(["user"]),
            "permissions" => json!(["users:read"]),
            "grant_type" => json!("password"),
            "refresh_token" => json!("not-a-refresh-token"),
            "since" => json!("0"),
            "limit" => json!("10"),
            _ => json!("sample"),
        }
    }
}

/// What a sweep did, for the test's output.
#[derive(Debug, Default)]
pub struct Report {
    pub operations: usize,
    pub parameters: usize,
    pub requests: usize,
    pub by_status: BTreeMap<u16, usize>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests over {} operations and {} parameters; answers by status: {:?}",
            self.requests, self.operations, self.parameters, self.by_status
        )
    }
}

/// Sweeps `target` (the origin itself, or an edge in front of `app`) with `values` in every
/// parameter of every operation, asserting the rules in the module's doc. Returns what it did.
pub async fn sweep(app: &TestApp, target: &Endpoint, values: &[Hostile]) -> Report {
    let doc = app.get("/openapi.json").send().await.expect_json(200);
    let ops = operations(&doc);
    let sweeper = target.new_user().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("a client");
    let mut report = Report {
        operations: ops.len(),
        ..Report::default()
    };
    let mut failures = Vec::new();
    for op in &ops {
        let fixture = Fixture::new(app, target, &sweeper).await;
        report.parameters += op.places.len();
        for place in &op.places {
            for value in values {
                let Some(request) = build(&client, target, op, &fixture, place, value).await else {
                    continue;
                };
                let reply = match send_retrying_unavailable(request).await {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!(
                            "{} {} {place} = {value}: no answer: {e}",
                            op.method, op.path
                        ));
                        continue;
                    }
                };
                report.requests += 1;
                *report.by_status.entry(reply.status).or_default() += 1;
                if let Some(why) = violation(&reply, place, value) {
                    failures.push(format!(
                        "{} {} {place} = {value}: {why}: {}",
                        op.method,
                        op.path,
                        truncate(&format!("{} {}", reply.status, reply.text))
                    ));
                }
            }
        }
    }
    let server_errors: f64 = app
        .metrics()
        .await
        .samples
        .iter()
        .filter(|s| s.name == "http_requests_total")
        .filter(|s| {
            s.labels
                .get("status")
                .is_some_and(|c| c.starts_with('5') && c != "503")
        })
        .map(|s| s.value)
        .sum();
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests broke a rule ({report}):\n{}",
        failures.len(),
        report.requests,
        failures.join("\n")
    );
    assert_eq!(
        server_errors, 0.0,
        "the origin counted 5xx answers ({report})"
    );
    report
}

/// Sends `request`; a `503` (the documented answer of a tier too busy to serve it now, which a
/// loaded test machine can meet) is sent again, up to twice, 300 ms later. A `503` that repeats is reported like any other `5xx`.
async fn send_retrying_unavailable(request: reqwest::RequestBuilder) -> reqwest::Result<Reply> {
    let mut attempt = request;
    for _ in 0..2 {
        let again = attempt.try_clone();
        let reply = Reply::read(attempt.send().await?).await?;
        match again {
            Some(next) if reply.status == 503 => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                attempt = next;
            }
            _ => return Ok(reply),
        }
    }
    Reply::read(attempt.send().await?).await
}

fn truncate(s: &str) -> String {
    if s.len() > 600 {
        format!("{}…", s.chars().take(600).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Why `reply` to `value` in `place` breaks a rule, if it does.
fn violation(reply: &Reply, place: &Place, value: &Hostile) -> Option<String> {
    if reply.status >= 500 {
        return Some("a server error".into());
    }
    if reply.status >= 400 {
        let media = reply.header("content-type").unwrap_or_default();
        if !media.starts_with("application/problem+json") {
            return Some(format!(
                "a {} that is not a problem ({media})",
                reply.status
            ));
        }
        let body: Value = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
        if body["status"] != reply.status || !body["type"].is_string() {
            return Some("a problem body without its status and type".into());
        }
    }
    let stored = !matches!(place, Place::Header(_));
    if stored && value.holds_nul() && (200..300).contains(&reply.status) {
        return Some("NUL was accepted".into());
    }
    None
}

/// The request with `value` in `place` and valid values elsewhere; `None` when the place
/// cannot carry the value (a control character in a header).
async fn build(
    client: &reqwest::Client,
    target: &Endpoint,
    op: &Operation,
    fx: &Fixture,
    place: &Place,
    value: &Hostile,
) -> Option<reqwest::RequestBuilder> {
    let mut path = op.path.clone();
    for seg in op.path.split('/').filter(|s| s.starts_with('{')) {
        let name = seg.trim_matches(|c| c == '{' || c == '}');
        let spelled = if place == &Place::Path(name.to_owned()) {
            value.url_encoded()
        } else {
            fx.path_value(&op.path, name)
        };
        path = path.replace(seg, &spelled);
    }
    let mut url = format!("{}{path}", target.base());
    if let Place::Query(name) = place {
        url = format!("{url}?{name}={}", value.url_encoded());
    }

    let mut headers = HeaderMap::new();
    let bearer = format!("Bearer {}", fx.admin_token);
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&bearer).expect("a token header"),
    );
    let if_match = Place::Header("if-match".into());
    if op.places.contains(&if_match) && place != &if_match {
        let current = target
            .bearer(&fx.admin_token)
            .get(&format!("/users/{}", fx.victim.id))
            .send()
            .await;
        if let Some(etag) = current.headers.get("etag") {
            headers.insert("if-match", etag.clone());
        }
    }
    let form = |f: &String| {
        let v = if place == &Place::Form(f.clone()) {
            value.url_encoded()
        } else {
            let valid = fx.field_value(f);
            utf8_percent_encode(valid.as_str().unwrap_or_default(), NON_ALPHANUMERIC).to_string()
        };
        format!("{f}={v}")
    };
    let body = match (&op.json_media, place) {
        // An operation that also takes a form is swept through it field by field.
        (_, Place::Form(_)) | (None, _) if !op.form_fields.is_empty() => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            Some(
                op.form_fields
                    .iter()
                    .map(form)
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes(),
            )
        }
        (Some(media), _) => {
            let mut body = serde_json::Map::new();
            for (field, list) in &op.json_fields {
                let v = match (place == &Place::Json(field.clone()), list) {
                    (true, true) => json!(["__HOSTILE__"]),
                    (true, false) => json!("__HOSTILE__"),
                    (false, _) => fx.field_value(field),
                };
                body.insert(field.clone(), v);
            }
            let text = serde_json::to_vec(&Value::Object(body)).expect("a body");
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_str(media).expect("a media type"),
            );
            Some(replace_bytes(
                &text,
                br#""__HOSTILE__""#,
                &value.json_literal(),
            ))
        }
        (None, _) => None,
    };
    if let Place::Header(name) = place {
        let prefix = COMMON_HEADERS
            .iter()
            .find(|(h, _)| h == name)
            .map_or("", |(_, p)| *p);
        let header = HeaderName::from_bytes(name.as_bytes()).ok()?;
        headers.insert(header, value.header_value(prefix)?);
    }
    let req = client.request(op.method.clone(), url).headers(headers);
    Some(match body {
        Some(b) => req.body(b),
        None => req,
    })
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + with.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
