-- Check-ins are partitioned by month on PostgreSQL only
-- (../../postgres/2026-12-07-000000_checkin_partitions/up.sql): SQLite serves one city from one
-- file and keeps one table. What both get: the county index of the photo-reuse check carries
-- the subject, which the county query leaves out (`subject <> ?`), so that the query reads the
-- index alone and not a table row for each of the county's check-ins of the fortnight.
DROP INDEX checkins_county;
CREATE INDEX checkins_county ON checkins (county_code, attendance_date, photo_phash, subject);
