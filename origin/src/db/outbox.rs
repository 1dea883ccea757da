//! The `mail_outbox` table: mail written with the change that causes it.

use super::GenericClient;

/// A message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Mail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

pub async fn enqueue(
    db: &impl GenericClient,
    recipient: &str,
    subject: &str,
    body: &str,
) -> Result<(), tokio_postgres::Error> {
    db.execute(
        "INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)",
        &[&recipient, &subject, &body],
    )
    .await?;
    Ok(())
}

/// Claims up to `limit` due messages: each is pushed back a minute so that a concurrent
/// sender (another replica) does not take it too.
pub async fn claim_due(
    db: &impl GenericClient,
    limit: i64,
) -> Result<Vec<Mail>, tokio_postgres::Error> {
    let rows = db
        .query(
            "UPDATE mail_outbox SET next_attempt_at = now() + interval '1 minute', attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM mail_outbox WHERE next_attempt_at <= now() ORDER BY id \
                          LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, recipient, subject, body, attempts",
            &[&limit],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Mail {
            id: r.get(0),
            recipient: r.get(1),
            subject: r.get(2),
            body: r.get(3),
            attempts: r.get(4),
        })
        .collect())
}

/// A sent message is deleted: its body may hold a secret link.
pub async fn delete(db: &impl GenericClient, id: i64) -> Result<(), tokio_postgres::Error> {
    db.execute("DELETE FROM mail_outbox WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// Schedules another attempt with exponential back-off.
pub async fn retry_later(
    db: &impl GenericClient,
    id: i64,
    attempts: i32,
    error: &str,
) -> Result<(), tokio_postgres::Error> {
    let delay = 2f64.powi(attempts.clamp(0, 12));
    db.execute(
        "UPDATE mail_outbox SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3 WHERE id = $1",
        &[&id, &delay, &error],
    )
    .await?;
    Ok(())
}

/// The mail waiting to be sent: how many messages, and the oldest one's age in whole seconds
/// (0 when there is none).
pub async fn backlog(db: &impl GenericClient) -> Result<(i64, i64), tokio_postgres::Error> {
    let row = db
        .query_one(
            "SELECT count(*), coalesce(floor(extract(epoch FROM now() - min(created_at))), 0)::bigint \
             FROM mail_outbox",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
