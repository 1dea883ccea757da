//! `GET /users`: keyset pagination (every row once, in order, also while rows are inserted),
//! the `Link` header, limits and cursors; the filters are in [`filters`]. The helpers here
//! create users in bulk, read one page ([`page`]) and walk them all ([`walk`]).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::helpers::{Api as _, TestApp, account_json, error_fields, spawn_app, unique_name};

mod filters;

/// Creates `n` users as the admin (a few at a time); returns their views in creation order.
async fn create_users(app: &TestApp, n: usize, prefix: &str) -> Vec<Value> {
    futures::stream::iter(0..n)
        .map(|_| async {
            let username = unique_name(prefix);
            let display_name = format!("Person {username}");
            let body = account_json(&username, json!({"display_name": display_name}));
            app.create_user(&body).await.expect_json(201)
        })
        .buffered(3)
        .collect()
        .await
}

fn id_of(view: &Value) -> Uuid {
    view["id"].as_str().unwrap().parse().unwrap()
}

fn created_of(view: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(view["created_at"].as_str().unwrap(), &Rfc3339).unwrap()
}

/// Every sort order of the list.
const SORTS: [&str; 4] = ["created_at", "-created_at", "username", "-username"];

/// An origin with `n` users created by the admin, and every user id it has then.
async fn app_with_users(n: usize, prefix: &str) -> (TestApp, BTreeSet<Uuid>) {
    let app = spawn_app().await;
    create_users(&app, n, prefix).await;
    let ids = all_ids(&app).await;
    (app, ids)
}

/// Every user id in the database.
async fn all_ids(app: &TestApp) -> BTreeSet<Uuid> {
    let ids = app.strings("SELECT id::text FROM users", &[]).await;
    ids.iter().map(|id| id.parse().expect("a uuid")).collect()
}

/// The ids of a page's items, in order.
fn ids_of(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(id_of)
        .collect()
}

/// One page: the body and the `cursor` of the `rel="next"` link, if any.
async fn page(app: &TestApp, query: &[(&str, String)]) -> (Value, Option<String>) {
    let resp = app.as_admin().get("/users").query(&query).send().await;
    let link = resp.header("link");
    let body = resp.expect_json(200);
    let link_cursor = link.map(|link| {
        assert!(link.contains(r#"rel="next""#), "{link}");
        let target = link_target(&link);
        let params: HashMap<String, String> = target.query_pairs().into_owned().collect();
        params.get("cursor").cloned().expect("a cursor in the link")
    });
    (body, link_cursor)
}

/// The URL inside `<…>` of a `Link` header, resolved against an arbitrary base.
fn link_target(link: &str) -> reqwest::Url {
    let start = link.find('<').expect("<") + 1;
    let end = link.find('>').expect(">");
    let base = reqwest::Url::parse("http://base.invalid/").unwrap();
    base.join(&link[start..end]).expect("a URL")
}

/// Walks every page of `query` with `limit`; returns the items in order. Checks that the
/// `Link` header and `next_cursor` agree on every page.
async fn walk(app: &TestApp, query: &[(&str, &str)], limit: usize) -> Vec<Value> {
    walk_with(app, query, limit, |_| async {}).await
}

async fn walk_with<F, Fut>(
    app: &TestApp,
    query: &[(&str, &str)],
    limit: usize,
    mut between_pages: F,
) -> Vec<Value>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for page_no in 0..1000 {
        let mut q: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, v.to_string())).collect();
        q.push(("limit", limit.to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let (body, link_cursor) = page(app, &q).await;
        let page_items = body["items"].as_array().expect("items").clone();
        assert!(page_items.len() <= limit);
        let next = body["next_cursor"].as_str().map(str::to_owned);
        assert_eq!(link_cursor, next, "Link header and next_cursor agree");
        if next.is_some() {
            assert_eq!(page_items.len(), limit, "only the last page is short");
        }
        items.extend(page_items);
        match next {
            None => return items,
            Some(n) => cursor = Some(n),
        }
        between_pages(page_no).await;
    }
    panic!("pagination did not end");
}

fn assert_sorted(items: &[Value], sort: &str) {
    for pair in items.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let ordered = match sort {
            "created_at" => (created_of(a), id_of(a)) < (created_of(b), id_of(b)),
            "-created_at" => (created_of(a), id_of(a)) > (created_of(b), id_of(b)),
            "username" => a["username"].as_str() < b["username"].as_str(),
            "-username" => a["username"].as_str() > b["username"].as_str(),
            other => panic!("unknown sort {other}"),
        };
        assert!(
            ordered,
            "{sort}: {} before {}",
            a["username"], b["username"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_visit_every_user_once_in_every_sort_order() {
    let (app, expected) = app_with_users(23, "p").await;

    for sort in SORTS {
        let items = walk(&app, &[("sort", sort)], 5).await;
        let ids: Vec<Uuid> = items.iter().map(id_of).collect();
        let unique: BTreeSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "{sort}: no row twice");
        assert_eq!(unique, expected, "{sort}: every row");
        assert_sorted(&items, sort);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_page_has_20_items_and_a_next_link() {
    let app = spawn_app().await;
    create_users(&app, 24, "d").await;

    let resp = app.as_admin().list_users(&[]).await;
    let link = resp.header("link").expect("a Link header");
    let first = resp.expect_json(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 20);
    assert!(first["next_cursor"].is_string());

    // Follow the link as a client would.
    let target = link_target(&link);
    let path = match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_owned(),
    };
    let resp = app.as_admin().get(&path).send().await;
    assert!(
        resp.header("link").is_none(),
        "no next link on the last page"
    );
    let second = resp.expect_json(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 5);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_link_keeps_the_filters() {
    let app = spawn_app().await;
    create_users(&app, 5, "keep").await;
    create_users(&app, 3, "other").await;

    let query = [("q", "keep"), ("sort", "-username"), ("limit", "2")];
    let resp = app.as_admin().list_users(&query).await;
    let link = resp.header("link").expect("a Link header");
    let params: HashMap<String, String> = link_target(&link).query_pairs().into_owned().collect();

    assert_eq!(params.get("q").map(String::as_str), Some("keep"));
    assert_eq!(params.get("sort").map(String::as_str), Some("-username"));
    assert_eq!(params.get("limit").map(String::as_str), Some("2"));
    let items = walk(&app, &[("q", "keep"), ("sort", "-username")], 2).await;
    assert_eq!(items.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn walking_while_users_are_inserted_visits_every_existing_row_once() {
    let (app, existing) = app_with_users(30, "c").await;

    for sort in SORTS {
        // A writer inserts users all the time the pages are read.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let origin = app.endpoint();
            let admin = app.admin.clone();
            tokio::spawn(async move {
                let mut made = 0;
                // Bounded, so that an ascending walk can catch up with the writer.
                while made < 25 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = account_json(&unique_name("c"), json!({}));
                    let resp = origin.as_user(&admin).post_user(&body).await;
                    resp.expect_status(201);
                    made += 1;
                }
                made
            })
        };
        let items = walk_with(&app, &[("sort", sort)], 4, |_| async {
            tokio::time::sleep(Duration::from_millis(15)).await;
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let made = writer.await.unwrap();
        assert!(made > 0, "the writer ran during the walk");

        let ids: Vec<Uuid> = items.iter().map(id_of).collect();
        let seen: BTreeSet<Uuid> = ids.iter().copied().collect();
        assert_eq!(ids.len(), seen.len(), "{sort}: no row twice");
        assert!(
            seen.is_superset(&existing),
            "{sort}: every pre-existing row"
        );
        assert_sorted(&items, sort);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_must_be_between_1_and_100() {
    let app = spawn_app().await;

    for limit in ["0", "101"] {
        let resp = app.as_admin().list_users(&[("limit", limit)]).await;
        let problem = resp.assert_problem(422, "validation-failed");
        assert_eq!(error_fields(&problem), vec!["limit"], "{limit}");
    }
    for limit in ["1", "100"] {
        app.as_admin()
            .list_users(&[("limit", limit)])
            .await
            .expect_json(200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_not_made_by_the_api_is_400() {
    let app = spawn_app().await;
    create_users(&app, 3, "g").await;
    let (first, _) = page(&app, &[("limit", "1".to_owned())]).await;
    let real = first["next_cursor"].as_str().unwrap().to_owned();

    for cursor in [
        "garbage!!".to_owned(),
        "eyJmb28iOiAiYmFyIn0".to_owned(), // {"foo": "bar"}
        real[..real.len() / 2].to_owned(),
        "A".repeat(2000),
    ] {
        let resp = app
            .as_admin()
            .list_users(&[("cursor", cursor.as_str())])
            .await;
        resp.assert_problem(400, "invalid-cursor");
    }
}
