-- Reverts ../up.sql.
DROP TABLE checkin_reviews;
