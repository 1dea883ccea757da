//! Ending sessions: one, the others, or all; by the owner or an administrator.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{ids, my_sessions, sid_of};
use crate::helpers::{Api as _, TestApp, TestUser, spawn_app, spawn_app_and_user};

/// Both tokens of `session` are dead.
async fn assert_ended(app: &TestApp, session: &TestUser) {
    app.as_user(session).me().await.assert_invalid_token();
    app.refresh(&session.refresh)
        .await
        .assert_problem(401, "invalid-grant");
}

/// `session` still reads and refreshes.
async fn assert_alive(app: &TestApp, session: &TestUser) {
    app.as_user(session).me().await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn ending_one_session_revokes_its_tokens_at_once_and_keeps_the_others() {
    let (app, laptop) = spawn_app_and_user().await;
    let phone = app.second_session(&laptop).await;
    let stolen = sid_of(&phone.access);

    app.as_user(&laptop)
        .delete(&format!("/users/me/sessions/{stolen}"))
        .request_id("end-phone-session")
        .send()
        .await
        .expect_status(204);

    assert_ended(&app, &phone).await;
    assert_alive(&app, &laptop).await;
    assert_eq!(
        ids(&my_sessions(&app, &laptop).await),
        vec![sid_of(&laptop.access)]
    );
    let audit = app
        .audit_of_request("session.revoked", "end-phone-session")
        .await
        .expect("audited");
    assert_eq!(audit.details["session_id"], stolen.to_string());
    assert_eq!(audit.target, Some(laptop.id));
    // Once ended it is gone: a second attempt finds nothing.
    app.as_user(&laptop)
        .delete(&format!("/users/me/sessions/{stolen}"))
        .send()
        .await
        .assert_problem(404, "not-found");
}

#[tokio::test(flavor = "multi_thread")]
async fn someone_elses_session_is_not_found() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let bobs = sid_of(&bob.access);

    for path in [
        format!("/users/me/sessions/{bobs}"),
        format!("/users/me/sessions/{}", Uuid::now_v7()),
        "/users/me/sessions/not-a-uuid".to_owned(),
        format!("/users/{}/sessions/{bobs}", bob.id),
    ] {
        let r = app.as_user(&alice).delete(&path).send().await;
        r.assert_problem(404, "not-found");
    }
    assert_alive(&app, &bob).await;
    app.refresh(&bob.refresh).await.expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn ending_the_other_sessions_keeps_the_current_one() {
    let (app, user) = spawn_app_and_user().await;
    let second = app.second_session(&user).await;
    let third = app.second_session(&user).await;

    let answer = app
        .as_user(&second)
        .delete("/users/me/sessions?scope=others")
        .send()
        .await
        .expect_json(200);

    assert_eq!(answer, json!({"revoked": 2}));
    assert_ended(&app, &user).await;
    assert_ended(&app, &third).await;
    assert_alive(&app, &second).await;
    app.refresh(&second.refresh).await.expect_json(200);
    app.as_user(&second)
        .delete("/users/me/sessions?scope=some")
        .send()
        .await
        .assert_problem(422, "validation-failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_ends_one_or_every_session_of_a_user() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let second = app.second_session(&user).await;
    let third = app.second_session(&user).await;
    let admin = app.as_admin();

    admin
        .delete(&format!(
            "/users/{}/sessions/{}",
            user.id,
            sid_of(&third.access)
        ))
        .send()
        .await
        .expect_status(204);
    assert_ended(&app, &third).await;
    assert_alive(&app, &user).await;

    let answer = admin
        .delete(&format!("/users/{}/sessions", user.id))
        .request_id("end-all-sessions")
        .send()
        .await
        .expect_json(200);
    assert_eq!(answer, json!({"revoked": 2}));
    assert_ended(&app, &user).await;
    assert_ended(&app, &second).await;
    let audit = app
        .audit_of_request("sessions.revoked", "end-all-sessions")
        .await
        .expect("audited");
    assert_eq!(audit.actor, Some(app.admin.id));
    assert_eq!(audit.details, json!({"scope": "all", "count": 2}));
    // The admin's own session was not one of them.
    assert_alive(&app, &app.admin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_needs_users_update_on_anyone_else() {
    let app = spawn_app().await;
    let reader = app.new_user_with_roles(&["user"]).await;
    let victim = app.new_user().await;

    let r = app
        .as_user(&reader)
        .delete(&format!("/users/{}/sessions", victim.id))
        .send()
        .await;

    r.assert_problem(404, "not-found");
    assert_alive(&app, &victim).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_out_ends_the_current_session_only() {
    let (app, user) = spawn_app_and_user().await;
    let second = app.second_session(&user).await;

    app.as_user(&user)
        .post("/auth/logout")
        .send()
        .await
        .expect_status(204);

    assert_ended(&app, &user).await;
    assert_alive(&app, &second).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_refresh_token_ends_its_session_with_its_access_tokens() {
    let (app, user) = spawn_app_and_user().await;
    let other = app.second_session(&user).await;
    let pair = app.refresh(&user.refresh).await.expect_json(200);
    let fresh = TestUser {
        access: pair["access_token"].as_str().expect("access").to_owned(),
        refresh: pair["refresh_token"].as_str().expect("refresh").to_owned(),
        ..user.clone()
    };

    // The spent token again: someone holds a copy.
    app.refresh(&user.refresh)
        .await
        .assert_problem(401, "invalid-grant");

    assert_ended(&app, &fresh).await;
    assert_alive(&app, &other).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_revocation_feed_lists_an_ended_session_until_its_tokens_expire() {
    let secret = "edge-secret-for-the-feed-0123";
    let app = crate::helpers::spawn_app_set(&[("EDGE_SHARED_SECRET", secret)]).await;
    let user = app.new_user().await;
    let second = app.second_session(&user).await;
    let sid = sid_of(&second.access);
    let (_, claims) = crate::jwt::jwt_parts(&second.access);
    let exp = claims["exp"].as_i64().expect("exp");

    app.as_user(&user)
        .delete(&format!("/users/me/sessions/{sid}"))
        .header("x-edge-secret", secret)
        .send()
        .await
        .expect_status(204);

    let feed = app
        .get("/internal/revocations?since=0")
        .header("x-edge-secret", secret)
        .send()
        .await
        .expect_json(200);
    let event = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["session_id"] == sid.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("the session in {feed}"));
    assert_eq!(event["user_id"], user.id.to_string());
    let until = event["until"].as_i64().expect("until");
    assert!(
        until >= exp && until <= exp + 60,
        "kept until its last token expires (+ leeway): until {until}, exp {exp}"
    );
    assert_eq!(feed["more"], Value::Bool(false));
}
