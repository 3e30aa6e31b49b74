DROP TABLE login_attempts;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE user_villages;
DROP TABLE users;
DROP TABLE villages;
DROP TABLE divisions;
DROP TABLE app_settings;
