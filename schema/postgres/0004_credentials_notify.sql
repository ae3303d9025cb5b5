-- Servers keep the credentials they authenticated in memory while they listen on the channel
-- `tokenledger_credentials`: every statement that changes `credentials` (the server's
-- commands, `migrate`, manual SQL, even TRUNCATE) notifies it, and PostgreSQL delivers the
-- notification when the transaction commits; a server drops what it holds on each one.
CREATE FUNCTION tokenledger_credentials_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokenledger_credentials', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER credentials_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION tokenledger_credentials_changed();
