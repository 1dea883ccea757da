//! The OpenAPI 3.1 description, generated from the handlers' annotations (`utoipa`), served at
//! `/openapi.json`, with interactive docs at `/docs` whose assets are compiled into the binary.

use axum::Router;
use users_core::problem::{FieldProblem, PROBLEM_JSON, Problem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::http::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "users API",
        description = "User management: accounts, roles, login with rotating refresh tokens, password reset. \
                       Every route is also served under /v1.",
    ),
    components(schemas(Problem, FieldProblem, users_core::model::UserView, users_core::model::RoleView,
                       users_core::model::TokenResponse, users_core::perms::Permission)),
    modifiers(&Conventions),
    tags((name = "auth"), (name = "users"), (name = "sessions"), (name = "mfa"), (name = "roles"), (name = "operations"))
)]
struct ApiDoc;

/// Adds the bearer scheme and, on every operation, the problem response that any error gets.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let problem = ResponseBuilder::new()
            .description("An error, as RFC 9457 problem details")
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "Problem",
                    ))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| RefOr::T(problem.clone()));
            }
        }
    }
}

/// The whole description.
pub fn document() -> Doc {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes::auth::Docs::openapi());
    doc.merge(routes::users::Docs::openapi());
    doc.merge(routes::roles::Docs::openapi());
    doc.merge(routes::ops::Docs::openapi());
    Conventions.modify(&mut doc);
    doc
}

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
}
