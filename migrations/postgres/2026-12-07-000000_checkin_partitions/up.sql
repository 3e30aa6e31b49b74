-- Check-ins partitioned by the month they count for (attendance_date). Check-ins are the table
-- that grows by the day (a row per person on duty per day); the photo-reuse check reads a
-- county's check-ins within a week of each new one, which now come from one or two months'
-- partitions, and a month long closed can be detached and archived whole.
--
-- The server creates each month's partition ahead of time (checkin_month_partition, for this
-- month and the next two, at start and hourly). A check-in dated in a month without one (a
-- phone's clock years off, data older than the partitions) lands in checkins_default and moves
-- to its month's partition when that is created.
--
-- A partitioned table's keys must contain the partition key, so the key is (id,
-- attendance_date). id stays unique: it is the id of the check-in's submission (the foreign key
-- below, and the key of submissions), and intake inserts a submission and its one check-in in
-- one transaction. checkin_reviews refers to that submission for the same reason.
-- SQLite keeps one table (../../sqlite/2026-12-07-000000_checkin_partitions/up.sql), and
-- gets the same county index.

ALTER TABLE checkin_reviews DROP CONSTRAINT checkin_reviews_checkin_id_fkey,
    ADD CONSTRAINT checkin_reviews_checkin_id_fkey FOREIGN KEY (checkin_id) REFERENCES submissions (id);

ALTER TABLE checkins RENAME TO checkins_unpartitioned;
ALTER INDEX checkins_pkey RENAME TO checkins_unpartitioned_pkey;
DROP INDEX checkins_subject, checkins_village, checkins_county, checkins_photo;

CREATE TABLE checkins (
    id                 TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    kind               TEXT NOT NULL,
    subject            TEXT NOT NULL,
    worker_id_sealed   TEXT,
    village_code       TEXT NOT NULL,
    captured_at        TIMESTAMP NOT NULL,
    attendance_date    DATE NOT NULL,
    lat                DOUBLE PRECISION NOT NULL,
    lon                DOUBLE PRECISION NOT NULL,
    accuracy_m         DOUBLE PRECISION,
    mock_location      BOOLEAN NOT NULL,
    photo_sha256       TEXT NOT NULL,
    photo_phash        BIGINT NOT NULL,
    status             TEXT NOT NULL,
    flags              TEXT NOT NULL,
    received_at        TIMESTAMP NOT NULL,
    county_code        TEXT NOT NULL DEFAULT '',
    -- Named as the unpartitioned table named them, for whoever drops or looks them up.
    CONSTRAINT checkins_pkey PRIMARY KEY (id, attendance_date),
    CONSTRAINT checkins_id_fkey FOREIGN KEY (id) REFERENCES submissions (id),
    CONSTRAINT checkins_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT checkins_village_code_fkey FOREIGN KEY (village_code) REFERENCES villages (code),
    CONSTRAINT checkins_photo_sha256_fkey FOREIGN KEY (photo_sha256) REFERENCES photos (sha256),
    CONSTRAINT checkins_kind_check CHECK (kind IN ('resident_duty', 'special_post')),
    CONSTRAINT checkins_status_check CHECK (status IN ('accepted', 'flagged'))
) PARTITION BY RANGE (attendance_date);

CREATE TABLE checkins_default PARTITION OF checkins DEFAULT;

-- photo_phash trails the lookup indexes so the reuse check reads the index alone. The county
-- index also carries the subject, which the county query leaves out (`subject <> $1`): without
-- it, a county's fortnight of check-ins at province scale (11 000 rows) was read from 10 000
-- heap pages, 39 ms, instead of from the index (`cargo bench --bench checkins`, BENCHMARKS.md).
CREATE INDEX checkins_subject ON checkins (subject, captured_at, photo_phash);
CREATE INDEX checkins_village ON checkins (village_code, attendance_date, photo_phash);
CREATE INDEX checkins_county ON checkins (county_code, attendance_date, photo_phash) INCLUDE (subject);
CREATE INDEX checkins_photo ON checkins (photo_sha256);

-- Creates the partition of the month holding `day` (checkins_YYYY_MM) unless it exists, moving
-- into it the month's check-ins that wait in checkins_default; true when it created one. Servers
-- call it concurrently: an advisory lock lets one at a time look and create.
CREATE FUNCTION checkin_month_partition(day DATE) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    first_day DATE := date_trunc('month', day)::date;
    next_first DATE := (date_trunc('month', day) + INTERVAL '1 month')::date;
    name TEXT := 'checkins_' || to_char(day, 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('checkin_month_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN FALSE;
    END IF;
    -- A check-in of the month stored in the default partition between the move and the attach
    -- would make the attach fail: writers to the default partition wait (readers do not).
    LOCK TABLE checkins_default IN EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE checkins INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM checkins_default WHERE attendance_date >= $1 AND attendance_date < $2 RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved', name) USING first_day, next_first;
    EXECUTE format('ALTER TABLE checkins ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, first_day, next_first);
    RETURN TRUE;
END
$$;

-- The months of the last two years that hold check-ins get their partitions; older rows (and
-- the odd wrong clock) stay in the default partition.
SELECT checkin_month_partition(month)
FROM (SELECT DISTINCT date_trunc('month', attendance_date)::date AS month
      FROM checkins_unpartitioned
      WHERE attendance_date >= (date_trunc('month', now()) - INTERVAL '24 months')::date) AS months;

INSERT INTO checkins (id, user_id, kind, subject, worker_id_sealed, village_code, captured_at,
                      attendance_date, lat, lon, accuracy_m, mock_location, photo_sha256,
                      photo_phash, status, flags, received_at, county_code)
SELECT id, user_id, kind, subject, worker_id_sealed, village_code, captured_at, attendance_date,
       lat, lon, accuracy_m, mock_location, photo_sha256, photo_phash, status, flags,
       received_at, county_code
FROM checkins_unpartitioned;

DROP TABLE checkins_unpartitioned;
