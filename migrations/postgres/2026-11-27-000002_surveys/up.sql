-- Submissions (exactly-once receipts), household and village surveys, people, flags, audit log.
-- Kept step for step with ../../sqlite/2026-11-27-000002_surveys/up.sql.

-- One row per client submission id: the primary key is what makes a replay store nothing new,
-- however many servers receive it at once.
CREATE TABLE submissions (
    id              TEXT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('household_survey', 'village_survey', 'checkin')),
    user_id         TEXT NOT NULL REFERENCES users (id),
    village_code    TEXT NOT NULL REFERENCES villages (code),
    -- Keyed hash of the canonical JSON: equal content, equal hash.
    content_hash    TEXT NOT NULL,
    -- The canonical JSON as received, sealed with AES-256-GCM (it holds ID numbers).
    body_sealed     TEXT NOT NULL,
    -- The first answer, replayed verbatim (it holds no personal data).
    response_status INTEGER NOT NULL,
    response        TEXT NOT NULL,
    received_at     TIMESTAMP NOT NULL
);
CREATE INDEX submissions_user ON submissions (user_id, received_at);

CREATE TABLE households (
    id               TEXT PRIMARY KEY NOT NULL,
    village_code     TEXT NOT NULL REFERENCES villages (code),
    -- The identity keys: national household number, else keyed hash of the head's ID number.
    household_number TEXT UNIQUE,
    head_id_hash     TEXT UNIQUE,
    created_at       TIMESTAMP NOT NULL
);
CREATE INDEX households_village ON households (village_code);

CREATE TABLE people (
    id_hash    TEXT PRIMARY KEY NOT NULL,
    id_sealed  TEXT NOT NULL,
    sex        TEXT NOT NULL CHECK (sex IN ('male', 'female')),
    birth_date DATE NOT NULL
);

-- Each household survey is one version of its household.
CREATE TABLE household_surveys (
    id                TEXT PRIMARY KEY NOT NULL REFERENCES submissions (id),
    household_id      TEXT NOT NULL REFERENCES households (id),
    version           INTEGER NOT NULL CHECK (version > 0),
    village_code      TEXT NOT NULL REFERENCES villages (code),
    enumerator_id     TEXT NOT NULL REFERENCES users (id),
    form_version      TEXT NOT NULL,
    surveyed_at       TIMESTAMP NOT NULL,
    -- YYYY-MM of surveyed_at in Asia/Shanghai.
    month             TEXT NOT NULL CHECK (length(month) = 7),
    received_at       TIMESTAMP NOT NULL,
    household_number  TEXT,
    head_name         TEXT NOT NULL,
    head_name_norm    TEXT NOT NULL,
    head_id_hash      TEXT,
    head_id_sealed    TEXT,
    poverty_status    TEXT NOT NULL CHECK (poverty_status IN ('lifted', 'not_lifted', 'monitored')),
    relocated         BOOLEAN NOT NULL,
    phone_sealed      TEXT,
    member_count      INTEGER NOT NULL CHECK (member_count > 0),
    lat               DOUBLE PRECISION NOT NULL,
    lon               DOUBLE PRECISION NOT NULL,
    accuracy_m        DOUBLE PRECISION,
    -- Keyed hash of the answers alone (not who, when or where): equal answers, equal hash.
    answers_hash      TEXT NOT NULL,
    replaces          TEXT REFERENCES household_surveys (id),
    status            TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected', 'revision_requested', 'superseded', 'reopened')),
    status_changed_at TIMESTAMP NOT NULL,
    review_comment    TEXT,
    -- Counts state changes: a decision names the one it saw, so two reviewers cannot overwrite
    -- each other.
    review_version    INTEGER NOT NULL,
    reviewed_by       TEXT REFERENCES users (id),
    UNIQUE (household_id, version)
);
CREATE INDEX household_surveys_village ON household_surveys (village_code, received_at);
CREATE INDEX household_surveys_household ON household_surveys (household_id);
CREATE INDEX household_surveys_enumerator ON household_surveys (enumerator_id, received_at);
CREATE INDEX household_surveys_name ON household_surveys (village_code, head_name_norm);

CREATE TABLE survey_members (
    survey_id           TEXT NOT NULL REFERENCES household_surveys (id),
    position            INTEGER NOT NULL,
    person_id_hash      TEXT NOT NULL REFERENCES people (id_hash),
    name                TEXT NOT NULL,
    relation            TEXT NOT NULL,
    labour_capacity     TEXT NOT NULL,
    employment_status   TEXT,
    employer_id         TEXT,
    post_type           TEXT,
    monthly_income_yuan BIGINT,
    wants_public_post   BOOLEAN NOT NULL,
    training_wanted     BOOLEAN NOT NULL,
    training_trade      TEXT,
    at_risk             BOOLEAN NOT NULL,
    -- Safety-net measures, comma-separated enum values ('' for none).
    safety_net          TEXT NOT NULL,
    PRIMARY KEY (survey_id, position)
);
CREATE INDEX survey_members_person ON survey_members (person_id_hash);

CREATE TABLE survey_flags (
    survey_id            TEXT NOT NULL REFERENCES household_surveys (id),
    flag                 TEXT NOT NULL CHECK (flag IN ('possible_duplicate', 'person_in_multiple_households', 'conflicting_versions')),
    -- The other household concerned ('' when none): part of the key, so a flag is stored once.
    related_household_id TEXT NOT NULL,
    detail               TEXT NOT NULL,
    PRIMARY KEY (survey_id, flag, related_household_id)
);

CREATE TABLE village_surveys (
    id                TEXT PRIMARY KEY NOT NULL REFERENCES submissions (id),
    village_code      TEXT NOT NULL REFERENCES villages (code),
    month             TEXT NOT NULL CHECK (length(month) = 7),
    surveyor_id       TEXT NOT NULL REFERENCES users (id),
    surveyed_at       TIMESTAMP NOT NULL,
    received_at       TIMESTAMP NOT NULL,
    willing_people    INTEGER NOT NULL CHECK (willing_people >= 0),
    lat               DOUBLE PRECISION,
    lon               DOUBLE PRECISION,
    accuracy_m        DOUBLE PRECISION,
    status            TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected', 'revision_requested', 'superseded', 'reopened')),
    status_changed_at TIMESTAMP NOT NULL,
    review_comment    TEXT
);
CREATE INDEX village_surveys_village_month ON village_surveys (village_code, month);

CREATE TABLE village_post_demand (
    survey_id TEXT NOT NULL REFERENCES village_surveys (id),
    post_type TEXT NOT NULL,
    needed    INTEGER NOT NULL CHECK (needed >= 0),
    filled    INTEGER NOT NULL CHECK (filled >= 0),
    PRIMARY KEY (survey_id, post_type)
);

-- Append-only: who did or saw what, when, and why. Each entry carries the hash of the one
-- before it (seq orders the chain), so a removed or altered entry breaks the chain.
CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    at           TIMESTAMP NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id),
    action       TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    from_state   TEXT,
    to_state     TEXT,
    reason       TEXT,
    detail       TEXT,
    request_id   TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE INDEX audit_log_user ON audit_log (user_id, at);
