-- The ledger finds the surveys that hold a village's people in other households from the
-- (person, survey) pairs alone: with the survey in the index, no table row is read.
DROP INDEX survey_members_person;
CREATE INDEX survey_members_person ON survey_members (person_id_hash, survey_id);
