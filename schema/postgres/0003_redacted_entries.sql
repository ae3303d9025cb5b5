-- Redaction (issue 23), as sqlite 0014: entries whose payload a `redaction` or `erasure`
-- entry removed (their stored hashes stay), and what is kept of a redacted issuance so that
-- resolving its token answers "redacted": its VO and SHA-256 digests of its jti and of
-- (iss, a zero byte, jti). No subject, no person.
CREATE TABLE redacted_entries (
    idx         BIGINT PRIMARY KEY,
    redacted_at BIGINT NOT NULL,
    redacted_by BIGINT NOT NULL
);

CREATE TABLE redacted_issuances (
    idx        BIGINT PRIMARY KEY,
    vo         TEXT COLLATE "C" NOT NULL,
    jti_hash   BYTEA  NOT NULL CHECK (length(jti_hash) = 32),
    token_hash BYTEA  NOT NULL CHECK (length(token_hash) = 32)
);
CREATE INDEX redacted_issuances_by_jti ON redacted_issuances (jti_hash);
