//! Sessions (SPEC §7): one per login, listed and ended by their owner or an administrator.
//! Ending one revokes its refresh family and its access tokens at once; the owner's other
//! sessions keep working. (The edges' side is in `edge::scenarios::sessions`.)

mod revoke;

use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Api as _, Reply, TestApp, TestUser, spawn_app, spawn_app_and_user};
use crate::jwt::jwt_parts;

/// The session id (`sid`) an access token carries.
pub fn sid_of(access: &str) -> Uuid {
    let (_, claims) = jwt_parts(access);
    claims["sid"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("no sid in {claims}"))
}

/// `GET /users/me/sessions` as `user`, expecting `200`.
pub async fn my_sessions(app: &impl crate::helpers::Api, user: &TestUser) -> Value {
    app.as_user(user)
        .get("/users/me/sessions")
        .send()
        .await
        .expect_json(200)
}

/// The ids of a page of sessions.
pub fn ids(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| Uuid::parse_str(s["id"].as_str().expect("id")).expect("uuid"))
        .collect()
}

/// `user` logged in again with `user_agent`.
async fn login_as_agent(app: &TestApp, user: &TestUser, user_agent: &str) -> TestUser {
    let reply: Reply = app
        .post("/auth/login")
        .header("user-agent", user_agent)
        .json(&serde_json::json!({"login": user.username, "password": user.password}))
        .send()
        .await;
    let pair = reply.expect_json(200);
    TestUser {
        access: pair["access_token"].as_str().expect("access").to_owned(),
        refresh: pair["refresh_token"].as_str().expect("refresh").to_owned(),
        ..user.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_login_is_a_session_its_owner_can_see() {
    let (app, user) = spawn_app_and_user().await;
    let phone = login_as_agent(&app, &user, "Phone/1.0 (like nothing)").await;

    let page = my_sessions(&app, &phone).await;

    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(page["next_cursor"], Value::Null);
    // Newest first; the one making the request is `current`.
    let newest = &items[0];
    assert_eq!(
        newest["id"].as_str(),
        Some(sid_of(&phone.access).to_string().as_str())
    );
    assert_eq!(newest["current"], true);
    assert_eq!(items[1]["current"], false);
    assert_eq!(
        items[1]["id"].as_str(),
        Some(sid_of(&user.access).to_string().as_str())
    );
    assert_eq!(newest["user_agent"], "Phone/1.0 (like nothing)");
    assert_eq!(newest["ip"], "127.0.0.1");
    assert_eq!(newest["mfa"], false);
    assert_eq!(
        newest["country"],
        Value::Null,
        "no edge said where it came from"
    );
    for field in ["created_at", "last_used_at", "expires_at"] {
        let t = newest[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {newest}"));
        assert!(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{field}: {t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_country_header_is_believed_only_from_the_edge() {
    let secret = "edge-secret-for-sessions-0123";
    let app = crate::helpers::spawn_app_set(&[("EDGE_SHARED_SECRET", secret)]).await;
    let user = app.new_user().await;
    let login = |headers: Vec<(&'static str, &'static str)>| {
        let app = &app;
        let user = &user;
        async move {
            app.post("/auth/login")
                .headers(&headers)
                .json(&serde_json::json!({"login": user.username, "password": user.password}))
                .send()
                .await
                .expect_json(200)
        }
    };
    let forged = login(vec![("x-edge-country", "KP")]).await;
    let edge = login(vec![("x-edge-country", "de"), ("x-edge-secret", secret)]).await;

    let page = my_sessions(&app, &user).await;
    let country_of = |pair: &Value| {
        let sid = sid_of(pair["access_token"].as_str().expect("access"));
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|s| s["id"] == sid.to_string())
            .map(|s| s["country"].clone())
            .expect("listed")
    };
    assert_eq!(
        country_of(&forged),
        Value::Null,
        "a client cannot claim a country"
    );
    assert_eq!(country_of(&edge), "DE");
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshing_keeps_the_session_and_its_id() {
    let (app, user) = spawn_app_and_user().await;
    let sid = sid_of(&user.access);
    let before: Value = my_sessions(&app, &user).await["items"][0].clone();

    let pair = app.refresh(&user.refresh).await.expect_json(200);

    let access = pair["access_token"].as_str().expect("access");
    assert_eq!(sid_of(access), sid, "a refresh continues the session");
    let after = my_sessions(&app, &user).await;
    assert_eq!(ids(&after), vec![sid]);
    assert!(
        after["items"][0]["last_used_at"].as_str() >= before["last_used_at"].as_str(),
        "{before} then {after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_listed_a_page_at_a_time() {
    let (app, user) = spawn_app_and_user().await;
    let second = app.second_session(&user).await;
    let third = app.second_session(&user).await;

    let first_page = app
        .as_user(&user)
        .get("/users/me/sessions?limit=2")
        .send()
        .await
        .expect_json(200);
    let cursor = first_page["next_cursor"].as_str().expect("a next page");
    let rest = app
        .as_user(&user)
        .get(&format!("/users/me/sessions?limit=2&cursor={cursor}"))
        .send()
        .await
        .expect_json(200);

    let mut all = ids(&first_page);
    all.extend(ids(&rest));
    let expected: Vec<Uuid> = [&third, &second, &user]
        .iter()
        .map(|u| sid_of(&u.access))
        .collect();
    assert_eq!(all, expected, "newest first, none twice");
    assert_eq!(rest["next_cursor"], Value::Null);
    for bad in ["limit=0", "limit=101", "limit=x"] {
        let r = app
            .as_user(&user)
            .get(&format!("/users/me/sessions?{bad}"))
            .send()
            .await;
        r.assert_problem(422, "validation-failed");
    }
    app.as_user(&user)
        .get("/users/me/sessions?cursor=garbage")
        .send()
        .await
        .assert_problem(400, "invalid-cursor");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_sees_anyones_sessions_and_others_see_none() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;

    let page = app
        .as_admin()
        .get(&format!("/users/{}/sessions", alice.id))
        .send()
        .await
        .expect_json(200);
    assert_eq!(ids(&page), vec![sid_of(&alice.access)]);
    assert_eq!(
        page["items"][0]["current"], false,
        "not the admin's session"
    );

    let probe = app
        .as_user(&bob)
        .get(&format!("/users/{}/sessions", alice.id))
        .send()
        .await;
    probe.assert_problem(404, "not-found");
    let own = app
        .as_user(&bob)
        .get(&format!("/users/{}/sessions", bob.id))
        .send()
        .await
        .expect_json(200);
    assert_eq!(own["items"][0]["current"], true);
    app.as_admin()
        .get(&format!("/users/{}/sessions", Uuid::now_v7()))
        .send()
        .await
        .assert_problem(404, "not-found");
}
