-- Site -> VO suspension requests: a site asks the VO's security officers to suspend a person
-- at every site of the VO; they accept (a VO-wide suspension) or decline with a reason.
-- Written by the sequencer in the transaction of each step's log entry, like `suspensions`.
-- `status` is `pending`, `accepted` or `declined`; decided_* are set by the decision's entry.
CREATE TABLE suspension_requests (
    id             TEXT    PRIMARY KEY,
    idx            INTEGER NOT NULL,
    site           TEXT    NOT NULL,
    vo             TEXT    NOT NULL,
    person_id      TEXT    NOT NULL,
    pseudonym      TEXT    NOT NULL,
    token_iss      TEXT,
    token_jti      TEXT,
    evidence       TEXT    NOT NULL,
    scope          TEXT,
    reason_code    TEXT,
    not_after      INTEGER,
    requested_by   TEXT    NOT NULL,
    requested_at   INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'pending',
    decided_by     TEXT,
    decided_at     INTEGER,
    decision_idx   INTEGER,
    suspension_id  TEXT,
    decline_reason TEXT
) WITHOUT ROWID;
CREATE INDEX suspension_requests_by_site ON suspension_requests (site, requested_at);
CREATE INDEX suspension_requests_by_vo ON suspension_requests (vo, status, requested_at);
CREATE INDEX suspension_requests_by_person ON suspension_requests (person_id);
