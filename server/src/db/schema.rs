//! The schema, kept by hand in types that both backends share (Text, Double, Bool, Timestamp),
//! so one set of queries serves SQLite and PostgreSQL. A test checks it against both databases.

diesel::table! {
    app_settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    divisions (code) {
        code -> Text,
        name -> Text,
        level -> Text,
        parent_code -> Nullable<Text>,
        boundary -> Nullable<Text>,
    }
}

diesel::table! {
    villages (code) {
        code -> Text,
        name -> Text,
        township_code -> Text,
        county_code -> Text,
        lat -> Double,
        lon -> Double,
        position_source -> Text,
        geofence_kind -> Text,
        geofence_radius_m -> Nullable<Double>,
        geofence -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        phone -> Text,
        name -> Text,
        role -> Text,
        county_code -> Nullable<Text>,
        password_hash -> Text,
        active -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    user_villages (user_id, village_code) {
        user_id -> Text,
        village_code -> Text,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        device_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_attempts (id) {
        id -> Text,
        phone -> Text,
        client_addr -> Text,
        attempted_at -> Timestamp,
        succeeded -> Bool,
    }
}

diesel::table! {
    photos (sha256) {
        sha256 -> Text,
        format -> Text,
        byte_size -> BigInt,
        width -> Integer,
        height -> Integer,
        orientation -> Integer,
        taken_at -> Nullable<Timestamp>,
        taken_offset_minutes -> Nullable<Integer>,
        exif_lat -> Nullable<Double>,
        exif_lon -> Nullable<Double>,
        phash -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    photo_uploads (photo_sha256, user_id) {
        photo_sha256 -> Text,
        user_id -> Text,
        uploaded_at -> Timestamp,
    }
}

diesel::table! {
    photo_links (photo_sha256, submission_id) {
        photo_sha256 -> Text,
        submission_id -> Text,
        village_code -> Text,
    }
}

diesel::joinable!(villages -> divisions (township_code));
diesel::joinable!(photo_uploads -> photos (photo_sha256));
diesel::joinable!(photo_uploads -> users (user_id));
diesel::joinable!(photo_links -> photos (photo_sha256));
diesel::joinable!(photo_links -> villages (village_code));
diesel::joinable!(user_villages -> users (user_id));
diesel::joinable!(user_villages -> villages (village_code));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    app_settings,
    divisions,
    villages,
    users,
    user_villages,
    sessions,
    refresh_tokens,
    login_attempts,
    photos,
    photo_uploads,
    photo_links,
);

/// Every table, for the guard tests that check each one loads on both backends.
pub const ALL_TABLES: &[&str] = &[
    "app_settings",
    "divisions",
    "villages",
    "users",
    "user_villages",
    "sessions",
    "refresh_tokens",
    "login_attempts",
    "photos",
    "photo_uploads",
    "photo_links",
];
