//! Nothing of a dead runbook keeps running: runbook is killed with SIGKILL while pg_dump,
//! pg_restore or a shell pipeline runs, and its children (grandchildren included) are gone
//! soon after, checked by pid; the next backup leaves no `.partial` file; a resume stops what a
//! crash left running before it retries the step; and the watchdog that does this stops
//! nothing while runbook lives. A process whose name is not UTF-8 is seen alive, not gone.
//!
//! Children are blocked deterministically (a lock another session holds, a file the test has
//! not created yet), and every wait polls with a deadline.

use crate::support::pg;
use crate::support::{Project, Running, Target};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a condition may take before the test fails. The watchdog's grace before SIGKILL
/// is 5 s; a child stopped by SIGTERM is gone well before.
const DEADLINE: Duration = Duration::from_secs(20);

/// State, parent and process group of a process, while /proc has it.
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
    ))
}

/// Whether the process runs (a zombie has ended; its new parent may not collect it at once).
fn running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _, _)| state != 'Z' && state != 'X')
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The running children of `parent` named `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| {
            stat(p).is_some_and(|(s, ppid, _)| ppid == parent && s != 'Z') && comm(p) == name
        })
        .collect()
}

/// The running members of process group `pgid`.
fn group(pgid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = all_pids()
        .into_iter()
        .filter(|&p| stat(p).is_some_and(|(s, _, g)| g == pgid && s != 'Z'))
        .collect();
    v.sort();
    v
}

/// Polls `f` until it gives a value, failing with `what` (and runbook's output) at the deadline.
fn wait_for<T>(what: &str, log: &Path, mut f: impl FnMut() -> Option<T>) -> T {
    let began = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            began.elapsed() < DEADLINE,
            "timed out waiting for {what}; runbook's output:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one child of runbook named `name`, once it runs.
fn child_named(runbook: &Running, name: &str, log: &Path) -> u32 {
    wait_for(&format!("runbook to start {name}"), log, || {
        children_named(runbook.0.id(), name).first().copied()
    })
}

/// runbook's watchdog, once started.
fn watchdog_of(runbook: &Running, log: &Path) -> u32 {
    wait_for("runbook's watchdog", log, || {
        children_named(runbook.0.id(), "runbook")
            .into_iter()
            .find(|&p| cmdline(p).contains("__watchdog"))
    })
}

fn sigkill(runbook: &mut Running) {
    runbook.0.kill().unwrap();
    runbook.0.wait().unwrap();
}

/// Processes a test may leave behind when it fails, killed when it ends however it ends: each
/// with its start time, so a pid reused since is left alone.
struct Leftovers(Vec<(u32, String)>);

impl Leftovers {
    fn of(pids: &[u32]) -> Leftovers {
        Leftovers(pids.iter().map(|&p| (p, start_time(p))).collect())
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for (pid, started) in &self.0 {
            if running(*pid) && start_time(*pid) == *started {
                // SAFETY: a signal to a process this test saw runbook start.
                unsafe {
                    libc::kill(i32::try_from(*pid).unwrap_or(0), libc::SIGKILL);
                }
            }
        }
    }
}

/// Field 22 of /proc/PID/stat (empty once the process is gone).
fn start_time(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| {
            let rest = t[t.rfind(')')? + 1..].to_owned();
            rest.split_whitespace().nth(19).map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Asserts that every pid in `pids` ends within the deadline.
fn assert_gone(pids: &[u32], what: &str, log: &Path) {
    wait_for(
        &format!("{what} ({pids:?}) to end after runbook was killed"),
        log,
        || pids.iter().all(|&p| !running(p)).then_some(()),
    );
}

/// A session on the test's database waits for a lock (runbook names its clients'
/// `application_name` itself, so the statement tells which client it is).
fn waits_for_lock(url: &str, statement: &str) -> bool {
    let n = pg::cluster().psql(
        url,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '{statement}%'"
        ),
    );
    n != "0"
}

fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default()
}

const BACKUP: &str = "name: bk\nsteps:\n  - id: backup\n    backup: { dir: backups }\n";

/// A partitioned table: runbook counts the rows of its partition in its own snapshot, while
/// pg_dump also locks the parent, which a lock on the parent alone makes it wait for.
const PARTITIONED: &str = "CREATE TABLE measures (id int NOT NULL, v text) PARTITION BY RANGE (id);
CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM (0) TO (1000);
INSERT INTO measures SELECT g, 'v' || g FROM generate_series(1, 100) g;";

#[test]
fn sigkill_during_a_backup_leaves_no_pg_dump_and_the_next_backup_no_partial_file() {
    let p = Project::new(|_| Target::postgres("reap_backup"));
    let url = p.target.arg();
    pg::cluster().psql(&url, PARTITIONED);
    p.playbook("bk", BACKUP);
    let lock = pg::cluster().hold(
        &url,
        "BEGIN; LOCK TABLE ONLY measures IN ACCESS EXCLUSIVE MODE;",
    );
    let log = p.path().join("runbook.log");
    let mut runbook = Running(p.start("bk", &[]));
    let pg_dump = child_named(&runbook, "pg_dump", &log);
    wait_for("pg_dump to wait for the lock", &log, || {
        waits_for_lock(&url, "LOCK TABLE").then_some(())
    });
    sigkill(&mut runbook);
    assert_gone(&[pg_dump], "pg_dump", &log);

    let backups = p.path().join("backups");
    assert_eq!(
        partials(&backups).len(),
        1,
        "the killed backup left its partial archive"
    );
    lock.release();
    let out = p.run("bk", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("a partial backup left by a run that stopped while writing it"),
        "{}",
        out.combined()
    );
    assert_eq!(partials(&backups), Vec::<String>::new());
}

#[test]
fn sigkill_during_a_restore_leaves_no_pg_restore_and_the_next_backup_no_partial_file() {
    let p = Project::new(|_| Target::postgres("reap_restore"));
    let url = p.target.arg();
    pg::cluster().psql(
        &url,
        // Enough rows that pg_restore's script outgrows the pipes to psql: while psql waits for
        // the lock, pg_restore waits to write, and both are running when runbook is killed.
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 200000);",
    );
    p.playbook("bk", BACKUP);
    let out = p.run("bk", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let backups = p.path().join("backups");
    let manifest = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .expect("the backup's manifest");
    p.playbook(
        "rs",
        &format!(
            "name: rs\nsteps:\n  - id: restore\n    restore: {{ from: \"{}\" }}\n",
            manifest.display()
        ),
    );
    // Reading the table is compatible with the pre-restore backup's pg_dump, not with the
    // restore dropping it.
    let lock = pg::cluster().hold(&url, "BEGIN; LOCK TABLE items IN ACCESS SHARE MODE;");
    let log = p.path().join("runbook.log");
    let mut runbook = Running(p.start("rs", &[]));
    // The restore is pg_restore writing its script into psql, which runs it in one transaction.
    let psql = wait_for("runbook to start psql for the restore", &log, || {
        children_named(runbook.0.id(), "psql").into_iter().next()
    });
    let pg_restore = wait_for("runbook to start pg_restore for the restore", &log, || {
        children_named(runbook.0.id(), "pg_restore")
            .into_iter()
            .find(|&p| !cmdline(p).contains("--list"))
    });
    wait_for("the restore to wait for the lock", &log, || {
        waits_for_lock(&url, "").then_some(())
    });
    sigkill(&mut runbook);
    assert_gone(&[psql, pg_restore], "psql and pg_restore", &log);

    lock.release();
    let out = p.run("bk", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(partials(&backups), Vec::<String>::new());
}

/// A step whose shell starts a background job and a foreground one, both in its group; on a
/// retry (the marker exists) it only checks that nothing of the first attempt still runs.
const SHELL: &str = r#"
name: sh
steps:
  - id: work
    shell:
      script: |
        if [ -e started ]; then
          for p in $(cat first-attempt); do
            state=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)
            if [ -n "$state" ] && [ "$state" != Z ]; then exit 3; fi
          done
          exit 0
        fi
        touch started
        sleep 300 & sleep 300
"#;

/// The shell and its two sleeps, once all three run.
fn shell_group(runbook: &Running, log: &Path) -> (u32, Vec<u32>) {
    let sh = child_named(runbook, "sh", log);
    let members = wait_for("the shell's two sleeps", log, || {
        let g = group(sh);
        (g.len() == 3).then_some(g)
    });
    (sh, members)
}

#[test]
fn sigkill_stops_a_shell_step_and_what_its_shell_started() {
    let p = Project::new(Target::sqlite);
    p.playbook("sh", SHELL);
    let log = p.path().join("runbook.log");
    let mut runbook = Running(p.start("sh", &[]));
    let (_, members) = shell_group(&runbook, &log);
    let _cleanup = Leftovers::of(&members);
    sigkill(&mut runbook);
    assert_gone(&members, "the shell and its sleeps", &log);
}

#[test]
fn resume_stops_what_a_crash_left_running_before_it_retries_the_step() {
    let p = Project::new(Target::sqlite);
    p.playbook("sh", SHELL);
    let log = p.path().join("runbook.log");
    let mut runbook = Running(p.start("sh", &[]));
    let (sh, members) = shell_group(&runbook, &log);
    let _cleanup = Leftovers::of(&members);
    // Without its watchdog, a killed runbook leaves its children running: the case resume
    // must handle (a watchdog killed too, or a runbook killed before it could tell it).
    let watchdog = watchdog_of(&runbook, &log);
    // SAFETY: a signal to a process this test found as runbook's watchdog.
    unsafe {
        libc::kill(i32::try_from(watchdog).unwrap(), libc::SIGKILL);
    }
    wait_for("the watchdog to end", &log, || {
        (!running(watchdog)).then_some(())
    });
    sigkill(&mut runbook);
    assert!(
        members.iter().all(|&p| running(p)),
        "the children should have outlived runbook here"
    );
    let list: Vec<String> = members.iter().map(u32::to_string).collect();
    std::fs::write(p.path().join("first-attempt"), list.join(" ")).unwrap();

    let (run_id, _) = p.last_run();
    let out = p.resume(&run_id, &["--retry-step", "work"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let said = format!(
        "stopped 1 process left running by run {run_id}: sh (pid {sh}, with 2 processes it started)"
    );
    assert!(out.stderr.contains(&said), "{}", out.combined());
    assert!(
        members.iter().all(|&p| !running(p)),
        "{members:?} still run"
    );
    let stopped = p.cmd(&["audit", "show", &run_id]);
    assert!(
        stopped.stdout.contains(&format!("sh (pid {sh}")),
        "the resume's record names what it stopped:\n{}",
        stopped.combined()
    );

    assert!(
        !p.path().join(".runbook/children").join(&run_id).exists(),
        "the record of the run's children stays after it ended"
    );
}

#[test]
fn the_watchdog_stops_nothing_while_runbook_lives_and_ends_after_it() {
    let p = Project::new(Target::sqlite);
    p.playbook(
        "wait",
        r#"
name: wait
steps:
  - id: long
    shell: { script: "while [ ! -e go ]; do sleep 0.05; done; touch long-finished" }
  - id: next
    shell: { script: "touch next-finished" }
"#,
    );
    let log = p.path().join("runbook.log");
    let mut runbook = Running(p.start("wait", &[]));
    let sh = child_named(&runbook, "sh", &log);
    let watchdog = watchdog_of(&runbook, &log);
    std::fs::write(p.path().join("go"), "").unwrap();
    let status = runbook.0.wait().unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{output}");
    assert!(!running(sh));
    assert!(
        p.path().join("long-finished").exists() && p.path().join("next-finished").exists(),
        "{output}"
    );
    assert_gone(&[watchdog], "the watchdog", &log);
}

#[test]
fn sigkill_of_a_fleet_stops_its_target_runs_and_their_children() {
    let p = Project::new(Target::sqlite);
    std::fs::write(
        p.path().join("runbook.yaml"),
        format!(
            "environments:\n  tenants:\n    targets:\n      - {{ name: t1, url: \"sqlite:{}\" }}\n",
            p.path().join("t1.db").display()
        ),
    )
    .unwrap();
    p.playbook(
        "long",
        "name: long\nsteps:\n  - id: work\n    shell: { script: \"sleep 300 & sleep 300\" }\n",
    );
    let log = p.path().join("runbook.log");
    let fleet = crate::support::Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "run",
        "long",
        "--env",
        "tenants",
        "--targets",
        "all",
    ])
    .start(&log);
    let mut fleet = Running(fleet);
    let target_run = wait_for("the fleet to start its target's run", &log, || {
        children_named(fleet.0.id(), "runbook")
            .into_iter()
            .find(|&p| !cmdline(p).contains("__watchdog"))
    });
    let sh = wait_for("the target's run to start its step", &log, || {
        children_named(target_run, "sh").first().copied()
    });
    let members = wait_for("the step's two sleeps", &log, || {
        let g = group(sh);
        (g.len() == 3).then_some(g)
    });
    let _cleanup = Leftovers::of(&[members.clone(), vec![target_run]].concat());
    sigkill(&mut fleet);
    assert_gone(&[target_run], "the target's run", &log);
    assert_gone(&members, "the target's step and its sleeps", &log);
}

/// A process whose name is not UTF-8 (an executable named so) is found, not taken for
/// gone.
#[test]
fn a_process_named_in_bytes_that_are_not_utf8_is_found() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join(std::ffi::OsStr::from_bytes(b"sl\xffep"));
    std::os::unix::fs::symlink("/bin/sleep", &link).unwrap();
    let mut child = std::process::Command::new(&link).arg("5").spawn().unwrap();
    // The parent may go on before the kernel has named the child after its new program.
    let comm_path = format!("/proc/{}/comm", child.id());
    let began = std::time::Instant::now();
    let mut comm = Vec::new();
    while began.elapsed() < Duration::from_secs(5) {
        comm = std::fs::read(&comm_path).unwrap_or_default();
        if comm == b"sl\xffep\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let found = runbook::pids::stat(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(comm, b"sl\xffep\n", "the kernel kept the name's bytes");
    assert!(found.is_some_and(|s| s.running()), "{found:?}");
}

/// A run refused after its git state began to be read (here: its target cannot be reached)
/// does not leave git running: runbook waits for the read before it exits (its runtime no
/// longer waits for the blocking pool at exit). The `git` on PATH is a script that sleeps,
/// then notes it ran and runs git.
#[test]
fn a_refused_run_leaves_no_git_running() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("playbooks")).unwrap();
    std::fs::write(
        project.join("playbooks/p.yaml"),
        "name: p\nsteps:\n  - id: one\n    sql: { query: \"SELECT 1\" }\n",
    )
    .unwrap();
    let init = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&project)
        .status()
        .unwrap();
    assert!(init.success());
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mark = dir.path().join("git-ran");
    let fake = bin.join("git");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nsleep 0.5\necho ran >> '{}'\nexec '{}' \"$@\"\n",
            mark.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = crate::support::Runbook::new(&[
        "-C",
        &project.display().to_string(),
        "run",
        "p",
        "--target",
        "postgres://runbook@127.0.0.1:1/nowhere",
    ])
    .env("PATH", &path)
    .run();
    assert_eq!(out.code, 8, "{}", out.combined());
    let ran = std::fs::read_to_string(&mark).unwrap_or_default();
    assert!(
        ran.lines().count() >= 2,
        "git was still running when runbook exited (it noted {} runs)",
        ran.lines().count()
    );
}
