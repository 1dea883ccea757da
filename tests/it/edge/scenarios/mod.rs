//! The edge scenarios, written once for every [`EdgeRuntime`], and their harness.
//!
//! Each scenario starts its own origin (with `EDGE_SHARED_SECRET`, over a fresh database) and
//! an edge in front of it ([`Stack`]), talks to the edge as a client would, and looks behind it
//! where it must: the origin's `http_requests_total` (did the origin see that request?), its
//! audit log (which client address and request id did it record?) and its SMTP sink. Requests
//! go through the same [`crate::helpers::Api`] the origin suites use.
//!
//! The edge gets every variable the scenarios rely on ([`edge_vars`]); quotas are far above
//! what a scenario sends except where a scenario sets its own, and the revocation feed is
//! polled at most every second.
//!
//! [`edge_scenarios!`] lists every scenario once, by theme: [`accounts`] (whole journeys
//! through the edge), [`cache`] (profile caching and conditional reads), [`revocation`] (the
//! origin's echo and the feed), [`limits`] (rate limits and the body limit), [`tokens`]
//! (refused tokens), [`sessions`] (ending sessions through and beside the edge), [`mfa`] (second
//! factors through the edge), [`standard`] (OAuth2 clients, idempotent writes, imports), [`outage`] (the origin cut or hanging), [`headers`] (forwarding headers,
//! security headers, request ids, internal endpoints), [`hostile`] (NUL, undecodable strings
//! and the hostile-value sweep of every route).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::{EdgeHandle, EdgeRuntime};
use crate::helpers::{
    AUDIENCE, Api, Endpoint, PUBLIC_URL, Reply, TestApp, UNLIMITED, spawn_app_with,
};
use crate::proxy::TcpProxy;

pub mod accounts;
pub mod cache;
pub mod headers;
pub mod hostile;
pub mod limits;
pub mod mfa;
pub mod outage;
pub mod revocation;
pub mod sessions;
pub mod standard;
pub mod tokens;

/// The secret shared by the edge and the origin (at least 16 characters).
pub const EDGE_SECRET: &str = "edge-shared-secret-for-e2e-0123456789";
/// How long a client waits for an edge's (or the origin's) answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The origin route templates the scenarios count requests of.
const ME: &str = "/users/me";
const USER: &str = "/users/{id}";
const LOGIN: &str = "/auth/login";
const FEED: &str = "/internal/revocations";

/// One `#[tokio::test]` per scenario for the runtime `$runtime` (an expression building an
/// [`EdgeRuntime`]). Every scenario is listed here once, with the module it lives in, so each
/// runtime runs all of them.
macro_rules! edge_scenarios {
    ($runtime:expr) => {
        $crate::edge::scenarios::edge_scenarios!(@tests $runtime;
            accounts::account_lifecycle_through_the_edge,
            accounts::admin_manages_roles_through_the_edge,
            accounts::password_reset_through_the_edge,
            cache::cached_reads_are_served_without_the_origin,
            cache::a_patch_through_the_edge_is_read_back_at_once,
            cache::if_none_match_is_answered_at_the_edge,
            revocation::logout_all_through_the_edge_is_enforced_at_once,
            revocation::revocations_at_the_origin_reach_the_edge_within_the_sync_interval,
            limits::auth_requests_are_rate_limited_per_ip_at_the_edge,
            tokens::invalid_tokens_get_the_origins_401_from_the_edge,
            outage::origin_down_serves_stale_reads_and_fails_writes_fast,
            outage::a_hanging_origin_costs_one_origin_timeout,
            headers::client_forwarding_headers_are_not_trusted,
            headers::security_headers_and_request_ids_on_every_answer,
            headers::internal_endpoints_are_not_reachable_through_the_edge,
            revocation::a_deletion_does_not_wedge_the_revocation_feed,
            limits::oversized_bodies_are_refused_at_the_edge,
            hostile::hostile_input_gets_problems_through_the_edge,
            sessions::ending_a_session_through_the_edge_is_enforced_at_once,
            sessions::a_session_ended_at_the_origin_reaches_the_edge_within_the_sync_interval,
            sessions::a_client_cannot_claim_a_country,
            mfa::the_mfa_journey_through_the_edge,
            mfa::the_step_up_is_rate_limited_per_ip_at_the_edge,
            standard::an_oauth2_client_logs_in_and_refreshes_through_the_edge,
            standard::idempotent_writes_through_the_edge,
            standard::an_import_passes_the_edge,
        );
    };
    (@tests $runtime:expr; $($theme:ident :: $scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $scenario() {
                $crate::edge::scenarios::$theme::$scenario(&$runtime).await;
            }
        )+
    };
}
pub(crate) use edge_scenarios;

/// The edge's variables: the scenario defaults, then `extra` (which win).
pub fn edge_vars(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let defaults = [
        ("JWT_ISSUER", PUBLIC_URL),
        ("JWT_AUDIENCE", AUDIENCE),
        ("EDGE_SHARED_SECRET", EDGE_SECRET),
        ("RATE_LIMIT_AUTH_IP", UNLIMITED),
        ("RATE_LIMIT_USER", UNLIMITED),
        ("PROFILE_CACHE_TTL", "30"),
        ("STALE_IF_ERROR", "300"),
        ("REVOCATION_SYNC_INTERVAL", "1"),
        ("JWKS_TTL", "300"),
        ("ORIGIN_TIMEOUT_MS", "5000"),
    ];
    defaults
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Starts an origin that knows the edge's secret (after `configure`).
pub async fn origin_with(configure: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    spawn_app_with(|vars| {
        vars.insert("EDGE_SHARED_SECRET".into(), EDGE_SECRET.into());
        configure(vars);
    })
    .await
}

/// An origin and an edge in front of it.
pub struct Stack {
    /// Declared first: the edge stops before the origin's database is dropped.
    pub edge: EdgeHandle,
    pub app: TestApp,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("edge", &self.edge)
            .field("app", &self.app)
            .finish()
    }
}

/// An origin and an edge in front of it with the default variables and `extra`.
async fn stack<R: EdgeRuntime>(rt: &R, extra: &[(&str, &str)]) -> Stack {
    stack_over(rt, origin_with(|_| {}).await, extra).await
}

/// An edge with the default variables and `extra` in front of `app`.
async fn stack_over<R: EdgeRuntime>(rt: &R, app: TestApp, extra: &[(&str, &str)]) -> Stack {
    let edge = rt.start(&app.address, &edge_vars(extra)).await;
    Stack { edge, app }
}

/// An origin and an edge that reaches it through a [`TcpProxy`] the test can cut or hang,
/// with `PROFILE_CACHE_TTL=1`, `STALE_IF_ERROR=300` and `ORIGIN_TIMEOUT_MS=timeout_ms`.
async fn stack_behind_proxy<R: EdgeRuntime>(rt: &R, timeout_ms: u64) -> (Stack, TcpProxy) {
    let app = origin_with(|_| {}).await;
    let origin_addr = app
        .endpoint()
        .host_port()
        .parse()
        .expect("a socket address");
    let proxy = TcpProxy::start(origin_addr).await;
    let timeout = timeout_ms.to_string();
    let vars = edge_vars(&[
        ("PROFILE_CACHE_TTL", "1"),
        ("STALE_IF_ERROR", "300"),
        ("ORIGIN_TIMEOUT_MS", &timeout),
    ]);
    let edge = rt.start(&format!("http://{}", proxy.addr()), &vars).await;
    (Stack { edge, app }, proxy)
}

impl Stack {
    /// Requests to the edge.
    pub fn edge(&self) -> Endpoint {
        Endpoint::with_timeout(&self.edge.address, CLIENT_TIMEOUT)
    }

    /// Requests straight to the origin, as a client that bypassed the edge.
    pub fn origin(&self) -> Endpoint {
        Endpoint::with_timeout(&self.app.address, CLIENT_TIMEOUT)
    }

    /// A fresh access token of the bootstrap admin, from a login through the edge.
    pub async fn admin_token(&self) -> String {
        let admin = &self.app.admin;
        self.edge()
            .login(&admin.username, &admin.password)
            .await
            .access_token
    }

    /// How many requests the origin has answered on the route template `route`.
    pub async fn origin_requests(&self, route: &str) -> f64 {
        self.app
            .metrics()
            .await
            .sum("http_requests_total", &[("route", route)])
    }

    /// Reads `/users/me` through the edge with `token` and asserts the `401 invalid-token`
    /// came from the edge itself: the origin answered no request on `/users/me` meanwhile
    /// (`why` says why it must not). Returns the answer.
    pub async fn assert_refused_at_the_edge(&self, token: &str, why: &str) -> Reply {
        let before = self.origin_requests(ME).await;
        let refused = self.edge().bearer(token).me().await;
        assert_eq!(self.origin_requests(ME).await, before, "{why}");
        refused.assert_invalid_token();
        refused
    }
}

/// `PATCH /users/{id}` with a merge patch, guarded by `If-Match: etag`.
pub async fn patch_if_match(api: &impl Api, id: Uuid, patch: &Value, etag: &str) -> Reply {
    api.patch(&format!("/users/{id}"))
        .header("if-match", etag)
        .merge_patch(patch)
        .send()
        .await
}

/// The headers every edge answer carries, whoever made it.
#[track_caller]
fn assert_edge_headers(what: &str, reply: &Reply) {
    let expect = |name: &str, ok: &dyn Fn(&str) -> bool| {
        let value = reply.header(name);
        assert!(
            value.as_deref().is_some_and(ok),
            "{what}: {name} is {value:?}; answer {reply}"
        );
    };
    expect("x-request-id", &|v| !v.is_empty());
    expect("x-content-type-options", &|v| v == "nosniff");
    expect("x-frame-options", &|v| v == "DENY");
    expect("referrer-policy", &|v| v == "no-referrer");
    expect("strict-transport-security", &|v| v.starts_with("max-age="));
    expect("content-security-policy", &|v| {
        v.contains("default-src 'none'")
    });
    for internal in ["x-users-revoked", "x-edge-secret"] {
        assert!(
            reply.header(internal).is_none(),
            "{what}: {internal} reached the client: {reply}"
        );
    }
}
