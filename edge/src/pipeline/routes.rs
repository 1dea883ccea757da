//! Which of the edge's behaviours a request gets, from its method and path (`/v1` included).

use http::Method;
use uuid::Uuid;

/// A user named in a path: `me` or an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Me,
    Id(Uuid),
}

impl Target {
    /// The user id, given the caller's own.
    pub fn resolve(self, me: Uuid) -> Option<Uuid> {
        match self {
            Self::Me => Some(me),
            Self::Id(id) => Some(id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    /// Origin-internal paths (`/internal/*`, `/metrics`): never forwarded from clients.
    Internal,
    /// `/auth/*`: rate-limited per client IP.
    Auth,
    /// `GET /users/me`, `GET /users/{id}`: cacheable.
    ProfileRead(Target),
    /// A write that changes the named user's view.
    UserWrite(Target),
    Other,
}

fn target(segment: &str) -> Option<Target> {
    if segment == "me" {
        return Some(Target::Me);
    }
    Uuid::parse_str(segment).ok().map(Target::Id)
}

pub fn classify(method: &Method, path: &str) -> Route {
    let path = match path.strip_prefix("/v1") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    };
    if path == "/edge/health" {
        return Route::Health;
    }
    if path.starts_with("/internal/") || path == "/internal" || path == "/metrics" {
        return Route::Internal;
    }
    if path.starts_with("/auth/") {
        return Route::Auth;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["users", id]) => target(id).map_or(Route::Other, Route::ProfileRead),
        (&Method::PUT | &Method::PATCH | &Method::DELETE, ["users", id, ..]) => {
            target(id).map_or(Route::Other, Route::UserWrite)
        }
        // Enrolling, confirming and new recovery codes: confirming changes `mfa_enabled`.
        (&Method::POST, ["users", id, "mfa", ..]) => {
            target(id).map_or(Route::Other, Route::UserWrite)
        }
        _ => Route::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let id = Uuid::from_u128(5);
        assert_eq!(classify(&Method::GET, "/edge/health"), Route::Health);
        assert_eq!(classify(&Method::POST, "/v1/auth/login"), Route::Auth);
        assert_eq!(
            classify(&Method::GET, "/users/me"),
            Route::ProfileRead(Target::Me)
        );
        assert_eq!(
            classify(&Method::GET, &format!("/v1/users/{id}")),
            Route::ProfileRead(Target::Id(id))
        );
        assert_eq!(
            classify(&Method::PATCH, &format!("/users/{id}")),
            Route::UserWrite(Target::Id(id))
        );
        assert_eq!(
            classify(&Method::PUT, &format!("/users/{id}/roles/admin")),
            Route::UserWrite(Target::Id(id))
        );
        assert_eq!(
            classify(&Method::POST, &format!("/users/me/mfa/totp/{id}/confirm")),
            Route::UserWrite(Target::Me)
        );
        assert_eq!(
            classify(&Method::DELETE, &format!("/users/{id}/mfa")),
            Route::UserWrite(Target::Id(id))
        );
        assert_eq!(classify(&Method::POST, "/auth/mfa/verify"), Route::Auth);
        assert_eq!(classify(&Method::GET, "/users"), Route::Other);
        assert_eq!(classify(&Method::GET, "/users/not-a-uuid"), Route::Other);
        assert_eq!(classify(&Method::GET, "/v1x/users/me"), Route::Other);
        assert_eq!(
            classify(&Method::GET, "/internal/revocations"),
            Route::Internal
        );
        assert_eq!(classify(&Method::GET, "/v1/metrics"), Route::Internal);
    }
}
