-- Issuances by identity, grouped by epochs of 4,096 log indexes (idx >> 12), for the
-- sequencer's sake. With `issuances_by_identity (identity, idx)` every issuance inserted at a
-- random place of that index (one append point per identity), so each row of a batch dirtied
-- a page of it and each commit wrote that page to the WAL: half of the writer's random pages.
-- Keyed by epoch first, a batch inserts into the current epoch's few dozen pages only.
-- Readers ask epoch by epoch (`identity_scan.rs`, newest first, in windows that double); the
-- shift (12) is `identity_scan::EPOCH_SHIFT` and must stay equal to the expression below,
-- which queries repeat exactly so that SQLite uses this index. The rowid (idx) ends every key.
-- On a large log this migration rebuilds the index once at start (10 M issuances: a sort).
DROP INDEX issuances_by_identity;
CREATE INDEX issuances_by_identity_epoch ON issuances (idx >> 12, identity);
