-- Check-ins are partitioned by month on PostgreSQL only
-- (../../postgres/2026-12-07-000000_checkin_partitions/up.sql): SQLite serves one city from one
-- file and keeps one table. The step is here so both folders hold the same steps.
SELECT 1;
