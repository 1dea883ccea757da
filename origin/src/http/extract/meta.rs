//! What a request says about where it came from: its request id and client address (for audit
//! records and logs), and whether it came through the edge. The middleware in
//! `http::middleware::client` resolves the address and the edge secret.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use users_core::wire;

use crate::db::audit::Ctx;
use crate::db::sessions::{Origin, USER_AGENT_MAX};
use crate::http::error::ApiError;
use crate::state::AppState;

/// Whether the request carries the edge's shared secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromEdge(pub bool);

/// The resolved client address of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Request id and client address, for audit records and logs.
impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        Ok(request_ctx(parts))
    }
}

/// The [`Ctx`] of a request.
pub fn request_ctx(parts: &Parts) -> Ctx {
    let request_id = parts
        .headers
        .get(wire::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(wire::REQUEST_ID_MAX).collect());
    let ip = parts
        .extensions
        .get::<ClientIp>()
        .map(|c| c.0.to_string())
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        });
    Ctx { request_id, ip }
}

/// Where a login came from, for its session: the client address, its `User-Agent` (at most
/// [`USER_AGENT_MAX`] characters, with characters PostgreSQL cannot store replaced), and the
/// country the edge reports, believed only from the edge ([`wire::EDGE_COUNTRY`]).
pub fn login_origin(parts: &Parts) -> Origin {
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(USER_AGENT_MAX)
                .map(|c| if c == '\0' { '\u{fffd}' } else { c })
                .collect::<String>()
        })
        .filter(|ua| !ua.is_empty());
    let from_edge = parts.extensions.get::<FromEdge>().is_some_and(|f| f.0);
    let country = parts
        .headers
        .get(wire::EDGE_COUNTRY)
        .filter(|_| from_edge)
        .and_then(|v| v.to_str().ok())
        .and_then(wire::country_code);
    Origin {
        ip: request_ctx(parts).ip,
        user_agent,
        country,
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        Ok(login_origin(parts))
    }
}

/// [`login_origin`] as an extractor.
#[derive(Debug, Clone)]
pub struct LoginOrigin(pub Origin);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LoginOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(login_origin(parts)))
    }
}
