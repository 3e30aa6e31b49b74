-- County sign-off before the monthly close (DHIS2's data approval: each county approves, the
-- city accepts), reopening with numbered snapshots, and the city's yearly post quota.
-- Kept step for step with ../../postgres/2026-12-03-000100_signoff/up.sql.
-- Runs outside diesel's transaction (see metadata.toml); the rebuild is one transaction.
PRAGMA foreign_keys = OFF;
BEGIN;

-- Every close of a month, numbered from 1. A reopen marks the standing close reopened (its
-- snapshot stays, readable by its version); the next close is the next version.
CREATE TABLE month_closes (
    month           TEXT NOT NULL CHECK (length(month) = 7),
    version         INTEGER NOT NULL CHECK (version >= 1),
    closed_at       TIMESTAMP NOT NULL,
    closed_by       TEXT NOT NULL REFERENCES users (id),
    -- Why the city closed without every county's sign-off or with surveys awaiting review,
    -- and what was missing then (Chinese, for people).
    override_reason TEXT,
    missing         TEXT,
    villages        INTEGER NOT NULL CHECK (villages >= 0),
    reopened_at     TIMESTAMP,
    reopened_by     TEXT REFERENCES users (id),
    reopen_reason   TEXT,
    PRIMARY KEY (month, version),
    CHECK ((reopened_at IS NULL) = (reopened_by IS NULL)),
    CHECK ((reopened_at IS NULL) = (reopen_reason IS NULL))
);
-- At most one standing close a month: of two racing closes one fails here.
CREATE UNIQUE INDEX month_closes_standing ON month_closes (month) WHERE reopened_at IS NULL;

INSERT INTO month_closes (month, version, closed_at, closed_by, villages)
    SELECT c.month, 1, c.closed_at, c.closed_by,
           (SELECT count(*) FROM month_snapshots s WHERE s.month = c.month)
    FROM closed_months c;

CREATE TABLE month_snapshots_rebuilt (
    month        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    village_code TEXT NOT NULL REFERENCES villages (code),
    approved     TEXT NOT NULL,
    pending      TEXT NOT NULL,
    PRIMARY KEY (month, version, village_code),
    FOREIGN KEY (month, version) REFERENCES month_closes (month, version)
);
INSERT INTO month_snapshots_rebuilt (month, version, village_code, approved, pending)
    SELECT month, 1, village_code, approved, pending FROM month_snapshots;
DROP TABLE month_snapshots;
DROP TABLE closed_months;
ALTER TABLE month_snapshots_rebuilt RENAME TO month_snapshots;

-- A county's sign-off of a month, for one round: the close version it prepares (the closes
-- made so far, plus one). A reopen starts a new round, so the counties sign again; the old
-- rows stay as history. A withdrawn sign-off keeps its row with who withdrew it and when.
CREATE TABLE month_signoffs (
    id              TEXT PRIMARY KEY NOT NULL,
    month           TEXT NOT NULL CHECK (length(month) = 7),
    round           INTEGER NOT NULL CHECK (round >= 1),
    county_code     TEXT NOT NULL REFERENCES divisions (code),
    signed_by       TEXT NOT NULL REFERENCES users (id),
    signed_at       TIMESTAMP NOT NULL,
    note            TEXT,
    -- Why the county signed with surveys still awaiting review, and how many there were.
    override_reason TEXT,
    pending_surveys INTEGER NOT NULL CHECK (pending_surveys >= 0),
    withdrawn_at    TIMESTAMP,
    withdrawn_by    TEXT REFERENCES users (id),
    withdraw_reason TEXT,
    CHECK ((withdrawn_at IS NULL) = (withdrawn_by IS NULL))
);
-- One standing sign-off per county and round.
CREATE UNIQUE INDEX month_signoffs_standing ON month_signoffs (month, round, county_code)
    WHERE withdrawn_at IS NULL;

-- The city's yearly post quota (the province's figures, which the city splits by county in
-- `quotas`). The notice's 2020 totals are loaded here: no one entered them (updated_by NULL).
CREATE TABLE city_quotas (
    year            INTEGER PRIMARY KEY NOT NULL CHECK (year BETWEEN 2015 AND 2100),
    special_posts   INTEGER NOT NULL CHECK (special_posts >= 0),
    temporary_posts INTEGER NOT NULL CHECK (temporary_posts >= 0),
    source          TEXT NOT NULL,
    updated_by      TEXT REFERENCES users (id),
    updated_at      TIMESTAMP NOT NULL
);
INSERT INTO city_quotas (year, special_posts, temporary_posts, source, updated_by, updated_at)
    VALUES (2020, 2592, 620, '通知：完成省下达的2592个扶贫特岗、620个临时公益岗指标任务',
            NULL, CURRENT_TIMESTAMP);

COMMIT;
PRAGMA foreign_keys = ON;
