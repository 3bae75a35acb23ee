//! A migration file applied outside a transaction on PostgreSQL, with its bookkeeping in two
//! messages rather than a round trip per statement. Before the file, one message lists the
//! INVALID indexes, writes its history row as failed and (for a Prisma folder) Prisma's row as
//! started, marking an earlier failed attempt's row rolled back, then reads the session's
//! timeouts and sets the step's. After it, one message puts the timeouts back and marks both
//! rows done. Each message is one implicit transaction: the rows are committed before the
//! file's first statement runs (a run that dies in the middle leaves the file failed in both
//! histories), and a part that fails leaves nothing of its message behind. Going down, and on
//! SQLite, `run.rs` takes the general path.

use super::failure::FileError;
use super::run::{FileRun, Settings, history_failed, prisma_failed};
use super::{db_failed, postgres, prisma};
use futures_util::StreamExt;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::collections::BTreeSet;
use std::time::Duration;

/// What the message before the file found and wrote.
pub(super) struct Before {
    /// INVALID indexes before the file ran, as `failure::invalid_indexes` names them.
    pub invalid: BTreeSet<String>,
    /// The id of Prisma's row written as started (a Prisma folder).
    pub prisma_row: Option<String>,
    /// The session's timeouts before the step's were set, to put back.
    pub previous: Vec<(&'static str, String)>,
}

/// Which part of a message a statement belongs to, so an error names what failed.
#[derive(Clone, Copy)]
enum Part {
    Invalid,
    History,
    Prisma,
    Timeouts,
}

/// `SELECT set_config(..), ..` for the session, one column per setting.
fn set_configs(values: &[(&'static str, String)]) -> String {
    let calls: Vec<String> = values
        .iter()
        .map(|(name, v)| format!("set_config('{name}', {}, false)", postgres::literal(v)))
        .collect();
    format!("SELECT {};", calls.join(", "))
}

/// The message before the file, in one round trip (see the module docs).
pub(super) async fn before(
    c: &mut PgConnection,
    job: &FileRun<'_>,
    settings: &Settings,
    run_id: &str,
) -> Result<Before, FileError> {
    let mut sql = format!("{};", postgres::INVALID_INDEXES);
    sql.push_str(&postgres::record_script(job.m, "0", false, run_id, "apply"));
    let mut parts = vec![Part::Invalid, Part::History];
    let mut prisma_row = None;
    if let Some((rolled_back, started, id)) = prisma::started_script(job.m) {
        sql.push_str(&rolled_back);
        sql.push_str(&started);
        parts.extend([Part::Prisma, Part::Prisma]);
        prisma_row = Some(id);
    }
    let wanted = postgres::timeouts(settings);
    // The statement that reads the session's timeouts, when the step sets any.
    let mut read_at = None;
    if !wanted.is_empty() {
        let reads: Vec<String> = wanted
            .iter()
            .map(|(name, _)| format!("current_setting('{name}')"))
            .collect();
        sql.push_str(&format!("SELECT {};", reads.join(", ")));
        sql.push_str(&set_configs(&wanted));
        read_at = Some(parts.len());
        parts.extend([Part::Timeouts, Part::Timeouts]);
    }
    let mut out = Before {
        invalid: BTreeSet::new(),
        prisma_row,
        previous: Vec::new(),
    };
    for (i, row) in send(c, &sql, &parts).await? {
        if i == 0 {
            let index: String = row.try_get(0).map_err(|e| failed(Part::Invalid, e))?;
            let table: String = row.try_get(1).map_err(|e| failed(Part::Invalid, e))?;
            out.invalid.insert(format!("`{index}` on `{table}`"));
        } else if Some(i) == read_at {
            for (k, (name, _)) in wanted.iter().enumerate() {
                let v: String = row.try_get(k).map_err(|e| failed(Part::Timeouts, e))?;
                out.previous.push((name, v));
            }
        }
    }
    Ok(out)
}

/// The message after the file ran for `took`: the timeouts put back, both rows done. When it
/// fails, the timeouts are put back on their own.
pub(super) async fn after(
    c: &mut PgConnection,
    job: &FileRun<'_>,
    took: Duration,
    run_id: &str,
    before: &Before,
) -> Result<(), FileError> {
    let mut sql = String::new();
    let mut parts = Vec::new();
    if !before.previous.is_empty() {
        sql.push_str(&set_configs(&before.previous));
        parts.push(Part::Timeouts);
    }
    let ms = took.as_millis().to_string();
    sql.push_str(&postgres::record_script(job.m, &ms, true, run_id, "apply"));
    parts.push(Part::History);
    if let Some(id) = &before.prisma_row {
        sql.push_str(&prisma::finish_script(id));
        parts.push(Part::Prisma);
    }
    let sent = send(c, &sql, &parts).await.map(|_| ());
    if sent.is_err() {
        // The message rolled back whole, the timeouts' restore with it: put them back alone.
        postgres::restore_timeouts(c, &before.previous).await;
    }
    sent
}

/// Sends one message; gives each row with the index of the statement it came from. An error
/// names the part its statement belongs to.
async fn send(
    c: &mut PgConnection,
    sql: &str,
    parts: &[Part],
) -> Result<Vec<(usize, PgRow)>, FileError> {
    let mut rows = Vec::new();
    let mut done = 0;
    let mut results = sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).fetch_many(&mut *c);
    while let Some(item) = results.next().await {
        match item {
            Ok(sqlx::Either::Right(row)) => rows.push((done, row)),
            Ok(sqlx::Either::Left(_)) => done += 1,
            Err(e) => {
                let part = parts.get(done).copied().unwrap_or(Part::History);
                return Err(failed(part, e));
            }
        }
    }
    Ok(rows)
}

/// The error of a statement in `part`.
fn failed(part: Part, e: sqlx::Error) -> FileError {
    match part {
        Part::Invalid => FileError::Other(db_failed("cannot list invalid indexes", &e)),
        Part::History => history_failed(e),
        Part::Prisma => prisma_failed(e),
        Part::Timeouts => FileError::Other(db_failed("cannot set the timeouts", &e)),
    }
}
