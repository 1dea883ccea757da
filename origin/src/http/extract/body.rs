//! Request bodies: `415` for a wrong media type, `413` over 64 KiB, `400` for malformed JSON
//! (lone surrogates included), `422` (with the offending field) for JSON of the wrong shape or
//! holding a string PostgreSQL cannot store (see `users_core::text`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use users_core::fields::FieldError;
use users_core::problem::FieldProblem;
use users_core::text;

use crate::http::error::ApiError;
use crate::state::AppState;

/// Largest accepted request body (SPEC §4), as both tiers enforce it.
pub const BODY_LIMIT: usize = users_core::wire::BODY_MAX;

/// The media type of a request, lower-cased, without parameters.
pub fn media_type(parts: &axum::http::HeaderMap) -> Option<String> {
    let raw = parts.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        raw.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Reads the body, mapping the size limit to 413.
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::Malformed("The request body could not be read.".into())
        }
    })
}

/// Parses JSON bytes into `T`, distinguishing syntax (400) from shape (422). A string that
/// PostgreSQL cannot store, anywhere in the document, is a `422` naming its path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_json_value(bytes)?;
    if let Some(field) = text::first_unstorable(&value) {
        return Err(ApiError::Validation(vec![FieldProblem::new(
            field,
            FieldError::Nul,
        )]));
    }
    from_value(value)
}

/// [`parse_json`] without the text rule, for the one body whose every failure must look the
/// same (`/auth/login`): its handler applies the rule itself, as an unknown account.
pub fn parse_json_uniform<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_value(parse_json_value(bytes)?)
}

fn parse_json_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Malformed(format!("The body is not valid JSON: {e}.")))
}

/// Converts a JSON value into `T`, naming the offending field on failure (422).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            unknown_field(&inner).unwrap_or_else(|| "body".into())
        } else {
            path
        };
        ApiError::Validation(vec![FieldProblem::new(field, inner)])
    })
}

/// The field named by serde's "unknown field `x`" and "missing field `x`" messages.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    Some(rest.split('`').next()?.to_owned())
}

/// A JSON request body (`application/json` or any `application/*+json`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> JsonBody<T> {
    /// The body `bytes` of a request with `headers`, as the extractor reads it.
    pub fn from_bytes(headers: &axum::http::HeaderMap, bytes: &[u8]) -> Result<Self, ApiError> {
        require_json(headers)?;
        parse_json(bytes).map(JsonBody)
    }
}

fn require_json(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(m) if is_json(&m) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(
            "Send the body as application/json.".into(),
        )),
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: empty bodies are accepted as `T::default()`.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let media = media_type(req.headers());
        let bytes = read_body(req, state).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        match media {
            Some(m) if is_json(&m) => parse_json(&bytes).map(OptionalJsonBody),
            _ => Err(ApiError::UnsupportedMediaType(
                "Send the body as application/json.".into(),
            )),
        }
    }
}
