//! Who is calling: the client address, believed from `X-Forwarded-For` only when the peer is a
//! configured trusted proxy or the request carries the edge's shared secret; and the per-IP
//! rate limit on `/auth/*`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use users_core::wire;

use crate::config::ProxyConfig;
use crate::http::error::ApiError;
use crate::http::extract::{ClientIp, FromEdge};
use crate::http::respond::quota_headers;
use crate::ratelimit::Scope;
use crate::state::AppState;

/// The header that carries the edge's shared secret.
pub const EDGE_SECRET_HEADER: &str = wire::EDGE_SECRET;

fn carries_edge_secret(headers: &HeaderMap, cfg: &ProxyConfig) -> bool {
    let (Some(secret), Some(given)) = (&cfg.edge_secret, headers.get(EDGE_SECRET_HEADER)) else {
        return false;
    };
    // Compare digests: equal length, and no early exit on the secret's own bytes.
    Sha256::digest(secret.expose().as_bytes()) == Sha256::digest(given.as_bytes())
}

/// The client address of a request that came from `peer`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, cfg: &ProxyConfig) -> IpAddr {
    let trusted = |ip: &IpAddr| cfg.trusted.iter().any(|net| net.contains(ip));
    if !(trusted(&peer) || carries_edge_secret(headers, cfg)) {
        return peer;
    }
    let mut chain = Vec::new();
    for value in headers.get_all(wire::FORWARDED_FOR) {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<IpAddr>() {
                Ok(ip) => chain.push(ip),
                Err(_) => return peer,
            }
        }
    }
    // The nearest address that is not one of our proxies is the client.
    chain
        .iter()
        .rev()
        .find(|ip| !trusted(ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

fn is_auth_path(path: &str) -> bool {
    path.starts_with("/auth/") || path.starts_with("/v1/auth/")
}

/// Logins and registrations: each costs a password hash.
fn hashes(method: &http::Method, path: &str) -> bool {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    method == http::Method::POST && matches!(path, "/auth/login" | "/auth/register")
}

/// Resolves [`ClientIp`] and applies the per-IP limit on `/auth/*`. While the hashing pool is
/// full, logins and registrations are refused first, before any other work (the handlers
/// check again).
pub async fn client_context(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let ip = resolve(peer, req.headers(), &state.config.proxies);
    let from_edge = carries_edge_secret(req.headers(), &state.config.proxies);
    req.headers_mut().remove(EDGE_SECRET_HEADER);
    req.extensions_mut().insert(ClientIp(ip));
    req.extensions_mut().insert(FromEdge(from_edge));
    if !is_auth_path(req.uri().path()) {
        return next.run(req).await;
    }
    if hashes(req.method(), req.uri().path())
        && let Err(overloaded) = state.hasher.admit()
    {
        return ApiError::from(overloaded).into_response();
    }
    let quota = state.config.limits.auth_ip;
    match state
        .limiter
        .limit(Scope::AuthIp, &format!("ip:{ip}"), quota)
        .await
    {
        Ok(decision) => {
            let mut res = next.run(req).await;
            quota_headers(res.headers_mut(), Scope::AuthIp, quota, &decision);
            res
        }
        // The refusal carries the quota's headers itself.
        Err(limited) => ApiError::from(limited).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn cfg(trusted: &[&str], secret: Option<&str>) -> ProxyConfig {
        ProxyConfig {
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            edge_secret: secret.map(|s| Secret::new(s.to_owned())),
        }
    }

    #[test]
    fn only_logins_and_registrations_are_admitted_early() {
        use http::Method;
        for path in [
            "/auth/login",
            "/auth/register",
            "/v1/auth/login",
            "/v1/auth/register",
        ] {
            assert!(hashes(&Method::POST, path), "{path}");
            assert!(!hashes(&Method::GET, path), "GET {path}");
        }
        for path in [
            "/auth/refresh",
            "/auth/logout",
            "/auth/login/x",
            "/v2/auth/login",
        ] {
            assert!(!hashes(&Method::POST, path), "{path}");
        }
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn untrusted_peers_cannot_claim_an_address() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            resolve(peer, &xff("1.2.3.4"), &cfg(&["10.0.0.0/8"], None)),
            peer
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let c = cfg(&["10.0.0.0/8"], None);
        assert_eq!(
            resolve(peer, &xff("6.6.6.6, 1.2.3.4, 10.0.0.7"), &c),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve(peer, &xff("not-an-ip"), &c), peer);
        assert_eq!(resolve(peer, &HeaderMap::new(), &c), peer);
    }

    #[test]
    fn the_edge_secret_makes_the_header_believed() {
        let peer: IpAddr = "198.51.100.1".parse().unwrap();
        let c = cfg(&[], Some("edge-secret-0123456789"));
        let mut h = xff("1.2.3.4");
        assert_eq!(resolve(peer, &h, &c), peer);
        h.insert(
            EDGE_SECRET_HEADER,
            "wrong-secret-000000000".parse().unwrap(),
        );
        assert_eq!(resolve(peer, &h, &c), peer);
        h.insert(
            EDGE_SECRET_HEADER,
            "edge-secret-0123456789".parse().unwrap(),
        );
        assert_eq!(resolve(peer, &h, &c), "1.2.3.4".parse::<IpAddr>().unwrap());
    }
}
