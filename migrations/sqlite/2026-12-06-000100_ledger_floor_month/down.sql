ALTER TABLE ledger_generations DROP COLUMN floor_month;
ALTER TABLE ledger_generations DROP COLUMN base_generation;
