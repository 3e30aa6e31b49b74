-- The device of a login attempt, when it is one that has logged in to that account before:
-- such a device is throttled on its own, so nobody else's failures delay it.
ALTER TABLE login_attempts ADD COLUMN device_id TEXT;
