-- One row per `redaction` or `erasure` entry that redacted something (issue 23): `idx` is
-- its index, [first_idx, end_idx) the span of the log its ranges cover, `redacted_at` unix
-- microseconds. A person's timeline names the redactions that cut into its page, since what
-- a redacted entry was about is no longer known. Rows of redactions made before this table
-- are rebuilt from redacted_entries.
CREATE TABLE redactions (
    idx         INTEGER PRIMARY KEY,
    first_idx   INTEGER NOT NULL,
    end_idx     INTEGER NOT NULL,
    redacted_at INTEGER NOT NULL,
    CHECK (first_idx < end_idx AND end_idx <= idx)
);

INSERT INTO redactions (idx, first_idx, end_idx, redacted_at)
SELECT redacted_by, MIN(idx), MAX(idx) + 1, MIN(redacted_at)
FROM redacted_entries GROUP BY redacted_by;
