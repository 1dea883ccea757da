//! `/auth/*`: registration, login, refresh, logout and password reset.
//!
//! - [`register`]: `POST /auth/register`, self-registration.
//! - [`login`]: `POST /auth/login`, JSON or the OAuth2 password form.
//! - [`session`]: refresh-token rotation and logout.
//! - [`reset`]: the password-reset mail and its confirmation.
//! - [`email`]: e-mail verification and the confirmations of an e-mail change.
//! - [`mfa`]: `POST /auth/mfa/verify`, the second step of a login with a second factor.

pub mod email;
pub mod login;
pub mod mfa;
pub mod register;
pub mod reset;
pub mod session;

use axum::Router;
use axum::routing::{post, put};

use crate::state::AppState;

/// The OpenAPI description of these routes.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        register::register,
        login::login,
        mfa::verify_mfa,
        session::refresh,
        session::logout,
        reset::request_reset,
        reset::confirm_reset,
        email::verify_email,
        email::resend_verification
    ),
    components(schemas(
        reset::Accepted,
        mfa::VerifyMfaBody,
        email::VerifyBody,
        email::ResendBody,
        email::ResendAccepted
    ))
)]
pub struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register::register))
        .route("/auth/login", post(login::login))
        .route("/auth/mfa/verify", post(mfa::verify_mfa))
        .route("/auth/refresh", post(session::refresh))
        .route("/auth/logout", post(session::logout))
        .route("/auth/password/reset", post(reset::request_reset))
        .route("/auth/password/reset/{token}", put(reset::confirm_reset))
        .route("/auth/email/verify", post(email::verify_email))
        .route(
            "/auth/email/verify/resend",
            post(email::resend_verification),
        )
}
