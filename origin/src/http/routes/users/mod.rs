//! `/users`: administration and self-service of accounts.
//!
//! Authorisation: the caller may always act on their own account (except roles and
//! `is_active`); anyone else needs the matching permission. A caller who may not even read
//! the target gets `404`, so ids cannot be probed ([`crate::http::extract::Auth::require_on`]).
//!
//! - [`read`]: `GET /users/me` and `GET /users/{id}`, through the cache, with `ETag`s.
//! - [`create`]: `POST /users`. [`list`]: `GET /users`. [`delete`]: `DELETE /users/{id}`.
//! - [`update`]: `PUT` and `PATCH /users/{id}`. [`roles`]: granting and revoking one role.
//! - [`sessions`]: listing and ending a user's sessions.
//! - [`mfa`]: enrolling, disabling and resetting a second factor, new recovery codes.

pub mod create;
pub mod delete;
pub mod list;
pub mod mfa;
pub mod read;
pub mod roles;
pub mod sessions;
pub mod update;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::state::AppState;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        read::get_me,
        read::get_user,
        create::create_user,
        list::list_users,
        delete::delete_user,
        roles::grant_role,
        roles::revoke_role,
        update::put_user,
        update::patch_user,
        sessions::list_mine,
        sessions::list_of,
        sessions::revoke_mine,
        sessions::revoke_of,
        sessions::revoke_many_mine,
        sessions::revoke_many_of,
        mfa::enrol,
        mfa::confirm,
        mfa::disable,
        mfa::regenerate_codes,
        mfa::reset
    ),
    components(schemas(
        sessions::SessionView,
        sessions::SessionPage,
        sessions::Revoked,
        list::UserPage,
        mfa::EnrolBody,
        mfa::PendingFactor,
        mfa::CodeBody,
        mfa::ProofBody,
        mfa::RecoveryCodes,
        create::CreateBody,
        update::UserReplace,
        update::UserPatch
    ))
)]
pub struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list::list_users).post(create::create_user))
        .route("/users/me", get(read::get_me))
        .route(
            "/users/{id}",
            get(read::get_user)
                .put(update::put_user)
                .patch(update::patch_user)
                .delete(delete::delete_user),
        )
        .route(
            "/users/me/sessions",
            get(sessions::list_mine).delete(sessions::revoke_many_mine),
        )
        .route("/users/me/sessions/{sid}", delete(sessions::revoke_mine))
        .route(
            "/users/{id}/sessions",
            get(sessions::list_of).delete(sessions::revoke_many_of),
        )
        .route("/users/{id}/sessions/{sid}", delete(sessions::revoke_of))
        .route("/users/me/mfa", delete(mfa::disable))
        .route("/users/me/mfa/totp", post(mfa::enrol))
        .route("/users/me/mfa/totp/{id}/confirm", post(mfa::confirm))
        .route("/users/me/mfa/recovery-codes", post(mfa::regenerate_codes))
        .route("/users/{id}/mfa", delete(mfa::reset))
        .route(
            "/users/{id}/roles/{name}",
            put(roles::grant_role).delete(roles::revoke_role),
        )
}
