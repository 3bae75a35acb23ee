//! The watchdog: a small process that stops runbook's children when runbook dies, however it
//! dies (SIGKILL and a crash included, which no signal handler sees).
//!
//! It is the runbook binary itself, started by `process` with the hidden argument [`ARG`]
//! at the first child it tracks, in a process group of its own, with a pipe from runbook as
//! its stdin. Runbook writes one line per child process group when it starts (`+PGID START`)
//! and when it is reaped (`-PGID START`). The pipe's only writer is runbook (close-on-exec, so
//! no child inherits it): end-of-file comes exactly when runbook is gone. Then the watchdog
//! stops every group it still knows (SIGTERM, a grace period, SIGKILL) and exits.
//!
//! A parent-death signal (`PR_SET_PDEATHSIG`) would not do: it fires when the spawning
//! *thread* exits (tokio's blocking threads come and go), it needs a `pre_exec` hook (which
//! costs std its `posix_spawn` fast path), and it reaches only the direct child, not a shell's
//! pipeline or pg_dump's workers; the watchdog stops whole groups.
//!
//! It ignores SIGINT, SIGTERM, SIGHUP and SIGQUIT: those are runbook's to handle (it stops its
//! children itself), and the watchdog must last until runbook is gone. It prints nothing.

use crate::pids::{self, Group};
use std::collections::BTreeSet;
use std::io::BufRead;

/// The hidden first argument that makes the runbook binary a watchdog.
pub const ARG: &str = "__watchdog";

/// Whether this process was started as a watchdog.
pub fn asked() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == ARG)
}

/// The line that tells the watchdog a group started.
pub(crate) fn started_line(g: Group) -> String {
    format!("+{} {}\n", g.pgid, g.start_time)
}

/// The line that tells the watchdog a group's leader was reaped.
pub(crate) fn ended_line(g: Group) -> String {
    format!("-{} {}\n", g.pgid, g.start_time)
}

/// The watchdog's whole life: follows the lines on stdin until end-of-file, then stops the
/// groups still running.
pub fn serve() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    let mut live = BTreeSet::new();
    follow(std::io::stdin().lock(), &mut live, PAUSE);
    let live: Vec<Group> = live.into_iter().collect();
    pids::stop_groups(&live);
}

/// How long the watchdog waits after taking in what runbook wrote before it reads again.
/// Runbook writes two lines per child; a reader blocked on the pipe is woken by each, a
/// process switch on runbook's every start and reap of a child: on a playbook of 1,000
/// `true` steps, two of runbook's twelve context switches per step and about 4% of its time.
/// Paused, the watchdog finds the lines of many children at one read, and runbook's writes
/// wake nobody: they wait in the pipe (64 KiB, thousands of lines; a writer that filled it
/// would wait for the next read, as before). End-of-file is seen at most this late: it only
/// starts the stopping of groups, whose grace period is longer.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Follows the lines of `input` until end-of-file, waiting `pause` whenever it has taken in
/// everything a read brought. A line cut by the end of a read is completed by the next.
fn follow(input: impl std::io::Read, live: &mut BTreeSet<Group>, pause: std::time::Duration) {
    let mut input = std::io::BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Ok(text) = std::str::from_utf8(&line) {
            apply(live, text.trim_end_matches(['\n', '\r']));
        }
        if input.buffer().is_empty() {
            std::thread::sleep(pause);
        }
    }
}

/// Takes in one line; a line it cannot read is ignored (runbook writes them all).
fn apply(live: &mut BTreeSet<Group>, line: &str) {
    let (add, rest) = match line.split_at_checked(1) {
        Some(("+", rest)) => (true, rest),
        Some(("-", rest)) => (false, rest),
        _ => return,
    };
    let mut parts = rest.split(' ').map(str::parse::<u64>);
    let (Some(Ok(pgid)), Some(Ok(start_time))) = (parts.next(), parts.next()) else {
        return;
    };
    let Ok(pgid) = u32::try_from(pgid) else {
        return;
    };
    let group = Group { pgid, start_time };
    if add {
        live.insert(group);
    } else {
        live.remove(&group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_started_and_ended_lines() {
        let a = Group {
            pgid: 10,
            start_time: 5,
        };
        let b = Group {
            pgid: 11,
            start_time: 6,
        };
        let mut live = BTreeSet::new();
        for line in [started_line(a), started_line(b), ended_line(a)] {
            apply(&mut live, line.trim_end());
        }
        apply(&mut live, "garbage");
        apply(&mut live, "+12");
        assert_eq!(live.into_iter().collect::<Vec<_>>(), vec![b]);
    }

    /// A reader that gives its chunks one read at a time, then end-of-file.
    struct Chunks(Vec<&'static [u8]>);

    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn follows_lines_cut_across_reads_to_the_end() {
        // A read may end inside a line (the pipe holds what runbook wrote so far); the line's
        // rest comes with the next read, and a last line without its newline still counts.
        let mut live = BTreeSet::new();
        let input = Chunks(vec![
            b"+10 5\n+1",
            b"1 6\n-10 5\n+12 7\n",
            b"-12",
            b" 7\n+13 8",
        ]);
        follow(input, &mut live, std::time::Duration::ZERO);
        let pgids: Vec<u32> = live.iter().map(|g| g.pgid).collect();
        assert_eq!(pgids, vec![11, 13]);
        assert_eq!(
            live.iter().map(|g| g.start_time).collect::<Vec<_>>(),
            vec![6, 8]
        );
    }
}
