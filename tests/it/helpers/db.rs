//! Looking behind the API: queries on the app's own database for assertions (a count, a column
//! of strings) and the audit rows a request left, waited for because the audit entry may be
//! written after the answer.

use std::time::Duration;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::TestApp;

/// How often, and how far apart, an audit row is looked for.
const AUDIT_POLLS: usize = 100;
const AUDIT_POLL_EVERY: Duration = Duration::from_millis(50);

/// What the tests read of a row of `audit_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub actor: Option<Uuid>,
    pub target: Option<Uuid>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub details: serde_json::Value,
}

impl TestApp {
    /// `count(*)` of the audit rows `action` on `target`.
    pub async fn audit_count(&self, action: &str, target: Uuid) -> i64 {
        self.count(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND target_id = $2",
            &[&action, &target],
        )
        .await
    }

    /// The `count(*)` (or any `bigint`) that `sql` selects.
    pub async fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
        self.db
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// The first column of every row `sql` selects, as strings.
    pub async fn strings(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<String> {
        self.db
            .query(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The newest audit row `action` on `target`, waiting up to 5 s for it.
    pub async fn wait_for_audit(&self, action: &str, target: Uuid) -> Option<AuditRow> {
        self.wait_for_audit_row(
            "action = $1 AND target_id = $2 ORDER BY id DESC LIMIT 1",
            &[&action, &target],
        )
        .await
    }

    /// The audit row `action` written by the request `request_id` (there must be at most
    /// one), waiting up to 5 s for it.
    pub async fn audit_of_request(&self, action: &str, request_id: &str) -> Option<AuditRow> {
        self.wait_for_audit_row("action = $1 AND request_id = $2", &[&action, &request_id])
            .await
    }

    /// The row of `audit_log` that `filter` (a `WHERE` clause and its ordering) selects.
    async fn wait_for_audit_row(
        &self,
        filter: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Option<AuditRow> {
        let sql = format!(
            "SELECT actor_id, target_id, request_id, ip, details FROM audit_log \
             WHERE {filter}"
        );
        for _ in 0..AUDIT_POLLS {
            let row = self
                .db
                .query_opt(&sql, params)
                .await
                .expect("query audit_log");
            if let Some(row) = row {
                return Some(AuditRow {
                    actor: row.get(0),
                    target: row.get(1),
                    request_id: row.get(2),
                    ip: row.get(3),
                    details: row.get(4),
                });
            }
            tokio::time::sleep(AUDIT_POLL_EVERY).await;
        }
        None
    }
}
