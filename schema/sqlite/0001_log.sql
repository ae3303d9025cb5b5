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

-- Issuances by (jti, iss): a repeated report returns the first index.
CREATE TABLE issuances (
    jti TEXT    NOT NULL,
    iss TEXT    NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (jti, iss)
) WITHOUT ROWID;

-- API credentials: only the SHA-256 of the secret is kept.
CREATE TABLE credentials (
    id          TEXT    PRIMARY KEY,
    secret_hash BLOB    NOT NULL UNIQUE,
    role        TEXT    NOT NULL,
    vo          TEXT,
    site        TEXT,
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
