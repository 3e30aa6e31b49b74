-- The ledger: per-village figures cached by month, monthly closes with their frozen snapshots,
-- and the yearly post quotas of each county.
-- Kept step for step with ../../sqlite/2026-11-27-000005_ledger/up.sql.

-- Bumped in the transaction of every change that can alter a village's figures (a survey
-- stored, decided, superseded, merged). A cached figure set is valid while it was computed at
-- the village's current generation, so no change is ever missed, whichever process made it.
CREATE TABLE ledger_generations (
    village_code TEXT PRIMARY KEY NOT NULL REFERENCES villages (code),
    generation   BIGINT NOT NULL
);

-- A village's figures for a month as of its end: approved-only and including pending surveys,
-- each a JSON object of figure → count.
CREATE TABLE ledger_cache (
    village_code TEXT NOT NULL REFERENCES villages (code),
    month        TEXT NOT NULL CHECK (length(month) = 7),
    generation   BIGINT NOT NULL,
    approved     TEXT NOT NULL,
    pending      TEXT NOT NULL,
    PRIMARY KEY (month, village_code)
);

-- A closed month (月调度): its figures are read from month_snapshots, never recomputed.
CREATE TABLE closed_months (
    month     TEXT PRIMARY KEY NOT NULL CHECK (length(month) = 7),
    closed_at TIMESTAMP NOT NULL,
    closed_by TEXT NOT NULL REFERENCES users (id)
);

CREATE TABLE month_snapshots (
    month        TEXT NOT NULL REFERENCES closed_months (month),
    village_code TEXT NOT NULL REFERENCES villages (code),
    approved     TEXT NOT NULL,
    pending      TEXT NOT NULL,
    PRIMARY KEY (month, village_code)
);

CREATE TABLE quotas (
    year                        INTEGER NOT NULL CHECK (year BETWEEN 2015 AND 2100),
    county_code                 TEXT NOT NULL REFERENCES divisions (code),
    special_posts               INTEGER NOT NULL CHECK (special_posts >= 0),
    temporary_posts             INTEGER NOT NULL CHECK (temporary_posts >= 0),
    temporary_post_monthly_yuan INTEGER NOT NULL CHECK (temporary_post_monthly_yuan >= 0),
    updated_by                  TEXT NOT NULL REFERENCES users (id),
    updated_at                  TIMESTAMP NOT NULL,
    PRIMARY KEY (year, county_code)
);
