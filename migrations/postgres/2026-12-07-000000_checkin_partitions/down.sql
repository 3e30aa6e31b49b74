-- Reverts ../up.sql: one table again, every partition's rows in it.
DROP FUNCTION checkin_month_partition(DATE);

ALTER TABLE checkin_reviews DROP CONSTRAINT checkin_reviews_checkin_id_fkey;

ALTER TABLE checkins RENAME TO checkins_partitioned;
ALTER INDEX checkins_pkey RENAME TO checkins_partitioned_pkey;
DROP INDEX checkins_subject, checkins_village, checkins_county, checkins_photo;

CREATE TABLE checkins (
    id                 TEXT PRIMARY KEY NOT NULL REFERENCES submissions (id),
    user_id            TEXT NOT NULL REFERENCES users (id),
    kind               TEXT NOT NULL CHECK (kind IN ('resident_duty', 'special_post')),
    subject            TEXT NOT NULL,
    worker_id_sealed   TEXT,
    village_code       TEXT NOT NULL REFERENCES villages (code),
    captured_at        TIMESTAMP NOT NULL,
    attendance_date    DATE NOT NULL,
    lat                DOUBLE PRECISION NOT NULL,
    lon                DOUBLE PRECISION NOT NULL,
    accuracy_m         DOUBLE PRECISION,
    mock_location      BOOLEAN NOT NULL,
    photo_sha256       TEXT NOT NULL REFERENCES photos (sha256),
    photo_phash        BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('accepted', 'flagged')),
    flags              TEXT NOT NULL,
    received_at        TIMESTAMP NOT NULL,
    county_code        TEXT NOT NULL DEFAULT ''
);
INSERT INTO checkins SELECT id, user_id, kind, subject, worker_id_sealed, village_code,
    captured_at, attendance_date, lat, lon, accuracy_m, mock_location, photo_sha256, photo_phash,
    status, flags, received_at, county_code FROM checkins_partitioned;
DROP TABLE checkins_partitioned;

CREATE INDEX checkins_subject ON checkins (subject, captured_at, photo_phash);
CREATE INDEX checkins_village ON checkins (village_code, attendance_date, photo_phash);
CREATE INDEX checkins_county ON checkins (county_code, attendance_date, photo_phash);
CREATE INDEX checkins_photo ON checkins (photo_sha256);

ALTER TABLE checkin_reviews ADD CONSTRAINT checkin_reviews_checkin_id_fkey
    FOREIGN KEY (checkin_id) REFERENCES checkins (id);
