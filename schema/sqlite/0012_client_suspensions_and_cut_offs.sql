-- Client suspensions and not-before cut-offs (issue 22). A client suspension names no
-- person, so `person_id` becomes nullable: SQLite cannot drop a NOT NULL in place, so the
-- table is rebuilt (same rows, same indexes) with the new columns:
--   client_iss, client_id: the suspended client (a token's `client_id`, else `azp`) of an
--     issuer; NULL for a person or token suspension.
--   issued_before: a not-before cut-off (unix seconds): only tokens issued before it are
--     suspended; NULL for every token.
CREATE TABLE suspensions_0012 (
    id            TEXT    PRIMARY KEY,
    idx           INTEGER NOT NULL,
    site          TEXT,
    vo            TEXT    NOT NULL,
    person_id     TEXT,
    token_iss     TEXT,
    token_jti     TEXT,
    client_iss    TEXT,
    client_id     TEXT,
    scope         TEXT    NOT NULL,
    reason_code   TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    not_after     INTEGER,
    issued_before INTEGER,
    lifted_at     INTEGER,
    lifted_by     TEXT,
    lift_idx      INTEGER,
    -- A suspension is of a person (also for one token), or of a client: never both, never
    -- neither.
    CHECK ((person_id IS NULL) = (client_id IS NOT NULL)),
    CHECK ((client_iss IS NULL) = (client_id IS NULL))
) WITHOUT ROWID;

INSERT INTO suspensions_0012 (id, idx, site, vo, person_id, token_iss, token_jti, scope,
                              reason_code, created_by, created_at, not_after, lifted_at,
                              lifted_by, lift_idx)
SELECT id, idx, site, vo, person_id, token_iss, token_jti, scope, reason_code, created_by,
       created_at, not_after, lifted_at, lifted_by, lift_idx
FROM suspensions;

DROP TABLE suspensions;
ALTER TABLE suspensions_0012 RENAME TO suspensions;
CREATE INDEX suspensions_by_site ON suspensions (site, created_at);
CREATE INDEX suspensions_by_vo ON suspensions (vo, created_at);
CREATE INDEX suspensions_by_person ON suspensions (person_id);
