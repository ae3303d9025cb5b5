-- Whether a leaf dictionary was trained on training samples (the leaves' structure with
-- every value that may be personal data blanked, core's training_sample) rather than on the
-- leaves themselves. Dictionaries from before hold fragments of the leaves they were trained
-- on: a writer whose newest dictionary is not scrubbed trains a scrubbed one on the leaves
-- it appends and switches to it; the old one goes once no entry uses it.
ALTER TABLE leaf_dictionaries ADD COLUMN scrubbed INTEGER NOT NULL DEFAULT 0
    CHECK (scrubbed IN (0, 1));
