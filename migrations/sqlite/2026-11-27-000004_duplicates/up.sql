-- Duplicate resolution: pairs of households flagged as possible duplicates, what a reviewer
-- decided for each, and the survey versions a merge moved (so that unmerge can put them back).
-- Kept step for step with ../../postgres/2026-11-27-000004_duplicates/up.sql.

-- One row per unordered pair (household_a < household_b), made when the pair is first flagged.
CREATE TABLE duplicate_pairs (
    household_a  TEXT NOT NULL REFERENCES households (id),
    household_b  TEXT NOT NULL REFERENCES households (id),
    state        TEXT NOT NULL CHECK (state IN ('open', 'kept_apart', 'merged')),
    -- The household that remains, while merged. The other one is absorbed: its keys still find
    -- it, and lookups follow the pair to the survivor.
    survivor_id  TEXT REFERENCES households (id),
    flagged_at   TIMESTAMP NOT NULL,
    -- The survey whose arrival raised the flag.
    flagged_by_survey TEXT NOT NULL REFERENCES household_surveys (id),
    decided_by   TEXT REFERENCES users (id),
    decided_at   TIMESTAMP,
    reason       TEXT,
    -- Counts decisions: concurrent decisions on one pair cannot both apply.
    version      INTEGER NOT NULL,
    PRIMARY KEY (household_a, household_b),
    CHECK (household_a < household_b),
    CHECK ((state = 'merged') = (survivor_id IS NOT NULL))
);
CREATE INDEX duplicate_pairs_b ON duplicate_pairs (household_b);
CREATE INDEX duplicate_pairs_state ON duplicate_pairs (state, flagged_at);

-- The surveys a merge moved from the absorbed household to the survivor, with their old and
-- new version numbers.
CREATE TABLE merge_moves (
    household_a    TEXT NOT NULL,
    household_b    TEXT NOT NULL,
    survey_id      TEXT NOT NULL REFERENCES household_surveys (id),
    from_household TEXT NOT NULL REFERENCES households (id),
    from_version   INTEGER NOT NULL,
    to_version     INTEGER NOT NULL,
    PRIMARY KEY (household_a, household_b, survey_id),
    FOREIGN KEY (household_a, household_b) REFERENCES duplicate_pairs (household_a, household_b)
);
