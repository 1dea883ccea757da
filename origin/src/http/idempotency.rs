//! `Idempotency-Key` on the routes that create (SPEC §9): the header read with the body
//! ([`IdempotentJson`]), and the answer stored, replayed or refused around the handler's work
//! ([`answer`], [`claim`], [`record`]); the rules are in [`crate::idempotency`].
//!
//! A handler passes its work to [`answer`], which replays a stored answer before any work is
//! done; inside its write transaction the work calls [`claim`] first and [`record`] with its
//! answer last, so the answer is stored exactly when the write commits. An error answer that
//! is kept (see [`crate::idempotency::is_stored`]) is stored by [`answer`].

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::db::GenericClient;
use crate::db::idempotency::StoredAnswer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{JsonBody, media_type, read_body};
use crate::idempotency::{self, Caller, Key};
use crate::state::AppState;

/// The request header (draft-ietf-httpapi-idempotency-key-header §2).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// The routes that take a key (SPEC §9), as `(method, path)` of the document.
pub const ROUTES: [(&str, &str); 5] = [
    ("post", "/users"),
    ("post", "/roles"),
    ("post", "/auth/register"),
    ("post", "/auth/password/reset"),
    ("post", "/admin/users/import"),
];
/// The headers of an answer that are stored with it.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::ETAG];

/// A JSON body as [`JsonBody`] reads it, with the request's `Idempotency-Key`, if any. A
/// body that is not the JSON the route takes is the request's answer, given after the key's
/// check (a key used before with another body is refused as such), so `body` is a result.
#[derive(Debug)]
pub struct IdempotentJson<T> {
    pub body: Result<T, ApiError>,
    pub key: Option<KeyRequest>,
}

/// A key as the client sent it, with the request it came with; [`KeyRequest::of`] scopes it
/// to the caller.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    key: String,
    method: String,
    route: String,
    body: Bytes,
}

impl KeyRequest {
    /// The key among `caller`'s.
    pub fn of(&self, caller: Caller) -> Key {
        Key::new(
            self.key.clone(),
            caller,
            &self.method,
            &self.route,
            &self.body,
        )
    }
}

/// The key of the `Idempotency-Key` header: a structured-field string (`"…"`) or the bare
/// characters; `400` unless exactly one header holds 1 to 255 visible ASCII characters.
fn key_of(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::Malformed(format!(
            "Idempotency-Key must be one header of 1 to {} visible ASCII characters.",
            idempotency::KEY_MAX
        ))
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let raw = value.to_str().map_err(|_| bad())?.trim();
    let key = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        None => raw,
    };
    if !idempotency::is_valid(key) || key.contains(['"', '\\']) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// A body of any media type, read whole (its media type, without parameters, and bytes),
/// with the request's `Idempotency-Key`, if any. A body that cannot be read is the request's
/// answer, given after the key's check.
#[derive(Debug)]
pub struct IdempotentBytes {
    pub body: Result<(Option<String>, Bytes), ApiError>,
    pub key: Option<KeyRequest>,
}

/// The key with what identifies its request: the method, the route and query (the `/v1`
/// alias is the same route) and the body `bytes`.
fn key_request(
    key: Option<String>,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    bytes: &Bytes,
) -> Option<KeyRequest> {
    let path = uri.path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let route = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    key.map(|key| KeyRequest {
        key,
        method: method.as_str().to_owned(),
        route,
        body: bytes.clone(),
    })
}

impl FromRequest<AppState> for IdempotentBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let key = key_of(req.headers())?;
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let media = media_type(req.headers());
        let body = read_body(req, state).await;
        let key = match &body {
            Ok(bytes) => key_request(key, &method, &uri, bytes),
            Err(_) => None,
        };
        Ok(Self {
            body: body.map(|bytes| (media, bytes)),
            key,
        })
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for IdempotentJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let key = key_of(req.headers())?;
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let headers = req.headers().clone();
        let bytes = read_body(req, state).await?;
        let body = JsonBody::from_bytes(&headers, &bytes).map(|JsonBody(b)| b);
        let key = key_request(key, &method, &uri, &bytes);
        Ok(Self { body, key })
    }
}

/// The stored answer again, marked `Idempotent-Replayed: true`.
fn replay(stored: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = (status, stored.body).into_response();
    let h = res.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(name, value);
        }
    }
    h.insert(REPLAYED, HeaderValue::from_static("true"));
    res
}

/// Reads `res` whole: the answer to store, and the same response to send.
async fn capture(res: Response) -> ApiResult<(Response, idempotency::Answer)> {
    let (parts, body) = res.into_parts();
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading an answer: {e}")))?;
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let answer = (parts.status.as_u16(), headers, bytes.to_vec());
    Ok((Response::from_parts(parts, Body::from(bytes)), answer))
}

/// Runs `work` for a request with `key` (or without one): a stored answer is replayed
/// without running it; a kept error answer of the work is stored.
pub async fn answer(
    state: &AppState,
    key: Option<&Key>,
    work: impl Future<Output = ApiResult<Response>>,
) -> ApiResult<Response> {
    let Some(key) = key else {
        return work.await;
    };
    let ttl = state.config.idempotency_ttl;
    if let Some(stored) = key.peek(&state.db.get().await?, ttl).await? {
        return Ok(replay(stored));
    }
    match work.await {
        Err(e) if kept(&e) => {
            let (res, answer) = capture(e.into_response()).await?;
            key.record(&state.db.get().await?, answer, ttl).await?;
            Ok(res)
        }
        other => other,
    }
}

/// Whether an error answer is stored for its key: not the key's own refusals.
fn kept(e: &ApiError) -> bool {
    !matches!(
        e,
        ApiError::IdempotencyInFlight | ApiError::IdempotencyMismatch
    ) && idempotency::is_stored(e.code().status())
}

/// In the write's transaction, before the write: the answer to replay if the key was
/// answered meanwhile; `409` while another request holds the key.
pub async fn claim(
    state: &AppState,
    tx: &impl GenericClient,
    key: Option<&Key>,
) -> ApiResult<Option<Response>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let stored = key.claim(tx, state.config.idempotency_ttl).await?;
    Ok(stored.map(replay))
}

/// In the write's transaction, last: stores `res` as the key's answer and returns it.
pub async fn record(
    state: &AppState,
    tx: &impl GenericClient,
    key: Option<&Key>,
    res: Response,
) -> ApiResult<Response> {
    let Some(key) = key else {
        return Ok(res);
    };
    if !idempotency::is_stored(res.status().as_u16()) {
        return Ok(res);
    }
    let (res, answer) = capture(res).await?;
    key.record(tx, answer, state.config.idempotency_ttl).await?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_key_is_a_string_item_or_bare() {
        assert_eq!(key_of(&headers(&[])).unwrap(), None);
        assert_eq!(
            key_of(&headers(&["abc-1"])).unwrap().as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            key_of(&headers(&["\"abc-1\""])).unwrap().as_deref(),
            Some("abc-1")
        );
        for bad in ["", "\"\"", "a b", "\"a\\\"b\"", "\"a\"b\""] {
            assert!(key_of(&headers(&[bad])).is_err(), "{bad:?}");
        }
        assert!(key_of(&headers(&[&"k".repeat(256)])).is_err());
        assert!(key_of(&headers(&["a", "b"])).is_err(), "two headers");
    }
}
