-- Compact lookup tables: `issuances` stops repeating iss, sub, vo and client_id as text in
-- every row and index entry (~395 bytes an issuance at 10 M rows). Issuers and clients get
-- integer ids; `identities` becomes a rowid table whose id stands for (iss, sub, vo); an
-- issuance row points at these ids. Existing rows are copied; an issuance without its
-- identity row fails the migration (NOT NULL) rather than being lost.
-- No REFERENCES clauses: foreign_keys is ON and per-row checks would cost the writer.

-- Issuers of logged issuances, interned by the sequencer.
CREATE TABLE issuers (
    id  INTEGER PRIMARY KEY,
    iss TEXT    NOT NULL UNIQUE
);
INSERT INTO issuers (iss) SELECT iss FROM issuances GROUP BY iss ORDER BY MIN(idx);

-- OAuth clients of a VO, interned by the sequencer.
CREATE TABLE clients (
    id        INTEGER PRIMARY KEY,
    vo        TEXT    NOT NULL,
    client_id TEXT    NOT NULL,
    UNIQUE (vo, client_id)
);
INSERT INTO clients (vo, client_id)
SELECT vo, client_id FROM issuances WHERE client_id IS NOT NULL
GROUP BY vo, client_id ORDER BY MIN(idx);

-- Identities (iss, sub) of persons, per VO, as in 0001; `id` is what issuances point at.
ALTER TABLE identities RENAME TO identities_0001;
CREATE TABLE identities (
    id         INTEGER PRIMARY KEY,
    iss        TEXT    NOT NULL,
    sub        TEXT    NOT NULL,
    vo         TEXT    NOT NULL,
    person_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (iss, sub, vo)
);
INSERT INTO identities (iss, sub, vo, person_id, created_at)
SELECT iss, sub, vo, person_id, created_at FROM identities_0001
ORDER BY created_at, iss, sub, vo;
DROP TABLE identities_0001;
CREATE INDEX identities_by_person ON identities (person_id);

-- One row per issuance entry (idx = its log index), for lookups: a repeated (jti, issuer)
-- returns the first index; resolution finds a jti; search by identity or client; chain
-- walks follow refresh tokens. `identity` gives iss, sub and vo; `client` is NULL if the
-- token named none. The entry itself (entries.leaf) stays the record.
ALTER TABLE issuances RENAME TO issuances_0001;
CREATE TABLE issuances (
    idx         INTEGER PRIMARY KEY,
    jti         TEXT    NOT NULL,
    issuer      INTEGER NOT NULL,
    identity    INTEGER NOT NULL,
    client      INTEGER,
    refresh_jti TEXT
);
-- LEFT JOINs: a missing identity leaves `identity` NULL and the NOT NULL constraint stops
-- the migration; a missing client is impossible (all were interned above).
INSERT INTO issuances (idx, jti, issuer, identity, client, refresh_jti)
SELECT o.idx, o.jti, r.id, d.id, c.id, o.refresh_jti
FROM issuances_0001 o
JOIN issuers r ON r.iss = o.iss
LEFT JOIN identities d ON d.iss = o.iss AND d.sub = o.sub AND d.vo = o.vo
LEFT JOIN clients c ON c.vo = o.vo AND c.client_id = o.client_id
ORDER BY o.idx;
DROP TABLE issuances_0001;
CREATE UNIQUE INDEX issuances_by_jti ON issuances (jti, issuer);
CREATE INDEX issuances_by_identity ON issuances (identity, idx);
CREATE INDEX issuances_by_client ON issuances (client, idx) WHERE client IS NOT NULL;
CREATE INDEX issuances_by_refresh ON issuances (issuer, refresh_jti) WHERE refresh_jti IS NOT NULL;
