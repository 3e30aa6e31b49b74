-- Reverts ../up.sql. Keys held by several households (one per county) go back to the household
-- with the smallest id; cross-county flags are dropped and their pairs become ordinary ones.
PRAGMA foreign_keys = OFF;
BEGIN;

DROP INDEX checkins_photo;
DROP INDEX checkins_county;
ALTER TABLE checkins DROP COLUMN county_code;

ALTER TABLE duplicate_pairs DROP COLUMN kind;

DELETE FROM survey_flags WHERE flag = 'household_in_other_county';
CREATE TABLE survey_flags_rebuilt (
    survey_id            TEXT NOT NULL REFERENCES household_surveys (id),
    flag                 TEXT NOT NULL CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions')),
    -- The other household concerned ('' when none): part of the key, so a flag is stored once.
    related_household_id TEXT NOT NULL,
    detail               TEXT NOT NULL,
    PRIMARY KEY (survey_id, flag, related_household_id)
);
INSERT INTO survey_flags_rebuilt (survey_id, flag, related_household_id, detail)
    SELECT survey_id, flag, related_household_id, detail FROM survey_flags;
DROP TABLE survey_flags;
ALTER TABLE survey_flags_rebuilt RENAME TO survey_flags;

CREATE TABLE households_rebuilt (
    id               TEXT PRIMARY KEY NOT NULL,
    village_code     TEXT NOT NULL REFERENCES villages (code),
    -- The identity keys: national household number, else keyed hash of the head's ID number.
    household_number TEXT UNIQUE,
    head_id_hash     TEXT UNIQUE,
    created_at       TIMESTAMP NOT NULL
);
INSERT INTO households_rebuilt (id, village_code, household_number, head_id_hash, created_at)
    SELECT h.id, h.village_code,
        (SELECT min(k.value) FROM household_keys k
         WHERE k.household_id = h.id AND k.kind = 'household_number' AND NOT EXISTS (
             SELECT 1 FROM household_keys o
             WHERE o.kind = k.kind AND o.value = k.value AND o.household_id < k.household_id)),
        (SELECT min(k.value) FROM household_keys k
         WHERE k.household_id = h.id AND k.kind = 'head_id' AND NOT EXISTS (
             SELECT 1 FROM household_keys o
             WHERE o.kind = k.kind AND o.value = k.value AND o.household_id < k.household_id)),
        h.created_at
    FROM households h;
DROP TABLE households;
ALTER TABLE households_rebuilt RENAME TO households;
CREATE INDEX households_village ON households (village_code);

DROP TABLE household_keys;

COMMIT;
PRAGMA foreign_keys = ON;
