-- The monthly revisit: members without an ID number, revisits naming the version they were
-- based on, change stamps for the phone's download (sync), and the employer registry.
-- Kept step for step with ../../sqlite/2026-12-02-000000_revisit/up.sql.

-- A person without an ID number has no sealed number; their key is made by the server.
ALTER TABLE people ALTER COLUMN id_sealed DROP NOT NULL;

ALTER TABLE survey_flags DROP CONSTRAINT survey_flags_flag_check,
    ADD CONSTRAINT survey_flags_flag_check CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions', 'household_in_other_county', 'stale_base'));

-- A revisit names the version its phone showed; the survey it resolved to is kept.
ALTER TABLE household_surveys ADD COLUMN base_survey_id TEXT REFERENCES household_surveys (id);

-- Change stamps for the download: the village's ledger generation at the change.
ALTER TABLE households ADD COLUMN sync_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX households_sync ON households (village_code, sync_seq);
ALTER TABLE village_surveys ADD COLUMN sync_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX village_surveys_sync ON village_surveys (village_code, sync_seq);
ALTER TABLE villages ADD COLUMN sync_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE sync_tombstones (
    village_code      TEXT NOT NULL REFERENCES villages (code),
    household_id      TEXT NOT NULL REFERENCES households (id),
    reason            TEXT NOT NULL CHECK (reason IN ('merged', 'moved')),
    into_household_id TEXT REFERENCES households (id),
    sync_seq          BIGINT NOT NULL,
    PRIMARY KEY (village_code, household_id)
);
CREATE INDEX sync_tombstones_seq ON sync_tombstones (village_code, sync_seq);

CREATE TABLE sync_counters (
    name TEXT PRIMARY KEY NOT NULL,
    seq  BIGINT NOT NULL
);

CREATE TABLE employers (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('leading_enterprise', 'cooperative', 'workshop')),
    name        TEXT NOT NULL,
    credit_code TEXT UNIQUE,
    county_code TEXT NOT NULL CHECK (length(county_code) = 12),
    village_code TEXT REFERENCES villages (code),
    address     TEXT,
    active      BOOLEAN NOT NULL,
    demo        BOOLEAN NOT NULL,
    sync_seq    BIGINT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX employers_county ON employers (county_code, kind);
CREATE INDEX employers_sync ON employers (sync_seq);
