//! `GET /users`: keyset pagination (every row once, in order, also while rows are inserted),
//! the `Link` header, limits and cursors, and the filters.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_problem, error_fields, header, json_body, spawn_app, strong_password,
    unique_name,
};

/// Creates `n` users as the admin (a few at a time); returns their views in creation order.
async fn create_users(app: &TestApp, n: usize, prefix: &str) -> Vec<Value> {
    futures::stream::iter(0..n)
        .map(|_| async {
            let username = unique_name(prefix);
            let resp = app
                .create_user(&json!({
                    "username": username, "email": format!("{username}@example.com"),
                    "password": strong_password(), "display_name": format!("Person {username}")
                }))
                .await;
            json_body(resp, 201).await
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

/// Every user id in the database.
async fn all_ids(app: &TestApp) -> BTreeSet<Uuid> {
    app.db
        .query("SELECT id FROM users", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// One page: the body and the `cursor` of the `rel="next"` link, if any.
async fn page(app: &TestApp, query: &[(&str, String)]) -> (Value, Option<String>) {
    let resp = app
        .get("/users")
        .bearer_auth(&app.admin.access)
        .query(query)
        .send()
        .await
        .unwrap();
    let link = header(&resp, "link");
    let body = json_body(resp, 200).await;
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
    let app = spawn_app().await;
    create_users(&app, 23, "p").await;
    let expected = all_ids(&app).await;

    for sort in ["created_at", "-created_at", "username", "-username"] {
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

    let resp = app
        .get("/users")
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    let link = header(&resp, "link").expect("a Link header");
    let first = json_body(resp, 200).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 20);
    assert!(first["next_cursor"].is_string());

    // Follow the link as a client would.
    let target = link_target(&link);
    let path = match target.query() {
        Some(q) => format!("{}?{q}", target.path()),
        None => target.path().to_owned(),
    };
    let resp = app
        .get(&path)
        .bearer_auth(&app.admin.access)
        .send()
        .await
        .unwrap();
    assert!(
        header(&resp, "link").is_none(),
        "no next link on the last page"
    );
    let second = json_body(resp, 200).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 5);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_link_keeps_the_filters() {
    let app = spawn_app().await;
    create_users(&app, 5, "keep").await;
    create_users(&app, 3, "other").await;

    let query = [
        ("q", "keep".to_owned()),
        ("sort", "-username".to_owned()),
        ("limit", "2".to_owned()),
    ];
    let resp = app
        .get("/users")
        .bearer_auth(&app.admin.access)
        .query(&query)
        .send()
        .await
        .unwrap();
    let link = header(&resp, "link").expect("a Link header");
    let params: HashMap<String, String> = link_target(&link).query_pairs().into_owned().collect();

    assert_eq!(params.get("q").map(String::as_str), Some("keep"));
    assert_eq!(params.get("sort").map(String::as_str), Some("-username"));
    assert_eq!(params.get("limit").map(String::as_str), Some("2"));
    let items = walk(&app, &[("q", "keep"), ("sort", "-username")], 2).await;
    assert_eq!(items.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn walking_while_users_are_inserted_visits_every_existing_row_once() {
    let app = spawn_app().await;
    create_users(&app, 30, "c").await;
    let existing = all_ids(&app).await;

    for sort in ["created_at", "-created_at", "username", "-username"] {
        // A writer inserts users all the time the pages are read.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let client = app.client.clone();
            let url = app.url("/users");
            let token = app.admin.access.clone();
            tokio::spawn(async move {
                let mut made = 0;
                // Bounded, so that an ascending walk can catch up with the writer.
                while made < 25 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let username = unique_name("c");
                    let resp = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({
                            "username": username, "email": format!("{username}@example.com"),
                            "password": strong_password()
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 201);
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
        let resp = app
            .get("/users")
            .bearer_auth(&app.admin.access)
            .query(&[("limit", limit)])
            .send()
            .await
            .unwrap();
        let problem = assert_problem(resp, 422, "validation-failed").await;
        assert_eq!(error_fields(&problem), vec!["limit"], "{limit}");
    }
    for limit in ["1", "100"] {
        let resp = app
            .get("/users")
            .bearer_auth(&app.admin.access)
            .query(&[("limit", limit)])
            .send()
            .await
            .unwrap();
        json_body(resp, 200).await;
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
            .get("/users")
            .bearer_auth(&app.admin.access)
            .query(&[("cursor", cursor.as_str())])
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "invalid-cursor").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_by_exact_email_and_username_case_insensitively() {
    let app = spawn_app().await;
    let users = create_users(&app, 4, "f").await;
    let target = &users[2];

    for (key, value) in [
        ("email", target["email"].as_str().unwrap().to_uppercase()),
        (
            "username",
            target["username"].as_str().unwrap().to_uppercase(),
        ),
    ] {
        let (body, _) = page(&app, &[(key, value)]).await;
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{key}");
        assert_eq!(items[0]["id"], target["id"]);
    }
    // Exact, not a prefix.
    let prefix = target["username"].as_str().unwrap()[..5].to_owned();
    let (body, _) = page(&app, &[("username", prefix)]).await;
    assert_eq!(body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn q_searches_username_email_and_display_name() {
    let app = spawn_app().await;
    create_users(&app, 3, "noise").await;
    let by_name = app.new_user().await;
    json_body(
        app.patch_user(
            &by_name.access,
            by_name.id,
            &json!({"display_name": "Zebra Crossing"}),
        )
        .await,
        200,
    )
    .await;
    let by_email_name = unique_name("qq");
    let by_email = json_body(
        app.create_user(&json!({
            "username": by_email_name, "email": format!("{by_email_name}@zebra-mail.example"),
            "password": strong_password()
        }))
        .await,
        201,
    )
    .await;

    let (body, _) = page(&app, &[("q", "ZEBRA".to_owned())]).await;
    let found: BTreeSet<Uuid> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(found, BTreeSet::from([by_name.id, id_of(&by_email)]));

    let (body, _) = page(&app, &[("q", by_email_name[2..8].to_owned())]).await;
    let found: Vec<Uuid> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(found, vec![id_of(&by_email)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_by_role_and_activity() {
    let app = spawn_app().await;
    app.create_role("auditor", &["users:read"]).await;
    let auditor = app.new_user_with_roles(&["auditor"]).await;
    let inactive = app.new_user().await;
    app.new_user().await;
    json_body(
        app.patch_user(&app.admin.access, inactive.id, &json!({"is_active": false}))
            .await,
        200,
    )
    .await;

    let (body, _) = page(&app, &[("role", "auditor".to_owned())]).await;
    let ids: Vec<Uuid> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![auditor.id]);

    let (body, _) = page(&app, &[("is_active", "false".to_owned())]).await;
    let ids: Vec<Uuid> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![inactive.id]);

    let (body, _) = page(&app, &[("is_active", "true".to_owned())]).await;
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        3,
        "admin, auditor and one more"
    );

    let (body, _) = page(&app, &[("role", "admin".to_owned())]).await;
    let ids: Vec<Uuid> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![app.admin.id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_by_creation_time() {
    let app = spawn_app().await;
    let early = create_users(&app, 3, "early").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = create_users(&app, 3, "mid").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = create_users(&app, 3, "late").await;
    let newest = |views: &[Value]| views.iter().map(created_of).max().unwrap();
    let oldest = |views: &[Value]| views.iter().map(created_of).min().unwrap();
    let between = |a: OffsetDateTime, b: OffsetDateTime| {
        let half: time::Duration = (b - a) / 2;
        (a + half).format(&Rfc3339).unwrap()
    };
    let after = between(newest(&early), oldest(&middle));
    let before = between(newest(&middle), oldest(&late));

    let items = walk(
        &app,
        &[
            ("created_after", after.as_str()),
            ("created_before", before.as_str()),
        ],
        100,
    )
    .await;

    let got: BTreeSet<Uuid> = items.iter().map(id_of).collect();
    let want: BTreeSet<Uuid> = middle.iter().map(id_of).collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_filter_values_are_client_errors() {
    let app = spawn_app().await;

    for (key, value) in [
        ("created_after", "yesterday"),
        ("is_active", "maybe"),
        ("sort", "password"),
    ] {
        let resp = app
            .get("/users")
            .bearer_auth(&app.admin.access)
            .query(&[(key, value)])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status == 400 || status == 422, "{key}={value}: {status}");
        let code = if status == 400 {
            "malformed-request"
        } else {
            "validation-failed"
        };
        assert_problem(resp, status, code).await;
    }
}
