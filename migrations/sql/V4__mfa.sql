-- A second factor (SPEC §8): TOTP factors with sealed secrets, recovery codes as keyed hashes,
-- the login step-up's single-use challenges, and the per-account budget of wrong codes.

ALTER TABLE users ADD COLUMN mfa_enabled boolean NOT NULL DEFAULT false;

-- How a session's login was proved (RFC 8176 values: `pwd`, then `otp` or `rc`); its tokens
-- carry it as `amr`, refreshed tokens too.
ALTER TABLE sessions ADD COLUMN amr text[] NOT NULL DEFAULT '{pwd}';

-- A TOTP factor: pending (`confirmed_at` NULL, dies at `expires_at`) until a first code confirms
-- it. The secret is sealed (XChaCha20-Poly1305) under the key named `key_id`; `last_step` is
-- the newest accepted time step, refused afterwards (RFC 6238 §5.2).
CREATE TABLE mfa_factors (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id        text NOT NULL,
    sealed_secret bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    confirmed_at  timestamptz,
    last_step     bigint
);
CREATE INDEX mfa_factors_user_idx ON mfa_factors (user_id);
CREATE UNIQUE INDEX mfa_factors_one_confirmed ON mfa_factors (user_id) WHERE confirmed_at IS NOT NULL;

-- Recovery codes: HMAC-SHA-256 under the MFA key, each usable once.
CREATE TABLE mfa_recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- The login step-up: the right password of an MFA account yields one of these (SHA-256 of the
-- token), valid 5 minutes, for at most 5 wrong codes, spent by the first right one.
CREATE TABLE mfa_challenges (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    failures   integer NOT NULL DEFAULT 0,
    spent_at   timestamptz
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);

-- Wrong codes per account: a bucket of 10, refilling one per 6 minutes (`budget` as of `at`).
CREATE TABLE mfa_failures (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    budget  double precision NOT NULL,
    at      timestamptz NOT NULL
);
