DROP TABLE quotas;
DROP TABLE month_snapshots;
DROP TABLE closed_months;
DROP TABLE ledger_cache;
DROP TABLE ledger_generations;
