//! An answer, read whole ([`Reply`]), and the assertions the suites make on answers: the
//! status with the body, RFC 9457 problems, the refusal of an access token, `Retry-After`.
//!
//! Every assertion prints the whole answer (status, headers, body) when it fails.

use std::fmt;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A response: status, headers and the body as text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.text)
    }
}

impl Reply {
    /// Reads `resp` whole.
    pub async fn read(resp: reqwest::Response) -> reqwest::Result<Self> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        Ok(Self {
            status,
            headers,
            text,
        })
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// `ETag`, asserted present.
    #[track_caller]
    pub fn etag(&self) -> String {
        self.header("etag")
            .unwrap_or_else(|| panic!("an ETag: {self}"))
    }

    /// `X-Request-Id`, asserted present.
    #[track_caller]
    pub fn request_id(&self) -> String {
        self.header("x-request-id")
            .unwrap_or_else(|| panic!("a request id: {self}"))
    }

    /// `x-edge-cache`: `hit`, `miss`, `stale` or absent.
    pub fn cache(&self) -> Option<String> {
        self.header("x-edge-cache")
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        self.json_as()
    }

    /// The body as a `T`.
    #[track_caller]
    pub fn json_as<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("a JSON body ({e}), got {self}"))
    }

    /// Asserts `status`.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self}");
        self
    }

    /// Asserts `status` and returns the JSON body.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> Value {
        self.expect_status(status).json()
    }

    /// Asserts an RFC 9457 problem with `status` and code `code`; returns the body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        let content_type = self.header("content-type").unwrap_or_default();
        let body: Value = serde_json::from_str(&self.text)
            .unwrap_or_else(|_| panic!("a JSON problem, got {self}"));
        assert_problem_parts(self.status, &content_type, &body, status, code);
        body
    }

    /// Asserts an error of the token endpoint's OAuth2 form path (SPEC §9): the problem with
    /// `status` and `code`, carrying the RFC 6749 §5.2 `error` and, as `error_description`,
    /// its `detail`. Returns the body.
    #[track_caller]
    pub fn assert_oauth_error(&self, status: u16, code: &str, error: &str) -> Value {
        let body = self.assert_problem(status, code);
        assert_eq!(body["error"], json!(error), "error; body {body}");
        assert_eq!(
            body["error_description"], body["detail"],
            "error_description; body {body}"
        );
        body
    }

    /// Asserts the `401 invalid-token` answer to a refused access token, with its
    /// `WWW-Authenticate`.
    #[track_caller]
    pub fn assert_invalid_token(&self) {
        self.assert_problem(401, "invalid-token");
        let www = self.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("Bearer") && www.contains(r#"error="invalid_token""#),
            "WWW-Authenticate: {www:?}"
        );
    }

    /// Asserts the `401 unauthenticated` answer to a request without a token: its
    /// `WWW-Authenticate` names the scheme and no error.
    #[track_caller]
    pub fn assert_unauthenticated(&self) {
        self.assert_problem(401, "unauthenticated");
        let www = self.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("Bearer") && !www.contains("error="),
            "{www:?}"
        );
    }

    /// `Retry-After` in seconds, asserted present and in `1..=max`.
    #[track_caller]
    pub fn retry_after(&self, max: u64) -> u64 {
        let value = self
            .header("retry-after")
            .unwrap_or_else(|| panic!("a Retry-After header: {self}"));
        let secs: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After in seconds, got {value:?}"));
        assert!((1..=max).contains(&secs), "Retry-After {secs}: {self}");
        secs
    }
}

/// Asserts that `body` (served with `status` and `content_type`) is an RFC 9457 problem with
/// status `expected` and code `code`, with no members beyond the documented ones.
#[track_caller]
fn assert_problem_parts(status: u16, content_type: &str, body: &Value, expected: u16, code: &str) {
    assert_eq!(status, expected, "status; body {body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type:?}; body {body}"
    );
    assert_eq!(
        body["type"],
        json!(format!("/problems/{code}")),
        "type; body {body}"
    );
    assert_eq!(
        body["status"],
        json!(expected),
        "status member; body {body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "title; body {body}"
    );
    assert!(body["detail"].is_string(), "detail; body {body}");
    // The RFC 6749 §5.2 members of the token endpoint's form path (SPEC §9), checked by
    // `assert_oauth_error` where they must be present.
    let allowed = [
        "type",
        "title",
        "status",
        "detail",
        "errors",
        "instance",
        "error",
        "error_description",
    ];
    // The login step-up's challenge carries its token and methods (SPEC §8).
    let challenge = ["mfa_token", "methods"];
    for key in body.as_object().expect("an object").keys() {
        assert!(
            allowed.contains(&key.as_str())
                || (code == "mfa-required" && challenge.contains(&key.as_str())),
            "unexpected member {key}; body {body}"
        );
    }
}

/// The fields named in a validation problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
