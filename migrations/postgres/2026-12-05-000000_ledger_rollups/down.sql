DROP TABLE ledger_rollups;
