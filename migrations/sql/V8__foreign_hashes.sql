-- The accounts whose password hash is not Argon2id (imported from other systems, SPEC §10),
-- found without reading every account: what a login of an unknown account is checked against
-- is drawn from their shapes, refreshed every few minutes on every replica.
CREATE INDEX users_foreign_hash_idx ON users (password_hash)
    WHERE password_hash NOT LIKE '$argon2id$%';

-- A digest of the hash an account was last imported with: a rerun of a migration changes the
-- password only when the other system's hash changed since (not after a rehash or a new
-- password here). Only a digest: the other system's hash is not kept once replaced.
ALTER TABLE users ADD COLUMN imported_hash_sha256 bytea;
