-- Reverts ../up.sql. Members without an ID number and stale-base flags cannot be kept by the
-- older schema: they are dropped with the surveys' link to their base.
PRAGMA foreign_keys = OFF;
BEGIN;

DROP TABLE employers;
DROP TABLE sync_counters;
DROP TABLE sync_tombstones;
ALTER TABLE villages DROP COLUMN sync_seq;
DROP INDEX village_surveys_sync;
ALTER TABLE village_surveys DROP COLUMN sync_seq;
DROP INDEX households_sync;
ALTER TABLE households DROP COLUMN sync_seq;
ALTER TABLE household_surveys DROP COLUMN base_survey_id;

DELETE FROM survey_flags WHERE flag = 'stale_base';
CREATE TABLE survey_flags_rebuilt (
    survey_id            TEXT NOT NULL REFERENCES household_surveys (id),
    flag                 TEXT NOT NULL CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions', 'household_in_other_county')),
    related_household_id TEXT NOT NULL,
    detail               TEXT NOT NULL,
    PRIMARY KEY (survey_id, flag, related_household_id)
);
INSERT INTO survey_flags_rebuilt (survey_id, flag, related_household_id, detail)
    SELECT survey_id, flag, related_household_id, detail FROM survey_flags;
DROP TABLE survey_flags;
ALTER TABLE survey_flags_rebuilt RENAME TO survey_flags;

DELETE FROM survey_members WHERE person_id_hash IN (SELECT id_hash FROM people WHERE id_sealed IS NULL);
DELETE FROM people WHERE id_sealed IS NULL;
CREATE TABLE people_rebuilt (
    id_hash    TEXT PRIMARY KEY NOT NULL,
    id_sealed  TEXT NOT NULL,
    sex        TEXT NOT NULL CHECK (sex IN ('male', 'female')),
    birth_date DATE NOT NULL
);
INSERT INTO people_rebuilt (id_hash, id_sealed, sex, birth_date)
    SELECT id_hash, id_sealed, sex, birth_date FROM people;
DROP TABLE people;
ALTER TABLE people_rebuilt RENAME TO people;

COMMIT;
PRAGMA foreign_keys = ON;
