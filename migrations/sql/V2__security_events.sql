-- Every revocation, in order: a user's security version went up, or the user was deleted.
-- Edges poll this feed (GET /internal/revocations) to reject revoked tokens everywhere within a
-- bounded lag; the origin also echoes the events a request caused to the edge that sent it.

CREATE TABLE security_events (
    seq              bigserial PRIMARY KEY,
    user_id          uuid NOT NULL,
    -- The new security version; tokens with a lower `sv` are revoked. Deletion: 2^63 - 1.
    security_version bigint NOT NULL,
    at               timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION record_security_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO security_events (user_id, security_version) VALUES (OLD.id, 9223372036854775807);
        RETURN OLD;
    END IF;
    IF NEW.security_version > OLD.security_version THEN
        INSERT INTO security_events (user_id, security_version) VALUES (NEW.id, NEW.security_version);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER users_security_events
    AFTER UPDATE OF security_version OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION record_security_event();
