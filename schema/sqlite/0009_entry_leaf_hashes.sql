-- Every read of a leaf goes through this view, which pairs the stored leaf with its stored
-- leaf hash, so that the reader hashes what it read and compares before it serves or uses it
-- (log_store::decode_entries): a damaged or altered row is an integrity error, never other
-- bytes. The leaf hash of entry n is the stored hash of level 0, index n, which the Go sumdb
-- layout keeps at stored_hash_index(0, n) = n + n/2 + n/4 + ... (= 2n - popcount(n)): the
-- sum below, one term per bit of a non-negative 63-bit index. SQLite flattens the view into
-- each query: one more primary-key lookup per entry read. A missing hash row gives a NULL
-- leaf_hash, which is an integrity error too.
CREATE VIEW entries_with_leaf_hash AS
SELECT e.idx AS idx, e.leaf AS leaf, e.dictionary AS dictionary, h.hash AS leaf_hash
FROM entries e
LEFT JOIN hashes h ON h.idx = (
    e.idx + (e.idx >> 1) + (e.idx >> 2) + (e.idx >> 3) + (e.idx >> 4) + (e.idx >> 5) +
    (e.idx >> 6) + (e.idx >> 7) + (e.idx >> 8) + (e.idx >> 9) + (e.idx >> 10) + (e.idx >> 11) +
    (e.idx >> 12) + (e.idx >> 13) + (e.idx >> 14) + (e.idx >> 15) + (e.idx >> 16) + (e.idx >> 17) +
    (e.idx >> 18) + (e.idx >> 19) + (e.idx >> 20) + (e.idx >> 21) + (e.idx >> 22) + (e.idx >> 23) +
    (e.idx >> 24) + (e.idx >> 25) + (e.idx >> 26) + (e.idx >> 27) + (e.idx >> 28) + (e.idx >> 29) +
    (e.idx >> 30) + (e.idx >> 31) + (e.idx >> 32) + (e.idx >> 33) + (e.idx >> 34) + (e.idx >> 35) +
    (e.idx >> 36) + (e.idx >> 37) + (e.idx >> 38) + (e.idx >> 39) + (e.idx >> 40) + (e.idx >> 41) +
    (e.idx >> 42) + (e.idx >> 43) + (e.idx >> 44) + (e.idx >> 45) + (e.idx >> 46) + (e.idx >> 47) +
    (e.idx >> 48) + (e.idx >> 49) + (e.idx >> 50) + (e.idx >> 51) + (e.idx >> 52) + (e.idx >> 53) +
    (e.idx >> 54) + (e.idx >> 55) + (e.idx >> 56) + (e.idx >> 57) + (e.idx >> 58) + (e.idx >> 59) +
    (e.idx >> 60) + (e.idx >> 61) + (e.idx >> 62)
);
