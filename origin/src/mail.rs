//! The outbox sender: delivers mail written to `mail_outbox` over SMTP with `lettre`.
//!
//! It wakes when a handler signals new mail, and polls every `MAIL_POLL_MS` otherwise (mail
//! written by other replicas, retries). Failed deliveries are retried with back-off.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::db::outbox;
use crate::state::AppState;

/// Starts the sender; without `SMTP_URL` mail stays in the outbox.
pub fn spawn_sender(state: AppState) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(url) = state.config.smtp_url.clone() else {
        tracing::warn!(
            "SMTP_URL is not set: outgoing mail (password resets) stays in the mail_outbox table"
        );
        return Ok(None);
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
        .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let from: Mailbox = state.config.mail_from.parse()?;
    Ok(Some(tokio::spawn(async move {
        let poll = Duration::from_millis(state.config.mail_poll_ms);
        loop {
            let sent = deliver_due(&state, &transport, &from).await;
            if sent == 0 {
                tokio::select! {
                    () = state.mail_ready.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        }
    })))
}

async fn deliver_due(
    state: &AppState,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
) -> usize {
    let Ok(client) = state.db.get().await else {
        return 0;
    };
    let due = match outbox::claim_due(&client, 20).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the mail outbox");
            return 0;
        }
    };
    let count = due.len();
    for mail in due {
        let result = match build(&mail, from) {
            Ok(message) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let outcome = match result {
            Ok(()) => {
                tracing::info!(mail_id = mail.id, "mail delivered");
                outbox::delete(&client, mail.id).await
            }
            Err(e) => {
                tracing::warn!(mail_id = mail.id, attempts = mail.attempts, error = %e, "mail delivery failed");
                outbox::retry_later(&client, mail.id, mail.attempts, &e).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "could not update the mail outbox");
        }
    }
    count
}

fn build(mail: &outbox::Mail, from: &Mailbox) -> Result<Message, String> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|e| format!("bad recipient: {e}"))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .body(mail.body.clone())
        .map_err(|e| e.to_string())
}
