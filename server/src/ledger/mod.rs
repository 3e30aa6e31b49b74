//! The village-level demand ledger (需求台账, SPEC §7): figures per village and month, rolled up
//! to township, county and city; monthly closes; quotas.

pub mod cache;
pub mod export;
pub mod figures;
pub mod inventory;
pub mod months;
pub mod quotas;
pub mod roster;
pub mod routes;

use std::time::Duration;

use crate::db::write_transaction;
use crate::state::AppState;

/// Villages recomputed per month and round by the background warmer.
const WARM_BATCH: i64 = 100;

/// Keeps the cached figures of the current and previous month fresh: every `interval`, the
/// villages changed since their figures were cached are recomputed and stored, so a reader
/// after a busy day rarely computes anything. A round that finds nothing to recompute tells the
/// metrics the ledger is fresh. Runs until the task is dropped.
pub async fn warm_forever(state: actix_web::web::Data<AppState>, interval: Duration) {
    let db = state.db.clone();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let current = routes::current_month();
        let months: Vec<String> = [Some(current.clone()), inventory::previous_month(&current)]
            .into_iter()
            .flatten()
            .collect();
        let fresh = match db
            .run(move |conn| cache::warm(conn, &months, WARM_BATCH))
            .await
        {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(error = %e, "ledger warmer: computing");
                continue;
            }
        };
        if fresh.iter().all(|f| f.is_empty()) {
            state.metrics.ledger_fresh();
            continue;
        }
        let stored = db
            .write(move |conn| {
                write_transaction(conn, |conn| {
                    for f in &fresh {
                        cache::store(conn, f)?;
                    }
                    Ok(())
                })
            })
            .await;
        if let Err(e) = stored {
            tracing::warn!(error = %e, "ledger warmer: storing");
        }
    }
}
