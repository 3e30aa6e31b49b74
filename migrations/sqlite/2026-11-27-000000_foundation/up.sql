-- Foundation: settings, the division tree and villages, users, sessions and refresh tokens.
-- Kept step for step with ../../postgres/2026-11-27-000000_foundation/up.sql.

CREATE TABLE app_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE divisions (
    code        TEXT PRIMARY KEY NOT NULL CHECK (length(code) = 12),
    name        TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('city', 'county', 'township')),
    parent_code TEXT REFERENCES divisions (code),
    -- WGS-84 GeoJSON boundary, where one is known (counties).
    boundary    TEXT
);
CREATE INDEX divisions_parent ON divisions (parent_code);

CREATE TABLE villages (
    code              TEXT PRIMARY KEY NOT NULL CHECK (length(code) = 12),
    name              TEXT NOT NULL,
    township_code     TEXT NOT NULL REFERENCES divisions (code),
    county_code       TEXT NOT NULL REFERENCES divisions (code),
    lat               DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon               DOUBLE PRECISION NOT NULL CHECK (lon BETWEEN -180 AND 180),
    position_source   TEXT NOT NULL CHECK (position_source IN ('surveyed_point', 'township_seat', 'county_area')),
    geofence_kind     TEXT NOT NULL CHECK (geofence_kind IN ('circle', 'polygon')),
    geofence_radius_m DOUBLE PRECISION CHECK (geofence_radius_m > 0),
    -- WGS-84 GeoJSON geometry of the geofence (a circle is drawn as a polygon).
    geofence          TEXT NOT NULL,
    CHECK ((geofence_kind = 'circle') = (geofence_radius_m IS NOT NULL))
);
CREATE INDEX villages_township ON villages (township_code);
CREATE INDEX villages_county ON villages (county_code);

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    phone         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('enumerator', 'first_secretary', 'county_reviewer', 'city_admin')),
    -- The county a county reviewer works for, or the county of a field user's villages.
    county_code   TEXT REFERENCES divisions (code),
    password_hash TEXT NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMP NOT NULL,
    CHECK ((role = 'city_admin') = (county_code IS NULL))
);

CREATE TABLE user_villages (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    village_code TEXT NOT NULL REFERENCES villages (code),
    PRIMARY KEY (user_id, village_code)
);
CREATE INDEX user_villages_village ON user_villages (village_code);

-- A session is one login on one device: the family of its refresh tokens.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id      TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    last_used_at   TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token: the token itself is never stored.
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE login_attempts (
    id           TEXT PRIMARY KEY NOT NULL,
    phone        TEXT NOT NULL,
    client_addr  TEXT NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    succeeded    BOOLEAN NOT NULL
);
CREATE INDEX login_attempts_phone ON login_attempts (phone, attempted_at);
CREATE INDEX login_attempts_addr ON login_attempts (client_addr, attempted_at);
