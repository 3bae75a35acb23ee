//! Counts shared out to two connections as they come free (`helper.rs`): the checks'
//! connection takes messages from the front of the list, the helper from the back, until they
//! meet, so a connection that starts late (the helper, opening its connection or measuring
//! sizes first) or meets slower tables takes fewer, and neither waits for the other's fixed
//! half. A message holds a quarter of what is left, between `LEAST` and `SHARED` statements
//! (what is left under twice `LEAST` goes in one):
//! near the meeting point the messages shrink, so neither connection is left counting a long
//! last message while the other has nothing to take. Taking from the two ends keeps each
//! connection on tables whose neighbours it has opened already: the lists are in name order
//! (the tables, and the foreign keys by their table), and a table costs the server most the
//! first time a connection opens it. Both count in the same snapshot; the results go back in
//! the list's order. A helper that breaks gives back the message it was counting, which the
//! checks' connection counts at the end (`finish`); with no helper to be had, or once it
//! broke, the checks' connection takes the rest a whole message (`PER_MESSAGE`) at a time
//! (`alone`); when the checks' connection breaks the counts fail, and `stop` leaves nothing
//! more for the helper to take.

use super::snapshot::{PER_MESSAGE, SHARED, counts_on};
use sqlx::PgConnection;
use std::cell::{Cell, RefCell};
use std::ops::Range;

/// One statement's count, or why it could not be counted.
type Count = Result<i64, sqlx::Error>;

/// The fewest statements in a message: below this a round trip costs about as much as the
/// counts it carries. What is left under twice this goes in one message.
const LEAST: usize = 16;

/// Which end of the list a connection takes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// The checks' connection.
    Front,
    /// The helper.
    Back,
}

/// The list being counted, what is left of it (`front..back`), and what was counted.
#[derive(Default)]
pub(super) struct SharedCounts {
    queries: RefCell<Vec<String>>,
    front: Cell<usize>,
    back: Cell<usize>,
    /// Set by `stop`: nothing more is handed out.
    stopped: Cell<bool>,
    /// Set by `alone`: one connection takes the rest, a whole message at a time.
    alone: Cell<bool>,
    /// Each message counted: where it starts in the list, and its counts.
    counted: RefCell<Vec<(usize, Vec<Count>)>>,
    /// Messages taken and not counted (their connection broke).
    given_back: RefCell<Vec<Range<usize>>>,
}

impl SharedCounts {
    /// Sets the list to count; until then there is nothing to take.
    pub(super) fn fill(&self, queries: Vec<String>) {
        self.front.set(0);
        self.back.set(queries.len());
        *self.queries.borrow_mut() = queries;
    }

    /// Hands out nothing more: the counts failed.
    fn stop(&self) {
        self.stopped.set(true);
    }

    /// Only one connection counts from now on (the helper could not be had, or broke): it
    /// takes `PER_MESSAGE` statements at a time, as a connection counting alone does.
    pub(super) fn alone(&self) {
        self.alone.set(true);
    }

    /// Where the part taken from the back begins: every statement before it was taken from
    /// the front.
    pub(super) fn meeting(&self) -> usize {
        self.front.get()
    }

    /// The next message's worth of statements from `end`, and where they start in the list.
    fn take(&self, end: End) -> Option<Range<usize>> {
        let (front, back) = (self.front.get(), self.back.get());
        let left = back.saturating_sub(front);
        if self.stopped.get() || left == 0 {
            return None;
        }
        let size = if self.alone.get() {
            left.min(PER_MESSAGE)
        } else if left < 2 * LEAST {
            // Under two of the smallest messages: all of it in one.
            left
        } else {
            (left / 4).clamp(LEAST, SHARED)
        };
        Some(match end {
            End::Front => {
                self.front.set(front + size);
                front..front + size
            }
            End::Back => {
                self.back.set(back - size);
                back - size..back
            }
        })
    }

    /// Counts on `conn`, which is in the snapshot, taking from `end` until nothing is left.
    /// Fails when the connection can no longer count (its snapshot cannot be kept): what it
    /// took and did not count is given back, and the other end is told: the checks'
    /// connection failing fails the counts (`stop`), the helper failing leaves the rest to the
    /// checks' connection (`alone`).
    pub(super) async fn count_on(
        &self,
        conn: &mut PgConnection,
        end: End,
    ) -> Result<(), sqlx::Error> {
        while let Some(range) = self.take(end) {
            let chunk = self.queries.borrow()[range.clone()].to_vec();
            match counts_on(conn, &chunk, SHARED).await {
                Ok(counted) => self.counted.borrow_mut().push((range.start, counted)),
                Err(e) => {
                    self.given_back.borrow_mut().push(range);
                    match end {
                        End::Front => self.stop(),
                        End::Back => self.alone(),
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: usize) -> SharedCounts {
        let s = SharedCounts::default();
        s.fill((0..n).map(|i| i.to_string()).collect());
        s
    }

    #[test]
    fn the_two_ends_meet_and_every_statement_is_taken_once() {
        for n in [1, 15, 16, 17, 100, 499, 500, 1_000, 10_001] {
            let s = filled(n);
            let mut seen = vec![0u8; n];
            let mut turn = End::Front;
            while let Some(r) = s.take(turn) {
                assert!(r.len() <= SHARED, "{r:?}");
                // No message is shorter than LEAST but one that takes all that is left.
                assert!(r.len() >= LEAST || s.take_left() == 0, "{n}: {r:?}");
                for i in r {
                    seen[i] += 1;
                }
                turn = if turn == End::Front {
                    End::Back
                } else {
                    End::Front
                };
            }
            assert!(seen.iter().all(|&c| c == 1), "{n}");
        }
    }

    #[test]
    fn the_front_takes_from_the_start_and_the_back_from_the_end() {
        let s = filled(600);
        assert_eq!(s.take(End::Front), Some(0..125));
        // A quarter of what is left (475, then 357), once that is less than a full message.
        assert_eq!(s.take(End::Back), Some(482..600));
        assert_eq!(s.take(End::Back), Some(393..482));
        assert_eq!(s.meeting(), 125);
    }

    #[test]
    fn what_is_left_under_two_of_the_smallest_messages_goes_in_one() {
        let s = filled(40);
        assert_eq!(s.take(End::Front), Some(0..LEAST));
        assert_eq!(s.take(End::Back), Some(LEAST..40));
        assert_eq!(s.take(End::Front), None);
    }

    #[test]
    fn a_connection_left_alone_takes_whole_messages() {
        let s = filled(600);
        assert_eq!(s.take(End::Front), Some(0..125));
        s.alone();
        assert_eq!(s.take(End::Front), Some(125..125 + PER_MESSAGE));
        assert_eq!(s.take(End::Front), Some(125 + PER_MESSAGE..600));
        assert_eq!(s.take(End::Front), None);
    }

    #[test]
    fn nothing_is_taken_once_stopped() {
        let s = filled(1_000);
        s.stop();
        assert_eq!(s.take(End::Front), None);
        assert_eq!(s.take(End::Back), None);
    }

    impl SharedCounts {
        fn take_left(&self) -> usize {
            self.back.get() - self.front.get()
        }
    }
}
