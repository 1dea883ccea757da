//! What this replica keeps in memory so that a repeated authenticated read costs no database
//! round trip (SPEC §11): principals, session states and serialized user views, forgotten on the
//! change notifications PostgreSQL sends (`listen`), and verified tokens by digest until `exp`.
//!
//! The memory is trusted only while it is *following*: the notification connection is up and
//! was resynchronised (everything forgotten) after it last came up. Otherwise every read
//! answers `None` and nothing is stored, so callers check PostgreSQL on every request: there is
//! no stale window.
//!
//! Fills come from PostgreSQL only (the shared Redis cache is stored after a write's commit, so
//! a replica that heard the commit may still find the old view there).
//!
//! A filler can race a notification: it reads the database, the change commits and is
//! forgotten, then the filler stores what it read. So a filler takes a [`Ticket`] before
//! reading, and [`Memo`] stores only when no change to the same keys (and no resync) was seen
//! since; it checks again after storing and takes the entry back if one slipped in between. A
//! change bumps its keys' stripe before removing them, so one of the two checks sees it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::Expiry;
use moka::ops::compute::Op;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::principals::Principal;

/// Stripes of change counters; keys share one when their hashes collide (a spurious miss, never a
/// stale entry).
const STRIPES: usize = 4096;

/// How many entries and bytes the memory may hold.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Principals, sessions and verified tokens: at most this many of each.
    pub entries: u64,
    /// Serialized user views: at most this many bytes.
    pub view_bytes: u64,
    /// Principals, sessions and views are read again after this long even when no
    /// notification named them: a bound on anything a notification could not say.
    pub ttl: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            entries: 100_000,
            view_bytes: 64 * 1024 * 1024,
            ttl: Duration::from_secs(300),
        }
    }
}

/// What a verified access token says, kept by the token's digest until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub sub: Uuid,
    pub sid: Option<Uuid>,
    pub sv: i64,
    /// Proved with a TOTP code.
    pub otp: bool,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A session as authorising its tokens needs it.
#[derive(Debug)]
pub struct SessionState {
    pub user: Uuid,
    /// Exists, belongs to `user` and is not revoked.
    pub live: bool,
    /// When this replica last stamped (or found stamped) its `last_used_at`, Unix seconds.
    pub stamped_at: AtomicI64,
}

/// A user view as a response body: the JSON and its entity tag, made once.
#[derive(Debug, Clone)]
pub struct ViewBytes {
    pub version: i64,
    pub etag: String,
    pub body: Bytes,
}

/// Permission to store what was read after it was taken (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    stripes: [(usize, u64); 2],
}

/// Expires each verified token at its `exp`.
struct UntilExp;

impl Expiry<[u8; 32], Arc<TokenFacts>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        facts: &Arc<TokenFacts>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = facts.expires_at.saturating_sub(crate::clock::now());
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)))
    }
}

/// The replica's memory and whether it may be trusted.
pub struct Memo {
    principals: Cache<Uuid, Arc<Principal>>,
    sessions: Cache<Uuid, Arc<SessionState>>,
    tokens: Cache<[u8; 32], Arc<TokenFacts>>,
    views: Cache<Uuid, Arc<ViewBytes>>,
    following: AtomicBool,
    /// Bumped by every resync and every loss of the notification connection.
    epoch: AtomicU64,
    /// Bumped by every change of a key hashing to the stripe.
    stripes: Box<[AtomicU64]>,
    /// Why the memory is not followed, when it is not.
    reason: Mutex<String>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("following", &self.is_following())
            .field("principals", &self.principals.entry_count())
            .field("views", &self.views.entry_count())
            .finish_non_exhaustive()
    }
}

impl Memo {
    /// Empty, and not followed until [`Self::resync`].
    pub fn new(bounds: Bounds) -> Self {
        let views = Cache::builder()
            .max_capacity(bounds.view_bytes)
            .weigher(|_: &Uuid, v: &Arc<ViewBytes>| {
                u32::try_from(v.body.len() + v.etag.len() + 64).unwrap_or(u32::MAX)
            })
            .time_to_live(bounds.ttl)
            .build();
        Self {
            principals: Cache::builder()
                .max_capacity(bounds.entries)
                .time_to_live(bounds.ttl)
                .build(),
            sessions: Cache::builder()
                .max_capacity(bounds.entries)
                .time_to_live(bounds.ttl)
                .build(),
            tokens: Cache::builder()
                .max_capacity(bounds.entries)
                .expire_after(UntilExp)
                .build(),
            views,
            following: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            reason: Mutex::new("not connected yet".into()),
        }
    }

    /// Whether reads may be answered from memory.
    pub fn is_following(&self) -> bool {
        self.following.load(Ordering::SeqCst)
    }

    /// Why not, when not.
    pub fn fallback_reason(&self) -> Option<String> {
        if self.is_following() {
            return None;
        }
        Some(
            self.reason
                .lock()
                .map_or_else(|_| "unknown".into(), |r| r.clone()),
        )
    }

    /// The notification connection is listening again: forget everything (what changed while
    /// it was down was never heard), then trust the memory.
    pub fn resync(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.forget_all();
        self.following.store(true, Ordering::SeqCst);
    }

    /// The notification connection is lost (or could not be trusted): stop trusting the memory
    /// at once, and forget it.
    pub fn lost(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            reason.clone_into(&mut r);
        }
        self.following.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.forget_all();
    }

    fn forget_all(&self) {
        self.principals.invalidate_all();
        self.sessions.invalidate_all();
        self.views.invalidate_all();
    }

    fn stripe(id: &Uuid) -> usize {
        let v = id.as_u128();
        usize::try_from((v ^ (v >> 64)) % STRIPES as u128).unwrap_or(0)
    }

    /// A ticket for reading `user` (and `session`) from the database, or `None` when the memory
    /// is not followed (then nothing may be stored).
    pub fn ticket(&self, user: Uuid, session: Option<Uuid>) -> Option<Ticket> {
        if !self.is_following() {
            return None;
        }
        let a = Self::stripe(&user);
        let b = session.map_or(a, |s| Self::stripe(&s));
        Some(Ticket {
            epoch: self.epoch.load(Ordering::SeqCst),
            stripes: [
                (a, self.stripes[a].load(Ordering::SeqCst)),
                (b, self.stripes[b].load(Ordering::SeqCst)),
            ],
        })
    }

    fn still_valid(&self, t: &Ticket) -> bool {
        self.is_following()
            && self.epoch.load(Ordering::SeqCst) == t.epoch
            && t.stripes
                .iter()
                .all(|(i, v)| self.stripes[*i].load(Ordering::SeqCst) == *v)
    }

    /// Stores with `store` if `ticket` is still valid, and takes it back with `undo` if it
    /// stopped being valid meanwhile.
    fn fill(&self, ticket: Ticket, store: impl FnOnce(), undo: impl FnOnce()) {
        if !self.still_valid(&ticket) {
            return;
        }
        store();
        if !self.still_valid(&ticket) {
            undo();
        }
    }

    /// A user changed (row, roles, security version) or was deleted.
    pub fn user_changed(&self, id: Uuid) {
        self.stripes[Self::stripe(&id)].fetch_add(1, Ordering::SeqCst);
        self.principals.invalidate(&id);
        self.views.invalidate(&id);
    }

    /// A session was revoked.
    pub fn session_changed(&self, id: Uuid) {
        self.stripes[Self::stripe(&id)].fetch_add(1, Ordering::SeqCst);
        self.sessions.invalidate(&id);
    }

    /// A role's permissions changed: every principal may hold them.
    pub fn roles_changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.principals.invalidate_all();
    }

    /// Applies one notification payload (`u:<uuid>`, `s:<uuid>`, `*`); `false` when it is not
    /// one of those (the caller resyncs: something unknown changed).
    pub fn apply(&self, payload: &str) -> bool {
        if payload == "*" {
            self.roles_changed();
            return true;
        }
        let parsed = payload
            .split_once(':')
            .and_then(|(kind, id)| Some((kind, Uuid::parse_str(id).ok()?)));
        match parsed {
            Some(("u", id)) => self.user_changed(id),
            Some(("s", id)) => self.session_changed(id),
            _ => return false,
        }
        true
    }

    /// The principal `id`, when followed and held.
    pub fn principal(&self, id: Uuid) -> Option<Arc<Principal>> {
        if !self.is_following() {
            return None;
        }
        self.principals.get(&id)
    }

    /// The session `id`, when followed and held.
    pub fn session(&self, id: Uuid) -> Option<Arc<SessionState>> {
        if !self.is_following() {
            return None;
        }
        self.sessions.get(&id)
    }

    /// Stores a principal (and a session) read after `ticket` was taken.
    pub fn fill_principal(
        &self,
        ticket: Ticket,
        principal: Principal,
        session: Option<(Uuid, SessionState)>,
    ) {
        let id = principal.id;
        let principal = Arc::new(principal);
        let session = session.map(|(sid, s)| (sid, Arc::new(s)));
        self.fill(
            ticket,
            || {
                self.principals.insert(id, principal);
                if let Some((sid, s)) = session.clone() {
                    self.sessions.insert(sid, s);
                }
            },
            || {
                self.principals.invalidate(&id);
                if let Some((sid, _)) = &session {
                    self.sessions.invalidate(sid);
                }
            },
        );
    }

    /// The serialized view of `id`, when followed and held.
    pub fn view(&self, id: Uuid) -> Option<Arc<ViewBytes>> {
        if !self.is_following() {
            return None;
        }
        self.views.get(&id)
    }

    /// Stores a view read from PostgreSQL after `ticket` was taken, unless a newer version is
    /// held: what a replica serves of a user never goes back.
    pub fn fill_view(&self, ticket: Ticket, id: Uuid, view: ViewBytes) {
        let view = Arc::new(view);
        self.fill(
            ticket,
            || {
                self.views.entry(id).and_compute_with(|held| match held {
                    Some(held) if held.value().version >= view.version => Op::Nop,
                    _ => Op::Put(view),
                });
            },
            || self.views.invalidate(&id),
        );
    }

    /// The digest a token is kept by.
    pub fn token_key(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// What `token` was verified to say, if it was and has not expired by `now`.
    pub fn token(&self, key: &[u8; 32], now: i64) -> Option<Arc<TokenFacts>> {
        self.tokens.get(key).filter(|f| f.expires_at > now)
    }

    /// Remembers a verified token (its signature, issuer, audience and times were checked).
    pub fn remember_token(&self, key: [u8; 32], facts: TokenFacts) {
        self.tokens.insert(key, Arc::new(facts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::grants::Grants;

    fn principal(id: Uuid, sv: i64) -> Principal {
        Principal {
            id,
            is_active: true,
            security_version: sv,
            grants: Grants::default(),
        }
    }

    fn followed() -> Memo {
        let memo = Memo::new(Bounds::default());
        memo.resync();
        memo
    }

    #[test]
    fn nothing_is_read_or_stored_until_followed() {
        let memo = Memo::new(Bounds::default());
        let id = Uuid::from_u128(7);
        assert!(memo.ticket(id, None).is_none());
        memo.resync();
        let t = memo.ticket(id, None).unwrap();
        memo.fill_principal(t, principal(id, 1), None);
        assert_eq!(memo.principal(id).unwrap().security_version, 1);
    }

    #[test]
    fn a_change_seen_after_the_ticket_blocks_the_fill() {
        let memo = followed();
        let id = Uuid::from_u128(7);
        let t = memo.ticket(id, None).unwrap();
        memo.apply(&format!("u:{id}"));
        memo.fill_principal(t, principal(id, 1), None);
        assert!(memo.principal(id).is_none());
        // A fresh ticket fills.
        let t = memo.ticket(id, None).unwrap();
        memo.fill_principal(t, principal(id, 2), None);
        assert_eq!(memo.principal(id).unwrap().security_version, 2);
    }

    #[test]
    fn a_changed_session_blocks_the_fill_of_its_user_too() {
        let memo = followed();
        let (id, sid) = (Uuid::from_u128(7), Uuid::from_u128(99));
        let t = memo.ticket(id, Some(sid)).unwrap();
        memo.apply(&format!("s:{sid}"));
        let state = SessionState {
            user: id,
            live: true,
            stamped_at: AtomicI64::new(0),
        };
        memo.fill_principal(t, principal(id, 1), Some((sid, state)));
        assert!(memo.session(sid).is_none());
        assert!(memo.principal(id).is_none());
    }

    #[test]
    fn losing_the_connection_forgets_and_refuses_everything() {
        let memo = followed();
        let id = Uuid::from_u128(7);
        let t = memo.ticket(id, None).unwrap();
        memo.fill_principal(t, principal(id, 1), None);
        let stale = memo.ticket(id, None).unwrap();
        memo.lost("connection closed");
        assert!(memo.principal(id).is_none());
        assert_eq!(memo.fallback_reason().as_deref(), Some("connection closed"));
        memo.resync();
        // A ticket from before the loss stores nothing, even once followed again.
        memo.fill_principal(stale, principal(id, 1), None);
        assert!(memo.principal(id).is_none());
    }

    #[test]
    fn a_role_change_forgets_every_principal_but_not_views() {
        let memo = followed();
        let id = Uuid::from_u128(7);
        let t = memo.ticket(id, None).unwrap();
        memo.fill_principal(t, principal(id, 1), None);
        let view = ViewBytes {
            version: 1,
            etag: "\"x-1\"".into(),
            body: Bytes::from_static(b"{}"),
        };
        memo.fill_view(memo.ticket(id, None).unwrap(), id, view);
        assert!(memo.apply("*"));
        assert!(memo.principal(id).is_none());
        assert!(memo.view(id).is_some());
    }

    #[test]
    fn a_view_never_goes_back_to_an_older_version() {
        let memo = followed();
        let id = Uuid::from_u128(7);
        let view = |version: i64| ViewBytes {
            version,
            etag: format!("\"x-{version}\""),
            body: Bytes::from(format!("{{\"version\":{version}}}")),
        };
        let (older, newer) = (
            memo.ticket(id, None).unwrap(),
            memo.ticket(id, None).unwrap(),
        );
        memo.fill_view(newer, id, view(6));
        memo.fill_view(older, id, view(5));
        assert_eq!(memo.view(id).unwrap().version, 6);
    }

    #[test]
    fn unknown_payloads_are_reported() {
        let memo = followed();
        assert!(!memo.apply("x:1"));
        assert!(!memo.apply("u:not-a-uuid"));
        assert!(memo.apply(&format!("s:{}", Uuid::from_u128(1))));
    }

    #[test]
    fn tokens_are_kept_until_they_expire() {
        let memo = followed();
        let now = crate::clock::now();
        let facts = TokenFacts {
            sub: Uuid::from_u128(1),
            sid: None,
            sv: 1,
            otp: false,
            expires_at: now + 60,
        };
        let key = Memo::token_key("a.b.c");
        memo.remember_token(key, facts.clone());
        assert_eq!(memo.token(&key, now).as_deref(), Some(&facts));
        assert!(memo.token(&key, now + 61).is_none());
        assert!(memo.token(&Memo::token_key("a.b.d"), now).is_none());
    }
}
