-- The verifiable log: entries (the leaves), stored Merkle hashes, signed checkpoints,
-- the issuance index used for idempotency, and API credentials.
-- Append-only migrations: never edit this file once it has landed; add a new one.

-- One row per log entry; `leaf` holds the exact canonical bytes that were hashed.
CREATE TABLE entries (
    idx        INTEGER PRIMARY KEY,
    leaf       BLOB    NOT NULL
);

-- Stored hashes, Go sumdb/tlog layout: every complete subtree hash once, at stored_hash_index(level, n).
CREATE TABLE hashes (
    idx  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);

-- Signed checkpoints (C2SP tlog-checkpoint notes), at most one a second plus one at shutdown.
CREATE TABLE checkpoints (
    size       INTEGER PRIMARY KEY,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- One row per issuance entry (idx = its log index), for lookups: a repeated (jti, iss) returns
-- the first index; resolution finds a jti; search by subject or client; chain walks follow
-- refresh tokens. The entry itself (entries.leaf) stays the record.
CREATE TABLE issuances (
    idx         INTEGER PRIMARY KEY,
    jti         TEXT    NOT NULL,
    iss         TEXT    NOT NULL,
    sub         TEXT    NOT NULL,
    vo          TEXT    NOT NULL,
    client_id   TEXT,
    refresh_jti TEXT
);
CREATE UNIQUE INDEX issuances_by_jti ON issuances (jti, iss);
CREATE INDEX issuances_by_subject ON issuances (iss, sub);
CREATE INDEX issuances_by_client ON issuances (vo, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX issuances_by_refresh ON issuances (iss, refresh_jti) WHERE refresh_jti IS NOT NULL;

-- Resolution entries by VO, for the VO's audit view.
CREATE TABLE resolutions (
    idx INTEGER PRIMARY KEY,
    vo  TEXT NOT NULL
);
CREATE INDEX resolutions_by_vo ON resolutions (vo, idx);

-- Identities (iss, sub) of persons, per VO. The first issuance of an unknown identity in
-- a VO creates a person with a random id; a VO security officer may link more identities.
CREATE TABLE identities (
    iss        TEXT    NOT NULL,
    sub        TEXT    NOT NULL,
    vo         TEXT    NOT NULL,
    person_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (iss, sub, vo)
) WITHOUT ROWID;
CREATE INDEX identities_by_person ON identities (person_id);

-- API credentials: only the SHA-256 of the secret is kept.
CREATE TABLE credentials (
    id          TEXT    PRIMARY KEY,
    secret_hash BLOB    NOT NULL UNIQUE,
    role        TEXT    NOT NULL,
    vo          TEXT,
    site        TEXT,
    issuer      TEXT,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
