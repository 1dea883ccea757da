-- The user-management schema. Identity columns are case-folded by the application
-- (usernames are stored lower-case; emails are unique on lower(email)).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE roles (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    permissions text[] NOT NULL DEFAULT '{}',
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO roles (name, description, permissions, builtin) VALUES
    ('admin', 'Full access to users and roles',
     '{users:read,users:create,users:update,users:delete,roles:read,roles:manage}', true),
    ('user', 'Self-service on one''s own account', '{}', true);

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    username         text NOT NULL,
    email            text NOT NULL,
    display_name     text,
    password_hash    text NOT NULL,
    is_active        boolean NOT NULL DEFAULT true,
    -- Bumped on logout-all, password change/reset, role change, deactivation: access tokens
    -- carrying a lower `sv` are revoked.
    security_version bigint NOT NULL DEFAULT 1,
    -- Row version for ETag / If-Match.
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_lower CHECK (username = lower(username))
);

CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
-- Keyset orders.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_username_id_idx ON users (username, id);
-- Substring search (`q`) over username, email and display name.
CREATE INDEX users_search_trgm_idx ON users
    USING gin ((username || ' ' || lower(email) || ' ' || lower(coalesce(display_name, ''))) gin_trgm_ops);

CREATE TABLE user_roles (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_name  text NOT NULL REFERENCES roles (name) ON DELETE CASCADE ON UPDATE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_name)
);
CREATE INDEX user_roles_role_idx ON user_roles (role_name, user_id);

CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- All tokens descending from one login share a family; reuse of a spent one revokes it.
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

CREATE TABLE password_reset_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz
);
CREATE INDEX password_reset_tokens_user_idx ON password_reset_tokens (user_id);

-- Security-relevant events. Not tied to users by foreign key: it outlives deletions.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor_id   uuid,
    action     text NOT NULL,
    target_id  uuid,
    request_id text,
    ip         text,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_target_idx ON audit_log (target_id, at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);

-- Mail written in the same transaction as the change that causes it; a background sender
-- delivers it and deletes it.
CREATE TABLE mail_outbox (
    id              bigserial PRIMARY KEY,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at);
