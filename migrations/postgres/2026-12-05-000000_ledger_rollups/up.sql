-- Township, county and city figures kept ready as sums of what is below them, so that reading
-- a node sums its children's figure sets instead of its villages'.
-- Kept step for step with ../../sqlite/2026-12-05-000000_ledger_rollups/up.sql.

-- stamp: for an open month, the sum of the node's villages' ledger_generations when the sum
-- was taken (generations only grow, so the sum moves whenever any of them does); for a closed
-- month, minus the version of the snapshot it was summed from. A row counts only while its
-- stamp is the node's current one. A migration that empties ledger_cache to have figures
-- recomputed must empty this table too.
CREATE TABLE ledger_rollups (
    code     TEXT NOT NULL REFERENCES divisions (code),
    month    TEXT NOT NULL CHECK (length(month) = 7),
    stamp    BIGINT NOT NULL,
    approved TEXT NOT NULL,
    pending  TEXT NOT NULL,
    PRIMARY KEY (month, code)
);
