//! `MFA_REQUIRED_ROLES` (SPEC §8): the permissions such a role grants need a token whose `amr`
//! holds `otp`. Without one the holder gets `403` `/problems/mfa-enrolment-required` for them,
//! keeps what other roles grant, and can still enrol. A recovery code (`rc`) is not `otp`.

use serde_json::json;

use super::{amr_of, challenge, code, enrol, verify, with_tokens};
use crate::helpers::{Api as _, spawn_app_set};
use crate::jwt::jwt_parts;

#[tokio::test(flavor = "multi_thread")]
async fn permissions_of_a_required_role_need_a_totp_login() {
    let app = spawn_app_set(&[("MFA_REQUIRED_ROLES", "auditor")]).await;
    let auditor = app.new_auditor().await;
    let perms = &jwt_parts(&auditor.access).1["perms"];
    assert_eq!(
        perms,
        &json!([]),
        "a password-only token is not signed with them"
    );
    let out = app.as_user(&auditor).list_users(&[]).await;
    out.assert_problem(403, "mfa-enrolment-required");
    let other = app.new_user().await;
    app.as_user(&auditor)
        .get_user(other.id)
        .await
        .assert_problem(403, "mfa-enrolment-required");
    // Their own account is theirs either way.
    app.as_user(&auditor).me().await.expect_json(200);

    let enrolled = enrol(&app, &auditor).await;
    let token = challenge(&app, &auditor).await;
    let tokens = verify(&app, &token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .expect_json(200);
    let proved = with_tokens(&auditor, &tokens);
    assert_eq!(amr_of(&proved.access), json!(["pwd", "otp"]));
    app.as_user(&proved).list_users(&[]).await.expect_json(200);

    let token = challenge(&app, &auditor).await;
    let tokens = verify(
        &app,
        &token,
        json!({"recovery_code": enrolled.recovery_codes[0]}),
    )
    .await
    .expect_json(200);
    let by_rc = with_tokens(&auditor, &tokens);
    app.as_user(&by_rc)
        .list_users(&[])
        .await
        .assert_problem(403, "mfa-enrolment-required");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_roles_keep_their_permissions() {
    let app = spawn_app_set(&[("MFA_REQUIRED_ROLES", "auditor")]).await;
    app.create_role("reader", &["users:read"]).await;
    app.create_role("auditor", &["users:read", "roles:read"])
        .await;
    let both = app.new_user_with_roles(&["reader", "auditor"]).await;
    app.as_user(&both).list_users(&[]).await.expect_json(200);
    app.as_user(&both)
        .get("/roles")
        .send()
        .await
        .assert_problem(403, "mfa-enrolment-required");
    let a_config = users_origin::Config::from_lookup(|k| {
        (k == "DATABASE_URL" || k == "MFA_REQUIRED_ROLES").then(|| {
            if k == "DATABASE_URL" {
                "postgres://x@127.0.0.1/x"
            } else {
                "not a role!"
            }
            .into()
        })
    });
    assert!(
        a_config.is_err(),
        "a bad role name is a configuration error"
    );
}
