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
    let postgres = postgres_answers(state).await;
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

/// Whether a pooled connection answers `SELECT 1` within [`CHECK_TIMEOUT`].
async fn postgres_answers(state: &AppState) -> bool {
    let check = async {
        let client = state.db.get().await.ok()?;
        client.query_one("SELECT 1", &[]).await.ok()
    };
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, check).await,
        Ok(Some(_))
    )
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
