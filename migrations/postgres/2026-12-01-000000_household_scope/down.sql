-- Reverts ../up.sql. Keys held by several households (one per county) go back to the household
-- with the smallest id; cross-county flags are dropped and their pairs become ordinary ones.
DROP INDEX checkins_photo;
DROP INDEX checkins_county;
ALTER TABLE checkins DROP COLUMN county_code;

ALTER TABLE duplicate_pairs DROP COLUMN kind;

DELETE FROM survey_flags WHERE flag = 'household_in_other_county';
ALTER TABLE survey_flags DROP CONSTRAINT survey_flags_flag_check,
    ADD CONSTRAINT survey_flags_flag_check CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions'));

ALTER TABLE households ADD COLUMN household_number TEXT UNIQUE, ADD COLUMN head_id_hash TEXT UNIQUE;
UPDATE households h SET
    household_number = (SELECT min(k.value) FROM household_keys k
        WHERE k.household_id = h.id AND k.kind = 'household_number' AND NOT EXISTS (
            SELECT 1 FROM household_keys o
            WHERE o.kind = k.kind AND o.value = k.value AND o.household_id < k.household_id)),
    head_id_hash = (SELECT min(k.value) FROM household_keys k
        WHERE k.household_id = h.id AND k.kind = 'head_id' AND NOT EXISTS (
            SELECT 1 FROM household_keys o
            WHERE o.kind = k.kind AND o.value = k.value AND o.household_id < k.household_id));

DROP TABLE household_keys;
