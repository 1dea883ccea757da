//! The `audit_log` table: security-relevant events with actor, target, time, request id, IP.

use uuid::Uuid;

use super::GenericClient;

/// Where a request came from, for audit records and logs: its request id and client address.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub request_id: Option<String>,
    pub ip: Option<String>,
}

/// One event to record.
#[derive(Debug)]
pub struct Event<'a> {
    pub action: &'a str,
    pub actor: Option<Uuid>,
    pub target: Option<Uuid>,
    pub details: serde_json::Value,
}

impl<'a> Event<'a> {
    /// `actor` did `action` to `target`; no details.
    pub fn new(action: &'a str, actor: Option<Uuid>, target: Option<Uuid>) -> Self {
        Self {
            action,
            actor,
            target,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// `user` did `action` to their own account.
    pub fn own(action: &'a str, user: Uuid) -> Self {
        Self::new(action, Some(user), Some(user))
    }

    /// The same event with `details`.
    pub fn with(self, details: serde_json::Value) -> Self {
        Self { details, ..self }
    }
}

pub async fn record(
    db: &impl GenericClient,
    ctx: &Ctx,
    mut e: Event<'_>,
) -> Result<(), tokio_postgres::Error> {
    // Details may quote what a client sent; `jsonb` refuses NUL.
    users_core::text::make_storable(&mut e.details);
    let statement = db
        .prepare_cached(
            "INSERT INTO audit_log (actor_id, action, target_id, request_id, ip, details) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    db.execute(
        &statement,
        &[
            &e.actor,
            &e.action,
            &e.target,
            &ctx.request_id,
            &ctx.ip,
            &e.details,
        ],
    )
    .await?;
    Ok(())
}
