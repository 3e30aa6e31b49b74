-- Reverts ../up.sql. Members without an ID number and stale-base flags are dropped.
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
ALTER TABLE survey_flags DROP CONSTRAINT survey_flags_flag_check,
    ADD CONSTRAINT survey_flags_flag_check CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions', 'household_in_other_county'));
DELETE FROM survey_members WHERE person_id_hash IN (SELECT id_hash FROM people WHERE id_sealed IS NULL);
DELETE FROM people WHERE id_sealed IS NULL;
ALTER TABLE people ALTER COLUMN id_sealed SET NOT NULL;
