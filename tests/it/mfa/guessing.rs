//! The limits on guessing (SPEC §8): an `mfa_token` dies after 5 wrong codes; an account
//! takes at most 10 wrong codes, then `429` with `Retry-After` (one back per 6 minutes),
//! however many tokens the guesser holds. A wrong password looks exactly as it does for an
//! account without a second factor.

use serde_json::json;

use super::{challenge, code, enrol, verify, wrong_code};
use crate::helpers::{Api as _, spawn_app_and_user};

#[tokio::test(flavor = "multi_thread")]
async fn an_mfa_token_dies_after_five_wrong_codes() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let token = challenge(&app, &user).await;
    for _ in 0..5 {
        verify(&app, &token, json!({"code": wrong_code(&enrolled.secret)}))
            .await
            .assert_problem(403, "invalid-mfa-code");
    }
    verify(&app, &token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .assert_problem(401, "invalid-mfa-token");
    // A new login still works with the same (unspent) code.
    let token = challenge(&app, &user).await;
    verify(&app, &token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_takes_ten_wrong_codes_then_429_even_for_the_right_one() {
    let (app, user) = spawn_app_and_user().await;
    let enrolled = enrol(&app, &user).await;
    let mut wrong = 0;
    while wrong < 10 {
        let token = challenge(&app, &user).await;
        for _ in 0..4 {
            if wrong == 10 {
                break;
            }
            let proof = if wrong % 2 == 0 {
                json!({"code": wrong_code(&enrolled.secret)})
            } else {
                json!({"recovery_code": "AAAA-BBBB-CCCC-DDDD"})
            };
            verify(&app, &token, proof)
                .await
                .assert_problem(403, "invalid-mfa-code");
            wrong += 1;
        }
    }
    let token = challenge(&app, &user).await;
    let out = verify(&app, &token, json!({"code": code(&enrolled.secret, 0)})).await;
    out.assert_problem(429, "rate-limited");
    let wait = out.retry_after(360);
    assert!(wait > 300, "about one refill away: {wait}");
    // The self-service routes draw on the same budget.
    let out = app
        .as_user(&user)
        .delete("/users/me/mfa")
        .json(&json!({"code": code(&enrolled.secret, 0)}))
        .send()
        .await;
    out.assert_problem(429, "rate-limited");
    let rejected = app.audit_count("mfa.code_rejected", user.id).await;
    assert_eq!(rejected, 10);
    // One refill later (6 minutes, moved back in the database) one more guess is allowed.
    app.db
        .execute(
            "UPDATE mfa_failures SET at = at - interval '361 seconds' WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    verify(&app, &token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .expect_json(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_looks_the_same_with_or_without_mfa() {
    let (app, with_mfa) = spawn_app_and_user().await;
    let without = app.new_user().await;
    enrol(&app, &with_mfa).await;
    let a = app.login_raw(&with_mfa.username, "wrong password 1").await;
    let b = app.login_raw(&without.username, "wrong password 1").await;
    a.assert_problem(401, "invalid-credentials");
    assert_eq!(a.status, b.status);
    assert_eq!(a.json(), b.json());
    let visible = |r: &crate::helpers::Reply| {
        [
            "content-type",
            "www-authenticate",
            "cache-control",
            "retry-after",
        ]
        .map(|h| r.header(h))
    };
    assert_eq!(visible(&a), visible(&b));
}
