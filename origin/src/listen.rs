//! Following PostgreSQL's change notifications (`LISTEN users_changes`, sent by the triggers of
//! migration V9) into the replica's memory (`memo`), over one dedicated connection.
//!
//! - Connected and listening: the memory is resynchronised (forgotten), then trusted; each
//!   notification forgets what it names.
//! - A heartbeat every [`HEARTBEAT`] must answer within [`HEARTBEAT_TIMEOUT`]; a connection
//!   that errs, closes or stops answering is lost: the memory is distrusted at once (every
//!   request checks PostgreSQL) until a new connection listens again.
//! - [`settle`]: a replica that committed a write waits, before answering, until its own
//!   connection has heard everything committed so far (notifications arrive in commit order), so
//!   the writer's replica never serves what the write revoked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::AsyncMessage;

use crate::memo::Memo;
use crate::metrics::Metrics;

/// The channel the triggers notify.
pub const CHANNEL: &str = "users_changes";
/// The `application_name` of the connection, followed by the replica's port (operators find
/// it in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "users-origin listen";
/// How often the connection is asked whether it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long it may take to answer before it counts as lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a write waits for its own notifications before the memory is distrusted instead.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between two connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The replica's end of the notifications: its memory, and the marks it sends itself.
#[derive(Debug)]
pub struct Follower {
    pub memo: Arc<Memo>,
    /// Identifies this replica's marks among every replica's.
    replica: String,
    next_mark: AtomicU64,
    /// Marks sent and not heard yet, with their waiters.
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// Woken to drop the connection and start again.
    restart: Notify,
}

impl Follower {
    pub fn new(memo: Arc<Memo>) -> Self {
        Self {
            memo,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            next_mark: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            restart: Notify::new(),
        }
    }

    /// Stops trusting the memory and starts the connection again.
    pub fn distrust(&self, reason: &str) {
        self.memo.lost(reason);
        self.restart.notify_one();
    }

    /// Handles one payload: a mark of this replica's, or a change.
    fn hear(&self, payload: &str) {
        if let Some(mark) = payload.strip_prefix("mark:") {
            if let Some((replica, n)) = mark.split_once(':')
                && replica == self.replica
                && let Ok(n) = n.parse::<u64>()
                && let Some(waiter) = self.waiting.lock().ok().and_then(|mut w| w.remove(&n))
            {
                let _ = waiter.send(());
            }
            return;
        }
        if !self.memo.apply(payload) {
            tracing::warn!(payload, "unknown change notification: resynchronising");
            self.memo.resync();
        }
    }
}

/// Follows the notifications until aborted, reconnecting with back-off.
pub fn spawn(
    follower: Arc<Follower>,
    database_url: String,
    port: u16,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        let name = format!("{APPLICATION_NAME} port {port}");
        loop {
            let reason = follow(&follower, &database_url, &name, &metrics, &mut delay).await;
            follower.memo.lost(&reason);
            metrics.memo_following.set(0);
            tracing::warn!(%reason, "change notifications lost: checking every request against PostgreSQL");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    })
}

/// One connection's life; returns why it ended.
async fn follow(
    follower: &Follower,
    database_url: &str,
    name: &str,
    metrics: &Metrics,
    delay: &mut Duration,
) -> String {
    let mut config: tokio_postgres::Config = match database_url.parse() {
        Ok(c) => c,
        Err(e) => return format!("DATABASE_URL: {e}"),
    };
    config.application_name(name);
    config.connect_timeout(Duration::from_secs(5));
    let (client, mut connection) = match config.connect(tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => return format!("cannot connect: {e}"),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<String, String>>();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(Ok(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
        let _ = tx.send(Err("connection closed".into()));
    });
    let _abort = AbortOnDrop(driver);
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        return format!("LISTEN failed: {e}");
    }
    follower.memo.resync();
    metrics.memo_following.set(1);
    metrics.memo_resyncs.inc();
    *delay = Duration::from_millis(100);
    tracing::info!("following change notifications");
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(Ok(payload)) => follower.hear(&payload),
                Some(Err(e)) => return e,
                None => return "connection closed".into(),
            },
            _ = beat.tick() => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("heartbeat failed: {e}"),
                    Err(_) => return "heartbeat timed out".into(),
                }
            }
            () = follower.restart.notified() => return "restarted: the memory was distrusted".into(),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// After a write committed on `db`: waits until this replica's notification connection has
/// heard everything committed before now, so the memory holds nothing the write changed. When
/// the memory is not followed there is nothing to wait for; when the mark does not arrive in
/// [`SETTLE_TIMEOUT`], the memory is distrusted and the connection started again.
pub async fn settle(follower: &Follower, db: &impl crate::db::GenericClient) {
    if !follower.memo.is_following() {
        return;
    }
    let n = follower.next_mark.fetch_add(1, Ordering::SeqCst);
    let (tx, heard) = oneshot::channel();
    if let Ok(mut waiting) = follower.waiting.lock() {
        waiting.insert(n, tx);
    }
    let mark = format!("mark:{}:{n}", follower.replica);
    let sent = match db.prepare_cached("SELECT pg_notify($1, $2)").await {
        Ok(statement) => db.execute(&statement, &[&CHANNEL, &mark]).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        if let Ok(mut waiting) = follower.waiting.lock() {
            waiting.remove(&n);
        }
        tracing::warn!(error = %e, "could not send a settle mark: distrusting the memory");
        follower.distrust("a settle mark could not be sent");
        return;
    }
    let arrived = tokio::time::timeout(SETTLE_TIMEOUT, heard).await;
    if let Ok(mut waiting) = follower.waiting.lock() {
        waiting.remove(&n);
    }
    if !matches!(arrived, Ok(Ok(()))) {
        follower.distrust("a write's notifications did not arrive in time");
    }
}
