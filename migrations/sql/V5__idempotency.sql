-- Idempotency-Key (SPEC §9): the first answer to a request carrying a key, stored in the
-- transaction of its write and replayed to a repeat of the same request by the same caller.
-- `scope` is the caller (`user:<id>`, or `anonymous` on the routes that take no token);
-- `fingerprint` is the SHA-256 of the method, the route and the body, so the same key with
-- another request is told apart. Rows live `IDEMPOTENCY_TTL` (24 h by default) after
-- `created_at`; a job deletes older ones.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint bytea NOT NULL,
    status      smallint NOT NULL,
    headers     jsonb NOT NULL,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
