-- Sites, per-site pseudonyms, suspensions and lifts, signed blocklists, sightings.
-- The suspensions and sightings rows are written by the sequencer in the transaction of
-- their log entry; pseudonyms and blocklists are derived caches the API writes.

CREATE TABLE sites (
    name       TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE site_vos (
    site TEXT NOT NULL REFERENCES sites (name),
    vo   TEXT NOT NULL,
    PRIMARY KEY (site, vo)
) WITHOUT ROWID;

-- Every pseudonym handed out, so the VO can resolve one a site reports.
CREATE TABLE pseudonyms (
    pseudonym  TEXT    PRIMARY KEY,
    site       TEXT    NOT NULL,
    vo         TEXT    NOT NULL,
    person_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pseudonyms_by_person ON pseudonyms (person_id);

-- A suspension of a person (token_jti NULL) or of one token, at a site or, with site NULL,
-- at every site of the VO. `idx` is its log entry; lifted_* are set by the lift's entry.
CREATE TABLE suspensions (
    id          TEXT    PRIMARY KEY,
    idx         INTEGER NOT NULL,
    site        TEXT,
    vo          TEXT    NOT NULL,
    person_id   TEXT    NOT NULL,
    token_iss   TEXT,
    token_jti   TEXT,
    scope       TEXT    NOT NULL,
    reason_code TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    not_after   INTEGER,
    lifted_at   INTEGER,
    lifted_by   TEXT,
    lift_idx    INTEGER
) WITHOUT ROWID;
CREATE INDEX suspensions_by_site ON suspensions (site, created_at);
CREATE INDEX suspensions_by_vo ON suspensions (vo, created_at);
CREATE INDEX suspensions_by_person ON suspensions (person_id);

-- The last signed blocklist of each site; `sequence` only grows.
CREATE TABLE blocklists (
    site     TEXT    PRIMARY KEY,
    sequence INTEGER NOT NULL,
    document TEXT    NOT NULL
) WITHOUT ROWID;

-- Where a token was seen; the entry holds the details.
CREATE TABLE sightings (
    idx  INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    vo   TEXT NOT NULL,
    iss  TEXT NOT NULL,
    jti  TEXT NOT NULL
);
CREATE INDEX sightings_by_token ON sightings (iss, jti);
