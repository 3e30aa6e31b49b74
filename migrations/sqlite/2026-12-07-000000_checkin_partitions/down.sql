-- Reverts ../up.sql (nothing to undo on SQLite).
SELECT 1;
