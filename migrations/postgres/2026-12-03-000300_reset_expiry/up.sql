-- When an administrator last reset the password: the one-time password it gave is accepted at
-- login for a limited time only (auth::password::ONE_TIME_VALID_HOURS). Cleared when the user
-- chooses their own password.
ALTER TABLE users ADD COLUMN password_reset_at TIMESTAMP;
