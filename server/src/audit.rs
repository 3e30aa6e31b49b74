//! The append-only audit log: who changed or saw what, when, and why. Only inserts, never
//! updates or deletes.

use chrono::Utc;
use diesel::prelude::*;

use crate::db::schema::audit_log;
use crate::db::DbConnection;

pub fn record(
    conn: &mut DbConnection,
    user_id: &str,
    action: &str,
    subject_type: &str,
    subject_id: &str,
    reason: Option<&str>,
    detail: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(uuid::Uuid::now_v7().to_string()),
            audit_log::at.eq(Utc::now().naive_utc()),
            audit_log::user_id.eq(user_id),
            audit_log::action.eq(action),
            audit_log::subject_type.eq(subject_type),
            audit_log::subject_id.eq(subject_id),
            audit_log::reason.eq(reason),
            audit_log::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}
