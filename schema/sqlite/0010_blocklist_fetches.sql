-- Enforcement status: when each site's blocklist first carried each suspension, and when
-- each site's credentials fetched which sequence. Derived rows the API writes, beside the
-- log (like `blocklists`); nothing in the log depends on them.

-- The sequence of the first signed blocklist of `site` that carried suspension
-- `suspension_id`, written with the document.
CREATE TABLE blocklist_suspensions (
    site          TEXT    NOT NULL,
    suspension_id TEXT    NOT NULL,
    sequence      INTEGER NOT NULL,
    PRIMARY KEY (site, suspension_id)
) WITHOUT ROWID;

-- The first time (unix seconds) a credential fetched a document of `sequence` of its site's
-- blocklist (the signed blocklist or an export of it).
CREATE TABLE blocklist_fetches (
    site          TEXT    NOT NULL,
    sequence      INTEGER NOT NULL,
    credential_id TEXT    NOT NULL,
    fetched_at    INTEGER NOT NULL,
    PRIMARY KEY (site, sequence, credential_id)
) WITHOUT ROWID;

-- The last time a credential fetched (or asked, with its ETag, after) its site's blocklist.
CREATE TABLE blocklist_last_fetches (
    site          TEXT    NOT NULL,
    credential_id TEXT    NOT NULL,
    sequence      INTEGER NOT NULL,
    fetched_at    INTEGER NOT NULL,
    PRIMARY KEY (site, credential_id)
) WITHOUT ROWID;

-- The suspensions of the blocklists stored before this migration, at their stored sequence.
INSERT OR IGNORE INTO blocklist_suspensions (site, suspension_id, sequence)
SELECT b.site, json_extract(e.value, '$.suspension_id'), b.sequence
FROM blocklists AS b, json_each(b.document, '$.document.entries') AS e
WHERE json_extract(e.value, '$.suspension_id') IS NOT NULL;
