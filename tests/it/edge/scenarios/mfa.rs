//! Second factors through the edge (SPEC §8): the step-up routes are forwarded (the edge needs
//! no understanding of `amr` beyond verifying the token), `POST /auth/mfa/verify` is limited
//! per client address like every `/auth/*` route, the form path's RFC 6749 error passes as it
//! is, and enabling MFA is read back through the edge's profile cache at once.

use serde_json::json;

use super::{EdgeRuntime, stack};
use crate::helpers::Api as _;
use crate::mfa::{amr_of, challenge, code, enrol, form_login, verify, with_tokens, wrong_code};

/// Enrol, log in with the step-up and verify, all through the edge; the edge's cached profile
/// shows `mfa_enabled` at once; an admin reset through the edge ends the user's sessions.
pub async fn the_mfa_journey_through_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[]).await;
    let edge = s.edge();
    let user = edge.new_user().await;
    // Cached at the edge before MFA is on.
    assert_eq!(
        edge.as_user(&user).me().await.expect_json(200)["mfa_enabled"],
        false
    );

    let enrolled = enrol(&edge, &user).await;
    assert_eq!(
        edge.as_user(&user).me().await.expect_json(200)["mfa_enabled"],
        true
    );

    let token = challenge(&edge, &user).await;
    let tokens = verify(&edge, &token, json!({"code": code(&enrolled.secret, 0)}))
        .await
        .expect_json(200);
    let verified = with_tokens(&user, &tokens);
    assert_eq!(amr_of(&verified.access), json!(["pwd", "otp"]));
    edge.as_user(&verified).me().await.expect_json(200);

    let form = form_login(&edge, &user).await;
    form.assert_oauth_error(401, "mfa-required", "mfa_required");
    assert!(form.json()["mfa_token"].is_string(), "{form}");

    let admin = s.admin_token().await;
    let out = edge
        .bearer(&admin)
        .delete(&format!("/users/{}/mfa", user.id))
        .send()
        .await;
    assert_eq!(out.status, 204, "{out}");
    s.assert_refused_at_the_edge(&verified.access, "the reset ended every session")
        .await;
    let pair = edge.login(&user.username, &user.password).await;
    assert_eq!(amr_of(&pair.access_token), json!(["pwd"]));
}

/// `RATE_LIMIT_AUTH_IP=3/60s`: the step-up counts against the address's `/auth/*` quota; the
/// fourth request is refused by the edge.
pub async fn the_step_up_is_rate_limited_per_ip_at_the_edge<R: EdgeRuntime>(rt: &R) {
    let s = stack(rt, &[("RATE_LIMIT_AUTH_IP", "3/60s")]).await;
    let edge = s.edge();
    // Made and enrolled at the origin directly: no edge quota spent.
    let user = s.app.new_user().await;
    let enrolled = enrol(&s.app, &user).await;
    let token = challenge(&edge, &user).await;
    for _ in 0..2 {
        verify(&edge, &token, json!({"code": wrong_code(&enrolled.secret)}))
            .await
            .assert_problem(403, "invalid-mfa-code");
    }
    let limited = verify(&edge, &token, json!({"code": code(&enrolled.secret, 0)})).await;
    limited.assert_problem(429, "rate-limited");
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""auth-ip";r=0"#)),
        "{limited}"
    );
}
