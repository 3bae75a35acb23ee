//! A maintenance step's second connection: it watches the running statement's progress view
//! (`pg_stat_progress_vacuum`, `_cluster` for `VACUUM FULL`, `_create_index` for `REINDEX`)
//! every [`POLL`], as the step's detail and a note per new phase, and cancels the statement
//! when the run stops. Without it (it could not connect) the step runs unwatched.

use crate::db::TargetSpec;
use crate::db::op::Op;
use sqlx::{PgConnection, Row};
use std::time::Duration;

/// How often a running statement's progress is read.
const POLL: Duration = Duration::from_secs(1);

/// Which progress view describes a statement.
#[derive(Debug, Clone, Copy)]
pub(super) enum View {
    Vacuum,
    VacuumFull,
    Index,
}

impl View {
    fn sql(self) -> &'static str {
        match self {
            View::Vacuum => {
                "SELECT phase::text, heap_blks_scanned::int8, heap_blks_total::int8 \
                 FROM pg_stat_progress_vacuum WHERE pid = $1"
            }
            View::VacuumFull => {
                "SELECT phase::text, heap_blks_scanned::int8, heap_blks_total::int8 \
                 FROM pg_stat_progress_cluster WHERE pid = $1"
            }
            View::Index => {
                "SELECT phase::text, coalesce(blocks_done, 0)::int8, coalesce(blocks_total, 0)::int8 \
                 FROM pg_stat_progress_create_index WHERE pid = $1"
            }
        }
    }
}

/// The second connection, if it could be opened.
pub(super) struct Monitor {
    conn: Option<PgConnection>,
}

impl Monitor {
    pub(super) async fn open(target: &TargetSpec) -> Monitor {
        let conn = match target {
            TargetSpec::Postgres(url) => crate::db::Db::connect_postgres(url).await.ok(),
            TargetSpec::Sqlite(_) => None,
        };
        Monitor { conn }
    }

    /// Polls the progress of what backend `pid` runs, labelled `label`. Never resolves.
    pub(super) async fn watch(
        &mut self,
        pid: i32,
        view: View,
        label: &str,
        op: &Op<'_>,
    ) -> std::convert::Infallible {
        let mut phase = String::new();
        loop {
            tokio::time::sleep(POLL).await;
            let Some(c) = self.conn.as_mut() else {
                continue;
            };
            let row = sqlx::query(view.sql())
                .bind(pid)
                .fetch_optional(&mut *c)
                .await;
            let Ok(Some(row)) = row else { continue };
            let now: String = row.try_get(0).unwrap_or_default();
            let (done, total): (i64, i64) = (
                row.try_get(1).unwrap_or_default(),
                row.try_get(2).unwrap_or_default(),
            );
            let counts = if total > 0 {
                let pct = crate::fmt::percent(done as f64, total as f64);
                format!(", blocks {done} of {total} ({pct:.0}%)")
            } else {
                String::new()
            };
            op.detail(&format!("{label}: {now}{counts}"));
            if now != phase {
                op.note(&format!("{label}: {now}{counts}"));
                phase = now;
            }
        }
    }

    /// Asks the server to cancel what backend `pid` runs.
    pub(super) async fn cancel(&mut self, pid: i32) -> bool {
        let Some(c) = self.conn.as_mut() else {
            return false;
        };
        sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(&mut *c)
            .await
            .unwrap_or(false)
    }
}
