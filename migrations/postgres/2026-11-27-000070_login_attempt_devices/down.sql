ALTER TABLE login_attempts DROP COLUMN device_id;
