-- Redaction (issue 23): entries whose payload a `redaction` or `erasure` entry removed. The
-- leaf row and the lookup rows of such an entry are deleted in the transaction of the entry
-- that removed it; its stored hashes stay, so every proof still verifies. `redacted_at` is
-- unix microseconds, `redacted_by` the index of the removing entry.
CREATE TABLE redacted_entries (
    idx         INTEGER PRIMARY KEY,
    redacted_at INTEGER NOT NULL,
    redacted_by INTEGER NOT NULL
);

-- What is kept of a redacted issuance so that resolving its token answers "redacted", never
-- "unknown": its VO and SHA-256 digests of its jti and of (iss, a zero byte, jti). No
-- subject, no person.
CREATE TABLE redacted_issuances (
    idx        INTEGER PRIMARY KEY,
    vo         TEXT    NOT NULL,
    jti_hash   BLOB    NOT NULL CHECK (length(jti_hash) = 32),
    token_hash BLOB    NOT NULL CHECK (length(token_hash) = 32)
);
CREATE INDEX redacted_issuances_by_jti ON redacted_issuances (jti_hash);
