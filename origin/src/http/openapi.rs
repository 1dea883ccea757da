//! The OpenAPI 3.1 description, generated from the handlers' annotations (`utoipa`), served at
//! `/openapi.json`, with interactive docs at `/docs` whose assets are compiled into the binary.

use axum::Router;
use users_core::problem::{FieldProblem, PROBLEM_JSON, Problem};
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityRequirement,
    SecurityScheme,
};
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
    tags((name = "auth"), (name = "users"), (name = "sessions"), (name = "mfa"), (name = "roles"), (name = "admin"), (name = "operations"))
)]
struct ApiDoc;

/// Adds the security schemes (a bearer token, or the OAuth2 password flow at the token
/// endpoint, so the interactive docs log a person in with a password) and, on every
/// operation, the problem response that any error gets. An operation that names `bearer`
/// accepts either.
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
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::with_refresh_url(
                    users_core::wire::TOKEN_PATH,
                    Scopes::new(),
                    users_core::wire::TOKEN_PATH,
                ))],
                "Log in with a username (or e-mail address) and password at the token endpoint.",
            )),
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
                let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
                let oauth2 = SecurityRequirement::new("oauth2", Vec::<String>::new());
                if let Some(security) = &mut op.security
                    && security.contains(&bearer)
                    && !security.contains(&oauth2)
                {
                    security.push(oauth2);
                }
                op.responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| RefOr::T(problem.clone()));
            }
        }
    }
}

/// Declares `Idempotency-Key` on the routes that take one, and `Idempotent-Replayed` on
/// their success answers.
fn idempotency_key(doc: &mut Doc) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};

    let key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "A key of the client's (1 to 255 visible ASCII characters, bare or as a \
             structured-field string): a repeat of the request with it replays the first answer \
             (`Idempotent-Replayed: true`); with another request it is `422`, while the first \
             is in flight `409`. Kept `IDEMPOTENCY_TTL` (24 h).",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(crate::idempotency::KEY_MAX)),
        ))
        .build();
    let replayed = HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        ))
        .description(Some(
            "`true` on the stored answer to an earlier request with this key",
        ))
        .build();
    for (method, path) in crate::http::idempotency::ROUTES {
        let Some(item) = doc.paths.paths.get_mut(path) else {
            continue;
        };
        let op = match method {
            "post" => item.post.as_mut(),
            _ => None,
        };
        let Some(op) = op else { continue };
        op.parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(key.clone()));
        for (status, response) in op.responses.responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                let header = RefOr::T(replayed.clone());
                response
                    .headers
                    .insert("Idempotent-Replayed".into(), header);
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
    doc.merge(routes::admin::Docs::openapi());
    Conventions.modify(&mut doc);
    idempotency_key(&mut doc);
    doc
}

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
}
