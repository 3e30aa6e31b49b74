-- The households a county already has (建档立卡 lists), imported before anyone surveys them.
-- Kept step for step with ../../postgres/2026-12-04-000000_household_import/up.sql.

-- One row per import that stored something or found every row known: who, the file's hash,
-- and what became of its rows (also in the audit log).
CREATE TABLE household_imports (
    id          TEXT PRIMARY KEY NOT NULL,
    imported_by TEXT NOT NULL REFERENCES users (id),
    imported_at TIMESTAMP NOT NULL,
    file_sha256 TEXT NOT NULL CHECK (length(file_sha256) = 64),
    format      TEXT NOT NULL CHECK (format IN ('csv', 'xlsx')),
    rows        INTEGER NOT NULL CHECK (rows >= 0),
    created     INTEGER NOT NULL CHECK (created >= 0),
    known       INTEGER NOT NULL CHECK (known >= 0),
    repeated    INTEGER NOT NULL CHECK (repeated >= 0)
);
CREATE INDEX household_imports_file ON household_imports (file_sha256);

-- A household known from a list, as the list gave it. Its keys are in household_keys, like a
-- surveyed household's, so its first survey becomes its version 1 instead of a new household.
CREATE TABLE imported_households (
    household_id     TEXT PRIMARY KEY NOT NULL REFERENCES households (id),
    import_id        TEXT NOT NULL REFERENCES household_imports (id),
    imported_at      TIMESTAMP NOT NULL,
    -- The village the list put it in (households.village_code follows its surveys).
    village_code     TEXT NOT NULL REFERENCES villages (code),
    household_number TEXT,
    head_name        TEXT NOT NULL,
    -- Keyed hash and sealed (AES-256-GCM) head's ID number, as household_surveys keeps them.
    head_id_hash     TEXT NOT NULL,
    head_id_sealed   TEXT NOT NULL,
    member_count     INTEGER NOT NULL CHECK (member_count BETWEEN 1 AND 30),
    phone_sealed     TEXT,
    poverty_status   TEXT CHECK (poverty_status IN ('lifted', 'not_lifted', 'monitored')),
    lifted_year      INTEGER CHECK (lifted_year BETWEEN 2013 AND 2100),
    relocated        BOOLEAN
);
CREATE INDEX imported_households_village ON imported_households (village_code, imported_at);
CREATE INDEX imported_households_import ON imported_households (import_id);

-- Cached figures predate the known-household figures: recompute them on the next read.
DELETE FROM ledger_cache;
