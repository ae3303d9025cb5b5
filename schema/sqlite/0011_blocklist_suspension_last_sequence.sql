-- Enforcement status: the sequence of the last signed blocklist of `site` that carried the
-- suspension. A fetch counts for a suspension only between its first and its last sequence:
-- a site that first fetches after a lift has not fetched the suspension.
ALTER TABLE blocklist_suspensions ADD COLUMN last_sequence INTEGER;

-- What is known of the rows made so far: the stored document's sequence where it still
-- carries the suspension, else only its first sequence (never more than it was in).
UPDATE blocklist_suspensions SET last_sequence = sequence;
UPDATE blocklist_suspensions
SET last_sequence = (SELECT b.sequence FROM blocklists AS b WHERE b.site = blocklist_suspensions.site)
WHERE EXISTS (
    SELECT 1 FROM blocklists AS b, json_each(b.document, '$.document.entries') AS e
    WHERE b.site = blocklist_suspensions.site
      AND json_extract(e.value, '$.suspension_id') = blocklist_suspensions.suspension_id
);
