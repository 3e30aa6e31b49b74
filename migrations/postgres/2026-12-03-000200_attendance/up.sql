-- A reviewer's decision on a flagged check-in: confirmed (the day counts as present) or
-- dismissed (it never counts). One decision per check-in, final: a second one is refused.
-- The check-in itself is never changed (its status and flags stay as verification set them).
-- Kept step for step with ../../sqlite/2026-12-03-000200_attendance/up.sql.

CREATE TABLE checkin_reviews (
    checkin_id   TEXT PRIMARY KEY NOT NULL REFERENCES checkins (id),
    decision     TEXT NOT NULL CHECK (decision IN ('confirm', 'dismiss')),
    reason       TEXT NOT NULL CHECK (length(reason) > 0),
    reviewer_id  TEXT NOT NULL REFERENCES users (id),
    decided_at   TIMESTAMP NOT NULL
);
