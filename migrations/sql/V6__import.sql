-- Import (SPEC §10): the id an account had in the system it was imported from, unique where
-- set, so a rerun of an import finds the accounts it made.
ALTER TABLE users ADD COLUMN external_id text;
CREATE UNIQUE INDEX users_external_id_key ON users (external_id) WHERE external_id IS NOT NULL;
