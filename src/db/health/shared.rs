//! Counts shared out to two connections as they come free (`helper.rs`): each takes the next
//! message's worth of statements from the list, so a connection that starts late (the helper,
//! busy measuring sizes first) or meets slower tables takes fewer, and neither waits for the
//! other's fixed half. Both count in the same snapshot; the results go back in the list's
//! order. A helper that breaks gives back the message it was counting, which the checks'
//! connection counts at the end (`finish`); when the checks' connection breaks the counts
//! fail, and `stop` leaves nothing more for the helper to take.

use super::snapshot::{SHARED, counts_on};
use sqlx::PgConnection;
use std::cell::{Cell, RefCell};
use std::ops::Range;

/// One statement's count, or why it could not be counted.
type Count = Result<i64, sqlx::Error>;

/// The list being counted, the next statement to hand out, and what was counted.
#[derive(Default)]
pub(super) struct SharedCounts {
    queries: RefCell<Vec<String>>,
    next: Cell<usize>,
    /// Set by `stop`: nothing more is handed out.
    stopped: Cell<bool>,
    /// Each message counted: where it starts in the list, and its counts.
    counted: RefCell<Vec<(usize, Vec<Count>)>>,
    /// Messages taken and not counted (their connection broke).
    given_back: RefCell<Vec<Range<usize>>>,
}

impl SharedCounts {
    /// Sets the list to count; until then there is nothing to take.
    pub(super) fn fill(&self, queries: Vec<String>) {
        *self.queries.borrow_mut() = queries;
        self.next.set(0);
    }

    /// Hands out nothing more: the counts failed.
    pub(super) fn stop(&self) {
        self.stopped.set(true);
    }

    /// The next message's worth of statements, and where it starts in the list.
    fn take(&self) -> Option<(usize, Vec<String>)> {
        let queries = self.queries.borrow();
        let start = self.next.get();
        if self.stopped.get() || start >= queries.len() {
            return None;
        }
        let end = (start + SHARED).min(queries.len());
        self.next.set(end);
        Some((start, queries[start..end].to_vec()))
    }

    /// Counts on `conn`, which is in the snapshot, until nothing is left to take. Fails when
    /// the connection can no longer count (its snapshot cannot be kept): what it took and did
    /// not count is given back.
    pub(super) async fn count_on(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        while let Some((start, chunk)) = self.take() {
            match counts_on(conn, &chunk, SHARED).await {
                Ok(counted) => self.counted.borrow_mut().push((start, counted)),
                Err(e) => {
                    self.given_back
                        .borrow_mut()
                        .push(start..start + chunk.len());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Once both connections are done: the messages given back, counted on `conn`, then every
    /// statement's result in the list's order.
    pub(super) async fn finish(self, conn: &mut PgConnection) -> Result<Vec<Count>, sqlx::Error> {
        let queries = self.queries.into_inner();
        let mut counted = self.counted.into_inner();
        for range in self.given_back.into_inner() {
            let start = range.start;
            counted.push((start, counts_on(conn, &queries[range], SHARED).await?));
        }
        counted.sort_by_key(|(start, _)| *start);
        Ok(counted.into_iter().flat_map(|(_, c)| c).collect())
    }
}
