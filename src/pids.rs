//! What Linux's `/proc` says about a process (whether it runs, its process group, when it
//! started), and stopping a child's process group: SIGTERM, a grace period, then SIGKILL.
//!
//! A process is named by its pid *and* its start time (field 22 of `/proc/PID/stat`, in clock
//! ticks since boot): a pid is reused once its process is gone, a (pid, start time) pair is not.

use std::time::{Duration, Instant};

/// How long a stopped group gets to end on SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// How often a stopping group is looked at.
const POLL: Duration = Duration::from_millis(20);

/// The parts of `/proc/PID/stat` runbook reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (a zombie: it has ended, its parent has not collected it yet), ...
    pub state: char,
    pub pgrp: i32,
    pub start_time: u64,
}

impl Stat {
    /// Whether the process still runs (a zombie has ended).
    pub fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The process `pid` as `/proc` shows it now; `None` once it is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    use std::io::Read;
    // Read as bytes into room for the whole line (a few hundred bytes): the command name is
    // whatever the process calls itself, cut to 15 bytes (which may split a character), so
    // it need not be UTF-8, and `/proc` says its files are empty, so `fs::read_to_string`
    // would read the line 32, 32, 64... bytes at a time.
    let mut bytes = Vec::with_capacity(1024);
    std::fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    parse_stat(&String::from_utf8_lossy(&bytes))
}

/// The fields after the command name, which is in parentheses and may itself hold spaces and
/// parentheses: the last `)` ends it.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 of proc(5), so field N is `fields[N - 3]`.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// When process `pid` started (clock ticks since boot), while it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// A child's process group as runbook records it: the group's id is its leader's pid, and the
/// leader's start time tells it from a later process given the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    pub pgid: u32,
    pub start_time: u64,
}

impl Group {
    /// The running processes of this group, or none when the group is not the one recorded.
    ///
    /// While the leader exists its start time must match. Once it has ended, the members that
    /// started no earlier than it did are taken as its own: the kernel does not give the
    /// group's number to a new process while any member lives, so another group of that number
    /// would need a new leader of that pid, which would have to have ended too.
    pub fn members(&self) -> Vec<u32> {
        let Ok(pgid) = i32::try_from(self.pgid) else {
            return Vec::new();
        };
        if let Some(leader) = stat(self.pgid)
            && leader.running()
            && leader.start_time != self.start_time
        {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                stat(pid).is_some_and(|s| {
                    s.pgrp == pgid && s.running() && s.start_time >= self.start_time
                })
            })
            .collect()
    }

    /// Whether anything of this group still runs (cheaper than `members` when nothing does).
    pub fn alive(&self) -> bool {
        let Ok(pgid) = i32::try_from(self.pgid) else {
            return false;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether the group has a process.
        if unsafe { libc::killpg(pgid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        {
            return false;
        }
        !self.members().is_empty()
    }

    fn signal(&self, signal: i32) {
        if let Ok(pgid) = i32::try_from(self.pgid) {
            // SAFETY: killpg only sends a signal to the group, which `members` found to be ours.
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

/// Stops `groups`: SIGTERM to each that is still the one recorded, up to [`GRACE`] for them to
/// end, then SIGKILL to what is left and up to `GRACE` again for it to go. Returns the groups
/// that still run after all that (a process stuck in the kernel can outlast SIGKILL).
pub fn stop_groups(groups: &[Group]) -> Vec<Group> {
    let live: Vec<Group> = groups.iter().copied().filter(Group::alive).collect();
    for g in &live {
        g.signal(libc::SIGTERM);
    }
    let left = wait_gone(&live, GRACE);
    for g in &left {
        g.signal(libc::SIGKILL);
    }
    wait_gone(&left, GRACE)
}

/// Waits up to `limit` for the groups to end; returns those still running.
fn wait_gone(groups: &[Group], limit: Duration) -> Vec<Group> {
    let began = Instant::now();
    loop {
        let left: Vec<Group> = groups.iter().copied().filter(Group::alive).collect();
        if left.is_empty() || began.elapsed() >= limit {
            return left;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_after_a_command_name_with_spaces_and_parentheses() {
        let line =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).expect("parses");
        assert_eq!(
            s,
            Stat {
                state: 'S',
                pgrp: 4242,
                start_time: 987_654
            }
        );
        assert!(parse_stat("12 (x) S 1").is_none());
    }

    #[test]
    fn this_process_is_found_with_its_start_time() {
        let me = std::process::id();
        let s = stat(me).expect("our own stat");
        assert!(s.running());
        assert_eq!(start_time(me), Some(s.start_time));
    }
}
