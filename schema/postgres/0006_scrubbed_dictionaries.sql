-- Whether a leaf dictionary was trained on training samples, as sqlite 0016: dictionaries
-- from before hold fragments of the leaves they were trained on, and are replaced.
ALTER TABLE leaf_dictionaries ADD COLUMN scrubbed BIGINT NOT NULL DEFAULT 0
    CHECK (scrubbed IN (0, 1));
