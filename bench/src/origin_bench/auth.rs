//! The scenarios that hash a password: login as seeded users (each at most once), registration
//! with fresh usernames, and logins at twice what the origin can hash (overload).

use std::collections::HashMap;
use std::sync::Arc;

use argon2::Params;
use http::Uri;
use serde_json::{Value, json};

use super::args::OVERLOAD_CONNECTIONS;
use super::env::{Env, log};
use super::results::{Hashing, Overload, Scenario};
use super::scenario::scenario;
use crate::figures::round3;
use crate::host;
use crate::load::{self, Target};
use crate::seed::{SEED_PASSWORD, seeded_username};

/// Login as seeded users, each at most once: the scenario, and its target for the overload run.
/// `params` are the seed hash's, for the description.
pub async fn login(env: &Env, params: &Params) -> anyhow::Result<(Scenario, Target)> {
    let target = {
        let path = Uri::from_static("/auth/login");
        let perm = env.perm;
        let mut t = Target::new(200, &env.base, move |k| {
            load::post_json(
                &path,
                format!(
                    r#"{{"login":"{}","password":"{SEED_PASSWORD}"}}"#,
                    seeded_username(perm.user(k))
                ),
            )
        })?;
        t.seq = Arc::clone(&env.fresh);
        t
    };
    target.probe("login").await?;
    let login = scenario(
        env,
        "login",
        "POST /auth/login",
        format!(
            "POST /auth/login JSON as a seeded user (a different one each request; password \
             known, hash seeded with m={} KiB, t={}, p={})",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ),
        &target,
        env.args.auth_concurrency,
        None,
    )
    .await?;
    Ok((login, target))
}

/// The login saturation as a share of the hashing limits.
pub fn login_extra(login: &Scenario, hashing: &Hashing) -> Value {
    json!({
        "hash_limit_rps": hashing.limit_rps,
        "share_of_limit": round3(login.saturation.ok_rps / hashing.limit_rps),
        "phc_limit_rps": hashing.phc_limit_rps,
        "share_of_phc_limit": round3(login.saturation.ok_rps / hashing.phc_limit_rps),
    })
}

/// Registration with fresh usernames.
pub async fn register(env: &Env) -> anyhow::Result<Scenario> {
    let run_tag = format!("{:x}", (host::unix_secs() % 0xf_ffff));
    let path = Uri::from_static("/auth/register");
    let target = Target::new(201, &env.base, move |k| {
        let username = format!("rg{run_tag}x{k}");
        load::post_json(
            &path,
            format!(
                r#"{{"username":"{username}","email":"{username}@bench.test","password":"quartz-meadow-falcon-tundra-7319"}}"#
            ),
        )
    })?;
    target.probe("register").await?;
    scenario(
        env,
        "register",
        "POST /auth/register",
        "POST /auth/register JSON with a fresh username each request (zxcvbn policy check, \
         Argon2id hash, insert, role grant, audit)"
            .to_owned(),
        &target,
        env.args.auth_concurrency,
        None,
    )
    .await
}

/// Overload: logins at twice the hashing limit (or twice what login sustained, if more: on a
/// machine shared with other work the timed hash can come out slow, and the overload must still
/// exceed what the origin can serve), open loop.
pub async fn overload(
    env: &Env,
    login_target: &Target,
    limit_rps: f64,
    login_saturation_rps: f64,
) -> Overload {
    let rate = 2.0 * limit_rps.max(login_saturation_rps);
    log(format!(
        "overload: logins at {rate:.0}/s (2 × max(hashing limit, login saturation)) for {} s",
        env.args.overload_duration_s
    ));
    let before = env.metrics().await;
    let stats = env
        .measure(load::open(
            login_target,
            rate,
            env.args.overload_duration(),
            OVERLOAD_CONNECTIONS,
        ))
        .await;
    let after = env.metrics().await;
    let counter = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let s503 = stats.status(503).cloned();
    let overload = Overload {
        rate_rps: round3(rate),
        share_503: round3(
            s503.as_ref().map_or(0, |l| l.count) as f64 / stats.requests.max(1) as f64,
        ),
        p50_503_ms: s503.as_ref().map(|l| l.p50_ms),
        p99_503_ms: s503.as_ref().map(|l| l.p99_ms),
        hash_rejections: counter(&after, "users_hash_rejections_total")
            - counter(&before, "users_hash_rejections_total"),
        stats,
    };
    log(format!(
        "overload: {} requests, {:.1} % 503 (p50 {:?} ms, p99 {:?} ms), {:?}",
        overload.stats.requests,
        overload.share_503 * 100.0,
        overload.p50_503_ms,
        overload.p99_503_ms,
        overload.stats.error_kinds
    ));
    overload
}
