-- The redactions that redacted something, as sqlite 0015: a person's timeline names those
-- that cut into its page.
CREATE TABLE redactions (
    idx         BIGINT PRIMARY KEY,
    first_idx   BIGINT NOT NULL,
    end_idx     BIGINT NOT NULL,
    redacted_at BIGINT NOT NULL,
    CHECK (first_idx < end_idx AND end_idx <= idx)
);

INSERT INTO redactions (idx, first_idx, end_idx, redacted_at)
SELECT redacted_by, MIN(idx), MAX(idx) + 1, MIN(redacted_at)
FROM redacted_entries GROUP BY redacted_by;
