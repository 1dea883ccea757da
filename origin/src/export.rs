//! Exporting accounts (SPEC §10), with no HTTP in it: NDJSON lines of import rows (so an
//! export with hashes imports back as it is), read from one snapshot (a `REPEATABLE READ`,
//! read-only transaction) a page at a time by keyset, so memory stays constant whatever the
//! number of accounts.
//!
//! The connection is the stream's: a stream that ends is committed and returns it to the pool;
//! one dropped early (the client went away) or failed takes it out of the pool, closed, so no
//! transaction is left open on a pooled connection.

use bytes::Bytes;
use deadpool_postgres::{Client, Object};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{self, export::Exported, users::rfc3339};

/// Accounts read per page.
pub const PAGE: i64 = 500;

/// The line of `user`: an import row with its `id` (which an import ignores).
pub fn line(user: &Exported) -> String {
    let mut row = json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "roles": user.roles,
        "is_active": user.is_active,
        "email_verified": user.email_verified,
        "created_at": rfc3339(user.created_at),
        "external_id": user.external_id,
    });
    if let Some(hash) = &user.password_hash {
        row["password_hash"] = json!(hash);
    }
    let mut text = row.to_string();
    text.push('\n');
    text
}

/// The stream's state: the connection in its snapshot (until it is committed), and where the
/// next page starts.
struct Cursor {
    client: Option<Client>,
    after: Option<(OffsetDateTime, Uuid)>,
    with_hash: bool,
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Still in its transaction: closed, never reused.
            drop(Object::take(client));
        }
    }
}

/// Opens the snapshot on `client`.
pub async fn begin(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
}

/// The NDJSON of every account in the snapshot `begin` opened on `client`, with password
/// hashes when `with_hash`.
pub fn stream(
    client: Client,
    with_hash: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let cursor = Cursor {
        client: Some(client),
        after: None,
        with_hash,
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        let client = cursor.client.as_ref()?;
        match db::export::page(client, cursor.after, PAGE, cursor.with_hash).await {
            Ok(users) if users.is_empty() => {
                if client.batch_execute("COMMIT").await.is_ok() {
                    // Committed: back to the pool.
                    drop(cursor.client.take());
                }
                None
            }
            Ok(users) => {
                let last = users.last().map(|u| (u.created_at, u.id));
                cursor.after = last;
                let text: String = users.iter().map(line).collect();
                Some((Ok(Bytes::from(text)), cursor))
            }
            Err(e) => {
                tracing::warn!(error = %e, "an export failed");
                // Ends the body short, so the client sees the export did not complete.
                let _ = cursor.client.take().map(Object::take);
                Some((Err(std::io::Error::other("the export failed")), cursor))
            }
        }
    })
}
