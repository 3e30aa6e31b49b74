-- The monthly revisit: members without an ID number, revisits naming the version they were
-- based on, change stamps for the phone's download (sync), and the employer registry.
-- Kept step for step with ../../postgres/2026-12-02-000000_revisit/up.sql.
-- Runs outside diesel's transaction (see metadata.toml); the rebuild is one transaction.
PRAGMA foreign_keys = OFF;
BEGIN;

-- A person without an ID number (a newborn not yet registered, a lost card) has no sealed
-- number; their key is made by the server (`noid-…`), never a keyed hash.
CREATE TABLE people_rebuilt (
    id_hash    TEXT PRIMARY KEY NOT NULL,
    id_sealed  TEXT,
    sex        TEXT NOT NULL CHECK (sex IN ('male', 'female')),
    birth_date DATE NOT NULL
);
INSERT INTO people_rebuilt (id_hash, id_sealed, sex, birth_date)
    SELECT id_hash, id_sealed, sex, birth_date FROM people;
DROP TABLE people;
ALTER TABLE people_rebuilt RENAME TO people;

CREATE TABLE survey_flags_rebuilt (
    survey_id            TEXT NOT NULL REFERENCES household_surveys (id),
    flag                 TEXT NOT NULL CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions', 'household_in_other_county', 'stale_base')),
    -- The other household concerned ('' when none): part of the key, so a flag is stored once.
    related_household_id TEXT NOT NULL,
    detail               TEXT NOT NULL,
    PRIMARY KEY (survey_id, flag, related_household_id)
);
INSERT INTO survey_flags_rebuilt (survey_id, flag, related_household_id, detail)
    SELECT survey_id, flag, related_household_id, detail FROM survey_flags;
DROP TABLE survey_flags;
ALTER TABLE survey_flags_rebuilt RENAME TO survey_flags;

-- A revisit names the version its phone showed; the survey it resolved to is kept, so the
-- staleness check survives a merge renumbering the versions.
ALTER TABLE household_surveys ADD COLUMN base_survey_id TEXT REFERENCES household_surveys (id);

-- Change stamps for the download: the village's ledger generation at the change (the row lock
-- on it orders writers, so a reader that has seen generation g has seen every stamp <= g).
ALTER TABLE households ADD COLUMN sync_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX households_sync ON households (village_code, sync_seq);
ALTER TABLE village_surveys ADD COLUMN sync_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX village_surveys_sync ON village_surveys (village_code, sync_seq);
ALTER TABLE villages ADD COLUMN sync_seq BIGINT NOT NULL DEFAULT 0;

-- Households that left a village's download: merged into another, or moved to another village.
CREATE TABLE sync_tombstones (
    village_code      TEXT NOT NULL REFERENCES villages (code),
    household_id      TEXT NOT NULL REFERENCES households (id),
    reason            TEXT NOT NULL CHECK (reason IN ('merged', 'moved')),
    into_household_id TEXT REFERENCES households (id),
    sync_seq          BIGINT NOT NULL,
    PRIMARY KEY (village_code, household_id)
);
CREATE INDEX sync_tombstones_seq ON sync_tombstones (village_code, sync_seq);

-- Counters for streams that belong to no village (the employer registry).
CREATE TABLE sync_counters (
    name TEXT PRIMARY KEY NOT NULL,
    seq  BIGINT NOT NULL
);

-- The employer registry (SPEC §3): leading enterprises, cooperatives, workshops.
CREATE TABLE employers (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('leading_enterprise', 'cooperative', 'workshop')),
    name        TEXT NOT NULL,
    -- 统一社会信用代码, when known: one employer per code.
    credit_code TEXT UNIQUE,
    county_code TEXT NOT NULL CHECK (length(county_code) = 12),
    village_code TEXT REFERENCES villages (code),
    address     TEXT,
    active      BOOLEAN NOT NULL,
    -- Generated for the demo, not the city's list.
    demo        BOOLEAN NOT NULL,
    sync_seq    BIGINT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX employers_county ON employers (county_code, kind);
CREATE INDEX employers_sync ON employers (sync_seq);

COMMIT;
PRAGMA foreign_keys = ON;
