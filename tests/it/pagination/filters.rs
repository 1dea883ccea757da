//! The filters of `GET /users`: exact email and username, the `q` search, role and activity,
//! creation time, and malformed filter values.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{create_users, created_of, id_of, ids_of, page, walk};
use crate::helpers::{Api as _, account_json, spawn_app, unique_name};

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
    let zebra = json!({"display_name": "Zebra Crossing"});
    app.as_user(&by_name)
        .patch_user(by_name.id, &zebra)
        .await
        .expect_json(200);
    let by_email_name = unique_name("qq");
    let email = json!({"email": format!("{by_email_name}@zebra-mail.example")});
    let by_email = app.create_user(&account_json(&by_email_name, email)).await;
    let by_email = by_email.expect_json(201);

    let (body, _) = page(&app, &[("q", "ZEBRA".to_owned())]).await;
    let found: BTreeSet<Uuid> = ids_of(&body).into_iter().collect();
    assert_eq!(found, BTreeSet::from([by_name.id, id_of(&by_email)]));

    let (body, _) = page(&app, &[("q", by_email_name[2..8].to_owned())]).await;
    assert_eq!(ids_of(&body), vec![id_of(&by_email)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_by_role_and_activity() {
    let app = spawn_app().await;
    let auditor = app.new_auditor().await;
    let inactive = app.new_user().await;
    app.new_user().await;
    let deactivate = json!({"is_active": false});
    app.as_admin()
        .patch_user(inactive.id, &deactivate)
        .await
        .expect_json(200);

    let (body, _) = page(&app, &[("role", "auditor".to_owned())]).await;
    assert_eq!(ids_of(&body), vec![auditor.id]);

    let (body, _) = page(&app, &[("is_active", "false".to_owned())]).await;
    assert_eq!(ids_of(&body), vec![inactive.id]);

    let (body, _) = page(&app, &[("is_active", "true".to_owned())]).await;
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        3,
        "admin, auditor and one more"
    );

    let (body, _) = page(&app, &[("role", "admin".to_owned())]).await;
    assert_eq!(ids_of(&body), vec![app.admin.id]);
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
        let resp = app.as_admin().list_users(&[(key, value)]).await;
        let code = match resp.status {
            400 => "malformed-request",
            422 => "validation-failed",
            other => panic!("{key}={value}: {other}: {resp}"),
        };
        resp.assert_problem(resp.status, code);
    }
}
