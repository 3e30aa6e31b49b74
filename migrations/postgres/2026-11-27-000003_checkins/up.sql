-- Attendance check-ins, accepted or flagged, never dropped.
-- Kept step for step with ../../sqlite/2026-11-27-000003_checkins/up.sql.

CREATE TABLE checkins (
    id                 TEXT PRIMARY KEY NOT NULL REFERENCES submissions (id),
    user_id            TEXT NOT NULL REFERENCES users (id),
    kind               TEXT NOT NULL CHECK (kind IN ('resident_duty', 'special_post')),
    -- Whose attendance this is: the user for resident duty, the worker (keyed hash of the ID
    -- number) for a special post.
    subject            TEXT NOT NULL,
    worker_id_sealed   TEXT,
    village_code       TEXT NOT NULL REFERENCES villages (code),
    captured_at        TIMESTAMP NOT NULL,
    -- The local (Asia/Shanghai) day the check-in counts for.
    attendance_date    DATE NOT NULL,
    lat                DOUBLE PRECISION NOT NULL,
    lon                DOUBLE PRECISION NOT NULL,
    accuracy_m         DOUBLE PRECISION,
    mock_location      BOOLEAN NOT NULL,
    photo_sha256       TEXT NOT NULL REFERENCES photos (sha256),
    -- The photo's perceptual hash, copied here so reuse is found without a join.
    photo_phash        BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('accepted', 'flagged')),
    -- Comma-separated flags ('' when accepted).
    flags              TEXT NOT NULL,
    received_at        TIMESTAMP NOT NULL
);
-- photo_phash trails both indexes so the reuse lookup reads the index alone.
CREATE INDEX checkins_subject ON checkins (subject, captured_at, photo_phash);
CREATE INDEX checkins_village ON checkins (village_code, attendance_date, photo_phash);
