-- Staff management: forced password change after a reset, when the password last changed, and
-- when an account was deactivated. Kept step for step with ../../sqlite/2026-12-03-000000_staff/up.sql.

-- Set by an administrator's password reset: until the user chooses a new password, every
-- endpoint but /me, /me/password and logout refuses with `password_change_required`.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMP;
ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMP;
