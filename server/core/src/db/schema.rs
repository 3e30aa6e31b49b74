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
        sync_seq -> BigInt,
        geofence_provenance -> Text,
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
        must_change_password -> Bool,
        password_changed_at -> Nullable<Timestamp>,
        deactivated_at -> Nullable<Timestamp>,
        password_reset_at -> Nullable<Timestamp>,
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
        device_id -> Nullable<Text>,
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

diesel::table! {
    submissions (id) {
        id -> Text,
        kind -> Text,
        user_id -> Text,
        village_code -> Text,
        content_hash -> Text,
        body_sealed -> Text,
        response_status -> Integer,
        response -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    households (id) {
        id -> Text,
        village_code -> Text,
        created_at -> Timestamp,
        sync_seq -> BigInt,
    }
}

diesel::table! {
    household_keys (county_code, kind, value) {
        county_code -> Text,
        kind -> Text,
        value -> Text,
        household_id -> Text,
    }
}

diesel::table! {
    people (id_hash) {
        id_hash -> Text,
        id_sealed -> Nullable<Text>,
        sex -> Text,
        birth_date -> Date,
    }
}

diesel::table! {
    household_surveys (id) {
        id -> Text,
        household_id -> Text,
        version -> Integer,
        village_code -> Text,
        enumerator_id -> Text,
        form_version -> Text,
        surveyed_at -> Timestamp,
        month -> Text,
        received_at -> Timestamp,
        household_number -> Nullable<Text>,
        head_name -> Text,
        head_name_norm -> Text,
        head_id_hash -> Nullable<Text>,
        head_id_sealed -> Nullable<Text>,
        poverty_status -> Text,
        relocated -> Bool,
        phone_sealed -> Nullable<Text>,
        member_count -> Integer,
        lat -> Double,
        lon -> Double,
        accuracy_m -> Nullable<Double>,
        answers_hash -> Text,
        replaces -> Nullable<Text>,
        status -> Text,
        status_changed_at -> Timestamp,
        review_comment -> Nullable<Text>,
        review_version -> Integer,
        reviewed_by -> Nullable<Text>,
        base_survey_id -> Nullable<Text>,
    }
}

diesel::table! {
    survey_members (survey_id, position) {
        survey_id -> Text,
        position -> Integer,
        person_id_hash -> Text,
        name -> Text,
        relation -> Text,
        labour_capacity -> Text,
        employment_status -> Nullable<Text>,
        employer_id -> Nullable<Text>,
        post_type -> Nullable<Text>,
        monthly_income_yuan -> Nullable<BigInt>,
        wants_public_post -> Bool,
        training_wanted -> Bool,
        training_trade -> Nullable<Text>,
        at_risk -> Bool,
        safety_net -> Text,
    }
}

diesel::table! {
    survey_flags (survey_id, flag, related_household_id) {
        survey_id -> Text,
        flag -> Text,
        related_household_id -> Text,
        detail -> Text,
    }
}

diesel::table! {
    village_surveys (id) {
        id -> Text,
        village_code -> Text,
        month -> Text,
        surveyor_id -> Text,
        surveyed_at -> Timestamp,
        received_at -> Timestamp,
        willing_people -> Integer,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        accuracy_m -> Nullable<Double>,
        status -> Text,
        status_changed_at -> Timestamp,
        review_comment -> Nullable<Text>,
        sync_seq -> BigInt,
    }
}

diesel::table! {
    village_post_demand (survey_id, post_type) {
        survey_id -> Text,
        post_type -> Text,
        needed -> Integer,
        filled -> Integer,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        id -> Text,
        at -> Timestamp,
        user_id -> Text,
        action -> Text,
        subject_type -> Text,
        subject_id -> Text,
        from_state -> Nullable<Text>,
        to_state -> Nullable<Text>,
        reason -> Nullable<Text>,
        detail -> Nullable<Text>,
        request_id -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    checkins (id) {
        id -> Text,
        user_id -> Text,
        kind -> Text,
        subject -> Text,
        worker_id_sealed -> Nullable<Text>,
        village_code -> Text,
        captured_at -> Timestamp,
        attendance_date -> Date,
        lat -> Double,
        lon -> Double,
        accuracy_m -> Nullable<Double>,
        mock_location -> Bool,
        photo_sha256 -> Text,
        photo_phash -> BigInt,
        status -> Text,
        flags -> Text,
        received_at -> Timestamp,
        county_code -> Text,
    }
}

diesel::table! {
    checkin_reviews (checkin_id) {
        checkin_id -> Text,
        decision -> Text,
        reason -> Text,
        reviewer_id -> Text,
        decided_at -> Timestamp,
    }
}

diesel::table! {
    sync_tombstones (village_code, household_id) {
        village_code -> Text,
        household_id -> Text,
        reason -> Text,
        into_household_id -> Nullable<Text>,
        sync_seq -> BigInt,
    }
}

diesel::table! {
    sync_counters (name) {
        name -> Text,
        seq -> BigInt,
    }
}

diesel::table! {
    employers (id) {
        id -> Text,
        kind -> Text,
        name -> Text,
        credit_code -> Nullable<Text>,
        county_code -> Text,
        village_code -> Nullable<Text>,
        address -> Nullable<Text>,
        active -> Bool,
        demo -> Bool,
        sync_seq -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(villages -> divisions (township_code));
diesel::table! {
    duplicate_pairs (household_a, household_b) {
        household_a -> Text,
        household_b -> Text,
        state -> Text,
        survivor_id -> Nullable<Text>,
        flagged_at -> Timestamp,
        flagged_by_survey -> Text,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        reason -> Nullable<Text>,
        version -> Integer,
        kind -> Text,
    }
}

diesel::table! {
    merge_moves (household_a, household_b, survey_id) {
        household_a -> Text,
        household_b -> Text,
        survey_id -> Text,
        from_household -> Text,
        from_version -> Integer,
        to_version -> Integer,
    }
}

diesel::table! {
    ledger_generations (village_code) {
        village_code -> Text,
        generation -> BigInt,
        base_generation -> BigInt,
        floor_month -> Text,
    }
}

diesel::table! {
    ledger_rollups (month, code) {
        code -> Text,
        month -> Text,
        stamp -> BigInt,
        approved -> Text,
        pending -> Text,
    }
}

diesel::table! {
    ledger_cache (month, village_code) {
        village_code -> Text,
        month -> Text,
        generation -> BigInt,
        approved -> Text,
        pending -> Text,
    }
}

diesel::table! {
    month_closes (month, version) {
        month -> Text,
        version -> Integer,
        closed_at -> Timestamp,
        closed_by -> Text,
        override_reason -> Nullable<Text>,
        missing -> Nullable<Text>,
        villages -> Integer,
        reopened_at -> Nullable<Timestamp>,
        reopened_by -> Nullable<Text>,
        reopen_reason -> Nullable<Text>,
    }
}

diesel::table! {
    month_snapshots (month, version, village_code) {
        month -> Text,
        village_code -> Text,
        approved -> Text,
        pending -> Text,
        version -> Integer,
    }
}

diesel::table! {
    month_signoffs (id) {
        id -> Text,
        month -> Text,
        round -> Integer,
        county_code -> Text,
        signed_by -> Text,
        signed_at -> Timestamp,
        note -> Nullable<Text>,
        override_reason -> Nullable<Text>,
        pending_surveys -> Integer,
        withdrawn_at -> Nullable<Timestamp>,
        withdrawn_by -> Nullable<Text>,
        withdraw_reason -> Nullable<Text>,
    }
}

diesel::table! {
    city_quotas (year) {
        year -> Integer,
        special_posts -> Integer,
        temporary_posts -> Integer,
        source -> Text,
        updated_by -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    quotas (year, county_code) {
        year -> Integer,
        county_code -> Text,
        special_posts -> Integer,
        temporary_posts -> Integer,
        temporary_post_monthly_yuan -> Integer,
        updated_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    household_imports (id) {
        id -> Text,
        imported_by -> Text,
        imported_at -> Timestamp,
        file_sha256 -> Text,
        format -> Text,
        rows -> Integer,
        created -> Integer,
        known -> Integer,
        repeated -> Integer,
    }
}

diesel::table! {
    imported_households (household_id) {
        household_id -> Text,
        import_id -> Text,
        imported_at -> Timestamp,
        village_code -> Text,
        household_number -> Nullable<Text>,
        head_name -> Text,
        head_id_hash -> Text,
        head_id_sealed -> Text,
        member_count -> Integer,
        phone_sealed -> Nullable<Text>,
        poverty_status -> Nullable<Text>,
        lifted_year -> Nullable<Integer>,
        relocated -> Nullable<Bool>,
    }
}

diesel::joinable!(household_surveys -> households (household_id));
diesel::joinable!(imported_households -> households (household_id));
diesel::joinable!(imported_households -> household_imports (import_id));
diesel::joinable!(household_keys -> households (household_id));
diesel::joinable!(household_surveys -> submissions (id));
diesel::joinable!(survey_members -> household_surveys (survey_id));
diesel::joinable!(survey_members -> people (person_id_hash));
diesel::joinable!(survey_flags -> household_surveys (survey_id));
diesel::joinable!(village_post_demand -> village_surveys (survey_id));
diesel::joinable!(photo_uploads -> photos (photo_sha256));
diesel::joinable!(photo_uploads -> users (user_id));
diesel::joinable!(photo_links -> photos (photo_sha256));
diesel::joinable!(photo_links -> villages (village_code));
diesel::joinable!(checkin_reviews -> checkins (checkin_id));
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
    submissions,
    households,
    household_keys,
    people,
    household_surveys,
    survey_members,
    survey_flags,
    village_surveys,
    village_post_demand,
    audit_log,
    duplicate_pairs,
    merge_moves,
    checkins,
    checkin_reviews,
    ledger_generations,
    ledger_cache,
    ledger_rollups,
    month_closes,
    month_snapshots,
    month_signoffs,
    quotas,
    city_quotas,
    sync_tombstones,
    sync_counters,
    employers,
    household_imports,
    imported_households,
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
    "submissions",
    "households",
    "household_keys",
    "people",
    "household_surveys",
    "survey_members",
    "survey_flags",
    "village_surveys",
    "village_post_demand",
    "audit_log",
    "checkins",
    "checkin_reviews",
    "duplicate_pairs",
    "merge_moves",
    "ledger_generations",
    "ledger_cache",
    "ledger_rollups",
    "month_closes",
    "month_snapshots",
    "month_signoffs",
    "quotas",
    "city_quotas",
    "sync_tombstones",
    "sync_counters",
    "employers",
    "household_imports",
    "imported_households",
];
