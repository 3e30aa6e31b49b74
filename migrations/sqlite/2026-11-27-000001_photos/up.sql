-- Photos: content-addressed by SHA-256, with what the server read from them.
-- Kept step for step with ../../postgres/2026-11-27-000001_photos/up.sql.

CREATE TABLE photos (
    sha256               TEXT PRIMARY KEY NOT NULL CHECK (length(sha256) = 64),
    format               TEXT NOT NULL CHECK (format IN ('jpeg', 'png', 'webp')),
    byte_size            BIGINT NOT NULL CHECK (byte_size > 0),
    width                INTEGER NOT NULL CHECK (width > 0),
    height               INTEGER NOT NULL CHECK (height > 0),
    orientation          INTEGER NOT NULL CHECK (orientation BETWEEN 1 AND 8),
    -- EXIF DateTimeOriginal in UTC, and the UTC offset the camera recorded (or +08:00 assumed).
    taken_at             TIMESTAMP,
    taken_offset_minutes INTEGER,
    exif_lat             DOUBLE PRECISION,
    exif_lon             DOUBLE PRECISION,
    -- 64-bit DCT perceptual hash, its bits stored as a signed integer.
    phash                BIGINT NOT NULL,
    created_at           TIMESTAMP NOT NULL
);

-- Everyone who uploaded a photo (the first and any later identical upload).
CREATE TABLE photo_uploads (
    photo_sha256 TEXT NOT NULL REFERENCES photos (sha256),
    user_id      TEXT NOT NULL REFERENCES users (id),
    uploaded_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (photo_sha256, user_id)
);
CREATE INDEX photo_uploads_user ON photo_uploads (user_id);

-- Submissions that name a photo, and their village: reviewers whose scope covers the village
-- may see the photo.
CREATE TABLE photo_links (
    photo_sha256  TEXT NOT NULL REFERENCES photos (sha256),
    submission_id TEXT NOT NULL,
    village_code  TEXT NOT NULL REFERENCES villages (code),
    PRIMARY KEY (photo_sha256, submission_id)
);
CREATE INDEX photo_links_village ON photo_links (village_code);
