-- E-mail verification (SPEC §6) and sessions (SPEC §7).

-- Whether the owner of `email` proved it; a pending change waits in `pending_email` until both
-- addresses confirm it (the current one only when it is verified: otherwise its flag starts true).
ALTER TABLE users
    ADD COLUMN email_verified            boolean NOT NULL DEFAULT false,
    ADD COLUMN pending_email             text,
    ADD COLUMN pending_current_confirmed boolean NOT NULL DEFAULT false,
    ADD COLUMN pending_new_confirmed     boolean NOT NULL DEFAULT false,
    -- The last verification or notice mail: at most one per account per EMAIL_RESEND_INTERVAL.
    ADD COLUMN email_mailed_at           timestamptz;

-- The address a reset link was mailed to: completing the reset proves that address only if it
-- is still the account's.
ALTER TABLE password_reset_tokens ADD COLUMN email text;

-- Single-use links mailed to an address: `verify` proves `email` is the account's address,
-- `change_current` and `change_new` confirm the pending change to `email` from either side.
CREATE TABLE email_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'change_current', 'change_new')),
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id);

-- One login: one refresh-token family (`refresh_tokens.family_id` = `sessions.id`).
CREATE TABLE sessions (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Stamped at refresh, and at most once per 5 minutes by authenticated requests.
    last_used_at      timestamptz NOT NULL DEFAULT now(),
    -- When its newest refresh token expires.
    expires_at        timestamptz NOT NULL,
    -- When its newest access token expires: a revoked session's id stays in the revocation
    -- feed until then.
    access_expires_at timestamptz NOT NULL,
    ip                text,
    user_agent        text,
    -- ISO 3166 country code from the edge (an authenticated header), when it supplies one.
    country           text,
    mfa               boolean NOT NULL DEFAULT false,
    revoked_at        timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at DESC, id DESC);

-- Every refresh family so far becomes a session (its tokens' metadata was never recorded).
INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, access_expires_at, revoked_at)
SELECT family_id,
       (array_agg(user_id))[1],
       min(created_at),
       max(created_at),
       max(expires_at),
       max(created_at) + interval '1 hour',
       CASE WHEN bool_or(spent_at IS NULL AND revoked_at IS NULL AND expires_at > now())
            THEN NULL ELSE now() END
FROM refresh_tokens
GROUP BY family_id;

ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_session_fkey
    FOREIGN KEY (family_id) REFERENCES sessions (id) ON DELETE CASCADE;

-- The feed also carries revoked sessions: `session_id` set, kept until `expires_at` (the last
-- `exp` of the session's access tokens); `security_version` is then the user's current one.
ALTER TABLE security_events
    ADD COLUMN session_id uuid,
    ADD COLUMN expires_at timestamptz;
