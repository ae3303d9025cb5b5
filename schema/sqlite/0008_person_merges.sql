-- Persons merged away, so the sequencer tells "this person was merged into another" (409)
-- from "there is no such person" (404): a merge moves every identity of `person_id` to
-- `into_person`, after which the person has no identity left, exactly like one that never
-- existed. Written by the sequencer in the transaction of the merge's log entry (`idx`).
-- Merges logged before this migration have no row: their persons read as unknown.
CREATE TABLE person_merges (
    vo          TEXT    NOT NULL,
    person_id   TEXT    NOT NULL,
    into_person TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    PRIMARY KEY (vo, person_id)
) WITHOUT ROWID;
