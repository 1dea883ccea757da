-- Exporting password hashes (SPEC §10) is a permission of its own; of the built-in roles only
-- `admin`, which holds every permission, has it.
UPDATE roles SET permissions = array_append(permissions, 'users:export_secrets')
WHERE name = 'admin' AND NOT ('users:export_secrets' = ANY (permissions));
