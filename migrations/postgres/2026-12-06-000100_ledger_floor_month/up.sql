-- A village's cached figures of months before `floor_month`, computed at `base_generation`
-- or later, stay current through changes that alter only `floor_month` and later (see
-- `ledger::cache::touch_villages`). '' holds no month: nothing survives a change.
ALTER TABLE ledger_generations ADD COLUMN base_generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_generations ADD COLUMN floor_month TEXT NOT NULL DEFAULT '';
