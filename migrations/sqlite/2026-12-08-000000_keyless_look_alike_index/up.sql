-- A survey with a key (household number or head's ID hash) can only look like a keyless one:
-- the look-alike check reads these, not the village's every household of the same head name.
CREATE INDEX household_surveys_keyless_name ON household_surveys (village_code, head_name_norm)
    WHERE household_number IS NULL AND head_id_hash IS NULL;
