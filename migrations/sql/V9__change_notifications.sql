-- Every replica keeps principals (security version, active flag, permissions), session states
-- and user views in memory; these notifications on the channel `users_changes` tell them what
-- to forget. They are delivered at commit, in commit order, to every listening connection.
--   u:<uuid>  the user's row, roles or security version changed, or the user was deleted
--   s:<uuid>  the session was revoked (its security event)
--   *         a role's permissions changed or a role was deleted: forget every principal

CREATE FUNCTION notify_user_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed uuid;
BEGIN
    IF TG_TABLE_NAME = 'user_roles' THEN
        changed := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
    ELSE
        changed := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    END IF;
    PERFORM pg_notify('users_changes', 'u:' || changed::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_notify_change
    AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_user_change();

CREATE TRIGGER user_roles_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON user_roles
    FOR EACH ROW EXECUTE FUNCTION notify_user_change();

-- The security-event feed: a revoked session names itself; a new security version or a
-- deletion names the user (the trigger on `users` already did, this keeps the feed and the
-- notifications one story).
CREATE FUNCTION notify_security_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.session_id IS NOT NULL THEN
        PERFORM pg_notify('users_changes', 's:' || NEW.session_id::text);
    ELSE
        PERFORM pg_notify('users_changes', 'u:' || NEW.user_id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER security_events_notify
    AFTER INSERT ON security_events
    FOR EACH ROW EXECUTE FUNCTION notify_security_event();

CREATE FUNCTION notify_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('users_changes', '*');
    RETURN NULL;
END;
$$;

CREATE TRIGGER roles_notify_change
    AFTER UPDATE OF permissions OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_role_change();
