//! The size checks beside the catalog read (`helper.rs`): after `row_counts` has opened a
//! helper to share its counts, the checks' connection reads the catalog (`indexes`, the foreign
//! keys' list) while the helper, idle then, measures the size checks (`postgres::SIDE`: the
//! database's and the tablespaces' sizes, walks of every file), `database_size` out of turn
//! (it waits for the helper instead of running before `row_counts`). The orphan counts that
//! follow are then shared out to both connections as they come free (`shared.rs`): the checks'
//! connection starts on them while the helper is still measuring.
//!
//! Each result goes into its place in the list of checks, so what is printed is in the usual
//! order. A size check the helper cannot measure because its connection or its transaction is
//! lost is measured on the checks' connection: once the snapshot has ended when its place has
//! passed (with no helper at all, `database_size` then runs after the snapshot's checks
//! instead of before them), else in its place. One that failed on its own (a timeout, a
//! permission) shows that error: the checks' connection would meet it again.

use super::CheckResult;
use super::helper::Helper;
use super::postgres::{Pg, SIDE, orphans_counted};
use super::report::errored;
use super::shared::{End, SharedCounts};
use crate::playbook::HealthCheck;

impl Pg<'_> {
    /// After `row_counts` (at `at` in `checks`): the catalog reads that follow it run on the
    /// checks' connection while the helper, if `row_counts` opened one, measures every size
    /// check not yet in `slots` (then shares the orphan counts). Returns the size checks whose
    /// place has passed and which are still to be measured, for after the snapshot; the others
    /// not measured are measured in their place.
    pub(super) async fn side_checks(
        &mut self,
        checks: &[HealthCheck],
        slots: &mut [Option<CheckResult>],
        at: usize,
    ) -> Vec<usize> {
        let side: Vec<usize> = (0..checks.len())
            .filter(|&j| SIDE.contains(&checks[j]) && slots[j].is_none())
            .collect();
        let mut measured = Vec::new();
        if let Some(helper) = self.helper.take() {
            measured = self.beside(helper, checks, slots, at, &side).await;
        }
        let mut measured = measured.into_iter();
        let mut later = Vec::new();
        for &j in &side {
            let c = checks[j];
            match measured.next() {
                Some(Ok(r)) => {
                    tracing::debug!("the helper measured {} meanwhile", super::name(c));
                    slots[j] = Some(r);
                }
                Some(Err(e)) if !lost(&e) => slots[j] = Some(errored(c, &e, self.opts)),
                Some(Err(e)) => {
                    tracing::debug!("the helper could not measure {}: {e}", super::name(c));
                }
                None => {}
            }
            if slots[j].is_none() && j < at {
                later.push(j);
            }
        }
        later
    }

    /// `side_checks` with the helper: the catalog reads (and the orphan counts) on this
    /// connection while `helper` measures the size checks at `side` (then counts orphans);
    /// the results of this connection's checks go into `slots`, the helper's are returned.
    async fn beside(
        &mut self,
        mut helper: Helper,
        checks: &[HealthCheck],
        slots: &mut [Option<CheckResult>],
        at: usize,
        side: &[usize],
    ) -> Vec<Result<CheckResult, sqlx::Error>> {
        let catalog: Vec<usize> = (at + 1..checks.len())
            .take_while(|&j| matches!(checks[j], HealthCheck::Indexes | HealthCheck::ForeignKeys))
            .collect();
        let orphans = Some(at + 1 + catalog.len())
            .filter(|&j| checks.get(j) == Some(&HealthCheck::OrphanedRows));
        let opts = self.opts;
        let wanted: Vec<HealthCheck> = side.iter().map(|&j| checks[j]).collect();
        let shared = SharedCounts::default();
        // Sent once the orphan counts are listed; dropped unsent, there are none to share.
        let (listed, ready) = tokio::sync::oneshot::channel::<()>();
        let ((mine, fks), (theirs, helped)) = tokio::join!(
            async {
                let mut out = Vec::with_capacity(catalog.len());
                for &j in &catalog {
                    out.push((j, self.run(checks[j]).await));
                }
                let mut fks = None;
                if orphans.is_some() {
                    fks = Some(match self.orphan_list().await {
                        Ok((list, queries)) => {
                            tracing::debug!(
                                "the orphan counts shared with the helper as the two come free"
                            );
                            shared.fill(queries);
                            let _ = listed.send(());
                            Ok((list, shared.count_on(self.conn, End::Front).await))
                        }
                        Err(e) => {
                            drop(listed);
                            Err(e)
                        }
                    });
                } else {
                    drop(listed);
                }
                (out, fks)
            },
            async {
                let measured = helper.sizes(opts, &wanted).await;
                let helped = match ready.await {
                    Ok(()) => helper.count_shared(&shared, End::Back).await.is_ok(),
                    Err(_) => true,
                };
                (measured, helped)
            }
        );
        self.helper = Some(helper);
        if !helped {
            // It broke while counting.
            self.lose_helper().await;
        }
        for (j, r) in mine {
            slots[j] = Some(r);
        }
        if let (Some(j), Some(fks)) = (orphans, fks) {
            let counted = match fks {
                Ok((list, Ok(()))) => shared.finish(self.conn).await.map(|c| (list, c)),
                Ok((_, Err(e))) | Err(e) => Err(e),
            };
            slots[j] = Some(match counted {
                Ok((list, counted)) => orphans_counted(&list, counted, opts),
                Err(e) => errored(HealthCheck::OrphanedRows, &e, opts),
            });
        }
        theirs
    }
}

/// Whether `e` says a connection or its transaction was lost, which another connection may
/// not meet; a query's own failure (a timeout, a permission) it would meet again.
fn lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d.code().is_none_or(|c| c.starts_with("08") || c == "25P02"),
        _ => true,
    }
}
