-- Sightings by the identity of the sighted token, for person timelines. Until 0006 the
-- timeline found them from the person's issuances (`issuances_by_identity`); without that
-- index it had to scan every sighting of the log. A sighting always names a logged
-- issuance (the API refuses others), so `identity` is that issuance's identity; the
-- sequencer fills it in the sighting's transaction. Existing rows are filled here.
ALTER TABLE sightings ADD COLUMN identity INTEGER;
UPDATE sightings SET identity = (
    SELECT i.identity FROM issuances i JOIN issuers r ON r.id = i.issuer
    WHERE i.jti = sightings.jti AND r.iss = sightings.iss
);
CREATE INDEX sightings_by_identity ON sightings (identity, idx);
