-- Text sorts and compares by bytes, as on SQLite: every TEXT column gets the "C" collation,
-- whatever the database's default (en_US.UTF-8 would sort 'a' before 'B', and order listings,
-- keys and pages differently from SQLite's). The rows stay as they are; the indexes on these
-- columns are rebuilt.
ALTER TABLE checkpoints
    ALTER COLUMN note TYPE TEXT COLLATE "C";
ALTER TABLE issuers
    ALTER COLUMN iss TYPE TEXT COLLATE "C";
ALTER TABLE clients
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN client_id TYPE TEXT COLLATE "C";
ALTER TABLE identities
    ALTER COLUMN iss TYPE TEXT COLLATE "C",
    ALTER COLUMN sub TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN person_id TYPE TEXT COLLATE "C";
ALTER TABLE issuances
    ALTER COLUMN jti TYPE TEXT COLLATE "C",
    ALTER COLUMN refresh_jti TYPE TEXT COLLATE "C";
ALTER TABLE resolutions
    ALTER COLUMN vo TYPE TEXT COLLATE "C";
ALTER TABLE credentials
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN role TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN issuer TYPE TEXT COLLATE "C",
    ALTER COLUMN label TYPE TEXT COLLATE "C";
ALTER TABLE sites
    ALTER COLUMN name TYPE TEXT COLLATE "C";
ALTER TABLE site_vos
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C";
ALTER TABLE pseudonyms
    ALTER COLUMN pseudonym TYPE TEXT COLLATE "C",
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN person_id TYPE TEXT COLLATE "C";
ALTER TABLE suspensions
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN person_id TYPE TEXT COLLATE "C",
    ALTER COLUMN token_iss TYPE TEXT COLLATE "C",
    ALTER COLUMN token_jti TYPE TEXT COLLATE "C",
    ALTER COLUMN client_iss TYPE TEXT COLLATE "C",
    ALTER COLUMN client_id TYPE TEXT COLLATE "C",
    ALTER COLUMN scope TYPE TEXT COLLATE "C",
    ALTER COLUMN reason_code TYPE TEXT COLLATE "C",
    ALTER COLUMN created_by TYPE TEXT COLLATE "C",
    ALTER COLUMN lifted_by TYPE TEXT COLLATE "C";
ALTER TABLE blocklists
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN document TYPE TEXT COLLATE "C";
ALTER TABLE sightings
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN iss TYPE TEXT COLLATE "C",
    ALTER COLUMN jti TYPE TEXT COLLATE "C";
ALTER TABLE person_merges
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN person_id TYPE TEXT COLLATE "C",
    ALTER COLUMN into_person TYPE TEXT COLLATE "C";
ALTER TABLE blocklist_suspensions
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN suspension_id TYPE TEXT COLLATE "C";
ALTER TABLE blocklist_fetches
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN credential_id TYPE TEXT COLLATE "C";
ALTER TABLE blocklist_last_fetches
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN credential_id TYPE TEXT COLLATE "C";
ALTER TABLE suspension_requests
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN site TYPE TEXT COLLATE "C",
    ALTER COLUMN vo TYPE TEXT COLLATE "C",
    ALTER COLUMN person_id TYPE TEXT COLLATE "C",
    ALTER COLUMN pseudonym TYPE TEXT COLLATE "C",
    ALTER COLUMN token_iss TYPE TEXT COLLATE "C",
    ALTER COLUMN token_jti TYPE TEXT COLLATE "C",
    ALTER COLUMN evidence TYPE TEXT COLLATE "C",
    ALTER COLUMN scope TYPE TEXT COLLATE "C",
    ALTER COLUMN reason_code TYPE TEXT COLLATE "C",
    ALTER COLUMN requested_by TYPE TEXT COLLATE "C",
    ALTER COLUMN status TYPE TEXT COLLATE "C",
    ALTER COLUMN decided_by TYPE TEXT COLLATE "C",
    ALTER COLUMN suspension_id TYPE TEXT COLLATE "C",
    ALTER COLUMN decline_reason TYPE TEXT COLLATE "C";
ALTER TABLE writer_lease
    ALTER COLUMN holder TYPE TEXT COLLATE "C";

-- The epoch index carries the log index too, so a scan of one (epoch, identity) pair reads
-- its issuances newest first from the index, without sorting.
DROP INDEX issuances_by_identity_epoch;
CREATE INDEX issuances_by_identity_epoch ON issuances ((idx >> 12), identity, idx);

-- The backend that wrote the row: the writer is named only while that backend holds the
-- lease's lock (a writer that died leaves its row, and a new one writes its row last).
ALTER TABLE writer_lease ADD COLUMN pid INTEGER;
