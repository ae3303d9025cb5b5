-- Stored hashes of level 6 and above (subtrees of 64 leaves or more), copied together for
-- proof reads. `hashes` keeps them in creation order, so each of the ~18 upper hashes of a
-- proof at 10 M entries lies on its own page of that table: a random disk read each on a
-- cold page cache. Here they are 1/32 of the stored hashes (~13 MB at 10 M entries), few
-- enough pages to stay in the OS page cache.
-- `hashes` still holds every stored hash; this is a copy, keyed by the same stored index
-- (stored_hash_index(level, n)), written by the sequencer in the transaction that writes
-- `hashes`. The level is `log_store::UPPER_LEVEL`. A database migrated from before 0005
-- gets its copy filled from `hashes` when the sequencer starts.
CREATE TABLE upper_hashes (
    idx  INTEGER PRIMARY KEY,
    hash BLOB NOT NULL CHECK (length(hash) = 32)
);
