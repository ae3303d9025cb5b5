-- Stored leaves may be compressed. `entries.dictionary` NULL: `leaf` holds the canonical bytes
-- themselves; otherwise `leaf` is a zstd frame made with that dictionary, which decompresses
-- to exactly the canonical bytes that were hashed. Dictionaries are trained on this log's own
-- first leaves, written in the transaction of the first entry compressed with them, and never
-- change or go away.

CREATE TABLE leaf_dictionaries (
    id         INTEGER PRIMARY KEY,
    dictionary BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);

ALTER TABLE entries ADD COLUMN dictionary INTEGER;
