DROP INDEX survey_members_person;
CREATE INDEX survey_members_person ON survey_members (person_id_hash);
