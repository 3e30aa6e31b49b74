-- Reverts ../up.sql. Only the standing close of each month and its snapshot survive; reopened
-- closes, sign-offs and the city's quotas are dropped.
PRAGMA foreign_keys = OFF;
BEGIN;

DROP TABLE city_quotas;
DROP INDEX month_signoffs_standing;
DROP TABLE month_signoffs;

CREATE TABLE closed_months (
    month     TEXT PRIMARY KEY NOT NULL CHECK (length(month) = 7),
    closed_at TIMESTAMP NOT NULL,
    closed_by TEXT NOT NULL REFERENCES users (id)
);
INSERT INTO closed_months (month, closed_at, closed_by)
    SELECT month, closed_at, closed_by FROM month_closes WHERE reopened_at IS NULL;

CREATE TABLE month_snapshots_rebuilt (
    month        TEXT NOT NULL REFERENCES closed_months (month),
    village_code TEXT NOT NULL REFERENCES villages (code),
    approved     TEXT NOT NULL,
    pending      TEXT NOT NULL,
    PRIMARY KEY (month, village_code)
);
INSERT INTO month_snapshots_rebuilt (month, village_code, approved, pending)
    SELECT s.month, s.village_code, s.approved, s.pending
    FROM month_snapshots s
    JOIN month_closes c ON c.month = s.month AND c.version = s.version
    WHERE c.reopened_at IS NULL;
DROP TABLE month_snapshots;
ALTER TABLE month_snapshots_rebuilt RENAME TO month_snapshots;
DROP INDEX month_closes_standing;
DROP TABLE month_closes;

COMMIT;
PRAGMA foreign_keys = ON;
