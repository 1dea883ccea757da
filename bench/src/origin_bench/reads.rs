//! The read scenarios: `GET /users/{id}` as a cache hit (always the same user) and as a cache
//! miss (a seeded user never requested before, each time); and the listing, `GET
//! /users?limit=20` at page 1 and [`DEEP_PAGE`] pages deep, with a cursor built from the seed
//! (and checked against the one the API issues), and the plan PostgreSQL runs for each.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use http::Uri;
use serde_json::{Value, json};
use users_core::cursor::{Cursor, CursorKey, Sort};
use uuid::Uuid;

use super::args::{DEEP_PAGE, OPEN_CONNECTIONS, PAGE_LIMIT};
use super::env::Env;
use super::floor;
use super::results::Scenario;
use super::scenario::{cache_scenario, measured, scenario};
use crate::load::{self, Target};
use crate::seed::{self, seeded_id};
use crate::stack::seed_stack;

/// Cached read: always the same user, so after the first request it is a cache hit. Besides
/// the fixed rate at half saturation, one at a tenth of it: the latency floor of the machine
/// the run shares, for the half-rate figure to be read against.
pub async fn cache_hit(env: &Env) -> anyhow::Result<Scenario> {
    let hit_id = seeded_id(1);
    let target = env.admin_get_target(&format!("/users/{hit_id}"))?;
    target.probe("cache hit").await?;
    let mut s = cache_scenario(
        env,
        "get_user_cache_hit",
        "GET /users/{id}, cache hit",
        format!("GET /users/{hit_id} (seeded user #1, admin token), the same id every time"),
        &target,
    )
    .await?;
    let rate = s.saturation.ok_rps / 10.0;
    let tenth = measured(
        env,
        load::open(&target, rate, env.args.duration(), OPEN_CONNECTIONS),
        |_| format!("get_user_cache_hit: at a tenth of saturation, {rate:.0} req/s"),
    )
    .await;
    // The latency floor at the same two rates, answering the same bytes.
    let body = env
        .get_as_admin(&format!("/users/{hit_id}"))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let rates = [s.saturation.ok_rps / 2.0, rate];
    let floor = floor::floor(env, body, &rates).await?;
    if let Some(extra) = s.extra.as_object_mut() {
        extra.insert("tenth_rate".to_owned(), serde_json::to_value(&tenth)?);
        extra.insert(
            "floor".to_owned(),
            json!({
                "half_rate": serde_json::to_value(&floor[0])?,
                "tenth_rate": serde_json::to_value(&floor[1])?,
            }),
        );
    }
    Ok(s)
}

/// The seed's stack in the same run: `GET /users/{id}` (the same user every time, as the cache
/// hit) with its admin's token, measured the same way, against a database of the seed's design
/// with as many users.
pub async fn seed_read(env: &Env) -> anyhow::Result<Scenario> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let db = format!("{}_seed", env.db);
    let password = format!("seed-bench-{}", &Uuid::new_v4().simple().to_string()[..12]);
    super::env::log(format!(
        "the seed's stack: seeding {} users into {db}",
        env.args.users
    ));
    let stack = seed_stack::start(&root, &db, env.args.users, env.cores, &password).await;
    let stack = match stack {
        Ok(s) => s,
        Err(e) => {
            let _ = crate::stack::services::drop_database(&db).await;
            return Err(e);
        }
    };
    let measured = async {
        let token = stack.login(&env.client, &password).await?;
        let url = format!("{}/users/{}", stack.base, seed_stack::READ_ID);
        let target = Target::get(200, &url, Some(load::bearer(&token)?))?;
        target.probe("seed read").await?;
        let mut s = scenario(
            env,
            "seed_get_user",
            "the seed's stack: GET /users/{id}",
            format!(
                "GET /users/{} of bench/seed_stack/app.py (FastAPI, uvicorn with {} workers, \
                 synchronous SQLAlchemy, HS256 JWT; the bearer dependency loads the caller, \
                 the handler the user), admin token, the same id every time",
                seed_stack::READ_ID,
                stack.workers
            ),
            &target,
            env.args.concurrency,
            None,
        )
        .await?;
        s.extra = json!({"users": stack.users, "workers": stack.workers});
        Ok::<_, anyhow::Error>(s)
    }
    .await;
    if let Err(e) = stack.remove().await {
        super::env::log(format!("dropping the seed's database: {e:#}"));
    }
    measured
}

/// Cache miss: a different seeded user each request, never one requested before.
pub async fn cache_miss(env: &Env) -> anyhow::Result<Scenario> {
    let target = {
        let auth = load::bearer(&env.admin_token)?;
        let perm = env.perm;
        let mut t = Target::new(200, &env.base, move |k| {
            let path = format!("/users/{}", seeded_id(perm.user(k)));
            let path = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
            load::get(&path, Some(&auth))
        })?;
        t.seq = Arc::clone(&env.fresh);
        t
    };
    target.probe("cache miss").await?;
    cache_scenario(
        env,
        "get_user_cache_miss",
        "GET /users/{id}, cache miss",
        "GET /users/{id} with a different seeded user each request (a pseudo-random \
         permutation of the seeded users: no id is requested twice in the run, so the \
         cache never holds it)"
            .to_owned(),
        &target,
    )
    .await
}

/// Page 1 and the deep page, in that order, and the deep page's number.
pub async fn listing(
    env: &Env,
    pg: &tokio_postgres::Client,
) -> anyhow::Result<(Vec<Scenario>, u64)> {
    let page1_path = format!("/users?limit={PAGE_LIMIT}");
    let deep_page = DEEP_PAGE.min(env.args.users / PAGE_LIMIT).max(2);
    let offset = i64::try_from(PAGE_LIMIT * (deep_page - 1))? - 1;
    let (micros, id) = seed::row_at(pg, offset).await?;
    let cursor = Cursor {
        sort: Sort::CreatedAsc,
        key: CursorKey::Micros(micros),
        id,
    };
    let deep_path = format!("/users?limit={PAGE_LIMIT}&cursor={}", cursor.encode());
    check_listing(env, pg, &page1_path, &deep_path, offset).await?;
    let mut scenarios = Vec::new();
    for (name, title, path, request) in [
        (
            "list_page_1",
            "GET /users?limit=20, page 1",
            page1_path.clone(),
            format!("GET {page1_path} (admin token)"),
        ),
        (
            "list_deep_page",
            "GET /users?limit=20, page 10 000",
            deep_path.clone(),
            format!(
                "GET /users?limit={PAGE_LIMIT}&cursor=… (admin token): page {deep_page}, the \
                 cursor of row #{} in (created_at, id) order, exactly what following \
                 next_cursor {} times sends; answers {PAGE_LIMIT} items",
                offset + 1,
                deep_page - 1
            ),
        ),
    ] {
        let target = env.admin_get_target(&path)?;
        let mut s = scenario(
            env,
            name,
            title,
            request,
            &target,
            env.args.concurrency,
            None,
        )
        .await?;
        s.extra = if name == "list_deep_page" {
            json!({
                "page": deep_page,
                "cursor_row": offset + 1,
                "plan": explain_listing(pg, Some((micros, id))).await?,
            })
        } else {
            json!({"page": 1, "plan": explain_listing(pg, None).await?})
        };
        scenarios.push(s);
    }
    Ok((scenarios, deep_page))
}

/// Checks that the hand-built cursor is what the API itself issues and that the deep page
/// holds the rows it should.
async fn check_listing(
    env: &Env,
    pg: &tokio_postgres::Client,
    page1: &str,
    deep: &str,
    offset: i64,
) -> anyhow::Result<()> {
    let body: Value = env.get_as_admin(page1).send().await?.json().await?;
    let issued = body["next_cursor"]
        .as_str()
        .ok_or_else(|| anyhow!("page 1 has no next_cursor: {body}"))?;
    let (micros, id) = seed::row_at(pg, i64::try_from(PAGE_LIMIT)? - 1).await?;
    let built = Cursor {
        sort: Sort::CreatedAsc,
        key: CursorKey::Micros(micros),
        id,
    }
    .encode();
    if built != issued {
        bail!(
            "the cursor built from the database ({built}) differs from page 1's next_cursor ({issued})"
        );
    }
    let resp = env.get_as_admin(deep).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if !status.is_success() || items.len() != usize::try_from(PAGE_LIMIT)? {
        bail!(
            "the deep page answered {status} with {} items (expected {PAGE_LIMIT}): {body}",
            items.len()
        );
    }
    let (_, first) = seed::row_at(pg, offset + 1).await?;
    if items[0]["id"].as_str() != Some(first.to_string().as_str()) {
        bail!(
            "the deep page starts at {}, expected {first}",
            items[0]["id"]
        );
    }
    Ok(())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the listing query the origin runs (`db::users::list` with
/// no filter, `created_at` order, `LIMIT 21`), after the cursor if any: the plan's nodes, the
/// planning and execution times and the buffers touched (the third of three runs, so warm).
async fn explain_listing(
    pg: &tokio_postgres::Client,
    after: Option<(i64, Uuid)>,
) -> anyhow::Result<Value> {
    const COLUMNS: &str = "u.id, u.username, u.email, u.display_name, u.is_active, \
        u.security_version, u.version, u.created_at, u.updated_at, \
        ARRAY(SELECT ur.role_name FROM user_roles ur WHERE ur.user_id = u.id \
        ORDER BY ur.role_name) AS roles";
    let limit = i64::try_from(PAGE_LIMIT)? + 1;
    let mut plan = Value::Null;
    for _ in 0..3 {
        let row = match after {
            None => {
                let sql = format!(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT {COLUMNS} FROM users u \
                     ORDER BY u.created_at ASC, u.id ASC LIMIT $1"
                );
                pg.query_one(&sql, &[&limit]).await?
            }
            Some((micros, id)) => {
                let at =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)?;
                let sql = format!(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT {COLUMNS} FROM users u \
                     WHERE (u.created_at, u.id) > ($1, $2) \
                     ORDER BY u.created_at ASC, u.id ASC LIMIT $3"
                );
                pg.query_one(&sql, &[&at, &id, &limit]).await?
            }
        };
        plan = row.get(0);
    }
    let top = &plan[0];
    let mut nodes = Vec::new();
    walk_plan(&top["Plan"], &mut nodes);
    Ok(json!({
        "nodes": nodes.join(" → "),
        "planning_ms": top["Planning Time"],
        "execution_ms": top["Execution Time"],
        "shared_hit_blocks": top["Plan"]["Shared Hit Blocks"],
        "shared_read_blocks": top["Plan"]["Shared Read Blocks"],
    }))
}

fn walk_plan(node: &Value, out: &mut Vec<String>) {
    let Some(kind) = node["Node Type"].as_str() else {
        return;
    };
    out.push(match node["Index Name"].as_str() {
        Some(index) => format!("{kind} using {index}"),
        None => kind.to_owned(),
    });
    if let Some(children) = node["Plans"].as_array() {
        for child in children {
            walk_plan(child, out);
        }
    }
}
