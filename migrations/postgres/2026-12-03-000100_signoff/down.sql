-- Reverts ../up.sql. Only the standing close of each month and its snapshot survive; reopened
-- closes, sign-offs and the city's quotas are dropped.
DROP TABLE city_quotas;
DROP TABLE month_signoffs;

CREATE TABLE closed_months (
    month     TEXT PRIMARY KEY NOT NULL CHECK (length(month) = 7),
    closed_at TIMESTAMP NOT NULL,
    closed_by TEXT NOT NULL REFERENCES users (id)
);
INSERT INTO closed_months (month, closed_at, closed_by)
    SELECT month, closed_at, closed_by FROM month_closes WHERE reopened_at IS NULL;

DELETE FROM month_snapshots s
    USING month_closes c
    WHERE c.month = s.month AND c.version = s.version AND c.reopened_at IS NOT NULL;
ALTER TABLE month_snapshots DROP CONSTRAINT month_snapshots_month_version_fkey;
ALTER TABLE month_snapshots DROP CONSTRAINT month_snapshots_pkey;
ALTER TABLE month_snapshots DROP COLUMN version;
ALTER TABLE month_snapshots ADD PRIMARY KEY (month, village_code);
ALTER TABLE month_snapshots ADD FOREIGN KEY (month) REFERENCES closed_months (month);
DROP TABLE month_closes;
