-- Reverts ../up.sql.
DROP INDEX checkins_county;
CREATE INDEX checkins_county ON checkins (county_code, attendance_date, photo_phash);
