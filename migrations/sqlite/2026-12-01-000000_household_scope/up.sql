-- Household identity keys per county, flags for keys that another county's household holds,
-- and the county of each check-in (photo reuse is looked for across the county).
-- Kept step for step with ../../postgres/2026-12-01-000000_household_scope/up.sql.
-- Runs outside diesel's transaction (see metadata.toml); the rebuild is one transaction.
PRAGMA foreign_keys = OFF;
BEGIN;

-- A household number or head's ID-number hash identifies a household only inside one county:
-- the same key in another county is another household until the city decides otherwise.
CREATE TABLE household_keys (
    county_code  TEXT NOT NULL CHECK (length(county_code) = 12),
    kind         TEXT NOT NULL CHECK (kind IN ('household_number', 'head_id')),
    value        TEXT NOT NULL,
    household_id TEXT NOT NULL REFERENCES households (id),
    PRIMARY KEY (county_code, kind, value)
);
INSERT INTO household_keys (county_code, kind, value, household_id)
    SELECT substr(village_code, 1, 6) || '000000', 'household_number', household_number, id
    FROM households WHERE household_number IS NOT NULL;
INSERT INTO household_keys (county_code, kind, value, household_id)
    SELECT substr(village_code, 1, 6) || '000000', 'head_id', head_id_hash, id
    FROM households WHERE head_id_hash IS NOT NULL;
CREATE INDEX household_keys_value ON household_keys (kind, value);
CREATE INDEX household_keys_household ON household_keys (household_id);

-- The city-wide UNIQUE key columns go: the keys live in household_keys.
CREATE TABLE households_rebuilt (
    id           TEXT PRIMARY KEY NOT NULL,
    village_code TEXT NOT NULL REFERENCES villages (code),
    created_at   TIMESTAMP NOT NULL
);
INSERT INTO households_rebuilt (id, village_code, created_at)
    SELECT id, village_code, created_at FROM households;
DROP TABLE households;
ALTER TABLE households_rebuilt RENAME TO households;
CREATE INDEX households_village ON households (village_code);

CREATE TABLE survey_flags_rebuilt (
    survey_id            TEXT NOT NULL REFERENCES household_surveys (id),
    flag                 TEXT NOT NULL CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions', 'household_in_other_county')),
    -- The other household concerned ('' when none): part of the key, so a flag is stored once.
    related_household_id TEXT NOT NULL,
    detail               TEXT NOT NULL,
    PRIMARY KEY (survey_id, flag, related_household_id)
);
INSERT INTO survey_flags_rebuilt (survey_id, flag, related_household_id, detail)
    SELECT survey_id, flag, related_household_id, detail FROM survey_flags;
DROP TABLE survey_flags;
ALTER TABLE survey_flags_rebuilt RENAME TO survey_flags;

-- A pair of households sharing a key across counties is decided by the city: merge is a
-- transfer (the household moved), keep apart a mistake in one of the keys.
ALTER TABLE duplicate_pairs ADD COLUMN kind TEXT NOT NULL DEFAULT 'possible_duplicate'
    CHECK (kind IN ('possible_duplicate', 'household_in_other_county'));

ALTER TABLE checkins ADD COLUMN county_code TEXT NOT NULL DEFAULT '';
UPDATE checkins SET county_code = substr(village_code, 1, 6) || '000000';
-- Reuse across the county: near copies within a window of days, exact copies by hash.
CREATE INDEX checkins_county ON checkins (county_code, attendance_date, photo_phash);
CREATE INDEX checkins_photo ON checkins (photo_sha256);

COMMIT;
PRAGMA foreign_keys = ON;
