//! Samples, every [`SAMPLE_EVERY`], what no request counts and alerting needs: readiness (the
//! checks of `GET /readyz`), whether Redis is being fallen back from, and the mail outbox
//! backlog. The gauges are `users_ready`, `users_redis_fallback`, `users_mail_outbox_messages`
//! and `users_mail_outbox_oldest_age_seconds` (`metrics`); the rules over them are in
//! `deploy/prometheus/alerts.yml`.

use std::time::Duration;

use crate::db;
use crate::state::AppState;

/// How often the gauges are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How long the PostgreSQL check may take, as for `GET /readyz`.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the sampler; it runs until aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sample(&state).await;
        }
    })
}

/// Takes one sample of every gauge.
pub async fn sample(state: &AppState) {
    let m = &state.metrics;
    let postgres = check_postgres(state).await.is_ok();
    let redis = match &state.redis {
        Some(redis) => Some(redis.ping().await),
        None => None,
    };
    m.ready.set(i64::from(postgres && redis.unwrap_or(true)));
    // Configured but not used: unreachable, or writes whose cache update is still pending.
    let fallback = redis.is_some_and(|up| !up || state.cache.pending() > 0);
    m.redis_fallback.set(i64::from(fallback));
    if postgres && state.config.smtp_url.is_some() {
        outbox(state).await;
    }
}

/// The PostgreSQL check of `GET /readyz` and `users_ready`: a pooled connection answers
/// `SELECT 1` within [`CHECK_TIMEOUT`]; otherwise why not.
pub async fn check_postgres(state: &AppState) -> Result<(), String> {
    let check = async {
        let client = state.db.get().await.map_err(|e| e.to_string())?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// The outbox gauges; left as they were when the outbox cannot be read.
async fn outbox(state: &AppState) {
    let Ok(client) = state.db.get().await else {
        return;
    };
    match db::outbox::backlog(&client).await {
        Ok((messages, oldest)) => {
            state.metrics.mail_outbox_messages.set(messages);
            state.metrics.mail_outbox_oldest_age.set(oldest);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the mail outbox backlog"),
    }
}
