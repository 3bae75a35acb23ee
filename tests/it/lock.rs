//! One run per target, resumes included: two resumes of one crashed run started together run
//! its remaining steps once (the lock is taken before the run's records are read), and a
//! SQLite target is locked by its database file, whatever path (a symlink) names it.

use crate::support::{Project, Runbook, Running, Target, sqlite};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

/// Runs `args` in the project in the background, output to `log` in the project folder.
fn start(p: &Project, log: &str, args: &[&str]) -> Child {
    let dir = p.path().display().to_string();
    let mut all = vec!["-C", dir.as_str()];
    all.extend(args);
    Runbook::new(&all).start(&p.path().join(log))
}

fn log(p: &Project, name: &str) -> String {
    std::fs::read_to_string(p.path().join(name)).unwrap_or_default()
}

/// Waits (up to 20 s) until `ready` holds, panicking with `what` otherwise.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..400 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting until {what}");
}

/// A playbook whose only step waits for `gate`.
fn holding_yaml(gate: &Path) -> String {
    format!(
        "name: hold\nsteps:\n  - id: hold\n    shell: {{ script: \"while [ ! -e {} ]; do sleep 0.05; done\" }}\n",
        gate.display()
    )
}

/// `holding_yaml` as `p`'s playbook `hold`: it holds the target's lock until `gate` exists.
fn holding_playbook(p: &Project, gate: &Path) {
    p.playbook("hold", &holding_yaml(gate));
}

/// Starts `hold` on `target` and waits until its run is recorded as running (a run is
/// recorded only once it holds the lock); returns the process and the run id.
fn hold(p: &Project, target: &str, gate: &Path) -> (Child, String) {
    holding_playbook(p, gate);
    let child = start(p, "hold.log", &["run", "hold", "--target", target]);
    let id = p.running_run("hold");
    (child, id)
}

fn effects(p: &Project) -> Vec<String> {
    p.target.query("SELECT step FROM effects ORDER BY step")
}

/// How many `run_finished` events run `id` has, in the state store and in its audit log.
fn finished_events(p: &Project, id: &str) -> (String, usize) {
    let state = p.path().join(".runbook/state.db");
    let recorded = sqlite::query(
        &state,
        &format!(
            "SELECT count(*) FROM runbook_events WHERE run_id = '{id}' AND kind = 'run_finished'"
        ),
    );
    let audit =
        std::fs::read_to_string(p.path().join(".runbook/audit").join(format!("{id}.jsonl")))
            .unwrap();
    let audited = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "run_finished")
        .count();
    (recorded.join(","), audited)
}

/// A run killed after its first insert; two `resume --lock-wait 30s` of it wait together for
/// the lock another run holds, then take it one after the other: the first finishes the run,
/// the second finds it finished and runs nothing.
fn concurrent_resumes(target: impl FnOnce(&Path) -> Target) {
    let p = Project::new(target);
    let count = p.path().join("count");
    p.playbook(
        "steps",
        &format!(
            "name: steps\nsteps:\n  - id: setup\n    sql: {{ query: \"CREATE TABLE IF NOT EXISTS effects (step TEXT NOT NULL)\" }}\n  - id: one\n    sql: {{ query: \"INSERT INTO effects (step) VALUES ('one')\" }}\n  - id: two\n    sql: {{ query: \"INSERT INTO effects (step) VALUES ('two')\" }}\n  - id: three\n    shell: {{ script: \"echo three >> {}\" }}\n",
            count.display()
        ),
    );
    let arg = p.target.arg();
    let out = Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "run",
        "steps",
        "--target",
        &arg,
    ])
    .env("RUNBOOK_FAILPOINT", "finished:one")
    .run();
    assert_eq!(
        out.code,
        -1,
        "the failpoint kills the run:\n{}",
        out.combined()
    );
    let (id, status) = p.last_run();
    assert_eq!(status, "crashed");
    let gate = p.path().join("gate");
    let (mut holder, holder_id) = hold(&p, &arg, &gate);
    let resume = [
        "resume",
        id.as_str(),
        "--target",
        &arg,
        "--lock-wait",
        "30s",
    ];
    let mut first = start(&p, "a.log", &resume);
    let mut second = start(&p, "b.log", &resume);
    wait_until("both resumes wait for the lock", || {
        ["a.log", "b.log"]
            .iter()
            .all(|l| log(&p, l).contains("waiting up to 30s"))
    });
    assert!(
        log(&p, "a.log").contains(&holder_id),
        "{}",
        log(&p, "a.log")
    );
    std::fs::write(&gate, "").unwrap();
    assert!(holder.wait().unwrap().success(), "{}", log(&p, "hold.log"));
    let codes = [first.wait().unwrap().code(), second.wait().unwrap().code()];
    let (a, b) = (log(&p, "a.log"), log(&p, "b.log"));
    let mut sorted = codes;
    sorted.sort();
    assert_eq!(
        sorted,
        [Some(0), Some(2)],
        "one resume finishes the run, the other finds it finished:\n{a}\n---\n{b}"
    );
    let refused = if codes[0] == Some(2) { &a } else { &b };
    assert!(
        refused.contains(&format!(
            "run {id} finished (succeeded) while this resume waited for the lock; nothing ran"
        )),
        "{refused}"
    );
    assert_eq!(
        effects(&p),
        ["one", "two"],
        "every side effect exactly once"
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "three\n");
    assert_eq!(finished_events(&p, &id), ("1".to_owned(), 1));
    assert_eq!(p.status_json(&id)["run"]["status"], "succeeded");
}

#[test]
fn two_resumes_of_one_crashed_run_finish_it_once_on_sqlite() {
    concurrent_resumes(Target::sqlite);
}

#[test]
fn two_resumes_of_one_crashed_run_finish_it_once_on_postgres() {
    concurrent_resumes(|_| Target::postgres("lock"));
}

/// While one resume runs the rest of a crashed run, another gives up after its --lock-wait
/// (exit 4), naming the run that holds the target; the run's steps run once.
#[test]
fn a_resume_waits_for_a_running_resume_then_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new(|_| Target::sqlite(dir.path()));
    let gate = p.path().join("gate");
    let count = p.path().join("count");
    p.playbook(
        "gated",
        &format!(
            "name: gated\nsteps:\n  - id: one\n    shell: {{ argv: [\"true\"] }}\n  - id: two\n    shell: {{ script: \"while [ ! -e {} ]; do sleep 0.05; done; echo two >> {}\" }}\n",
            gate.display(),
            count.display()
        ),
    );
    let arg = p.target.arg();
    let out = Runbook::new(&[
        "-C",
        &p.path().display().to_string(),
        "run",
        "gated",
        "--target",
        &arg,
    ])
    .env("RUNBOOK_FAILPOINT", "finished:one")
    .run();
    assert_eq!(
        out.code,
        -1,
        "the failpoint kills the run:\n{}",
        out.combined()
    );
    let (id, _) = p.last_run();
    let mut first = start(
        &p,
        "a.log",
        &["resume", &id, "--target", &arg, "--lock-wait", "30s"],
    );
    wait_until("the first resume runs step two", || {
        p.status_json(&id)["steps"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["step"] == "two" && s["status"] == "running")
        })
    });
    let refused = p.resume(&id, &["--lock-wait", "1s"]);
    assert_eq!(refused.code, 4, "{}", refused.combined());
    assert!(
        refused.stderr.contains("waiting up to 1s"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains(&format!("in use by another run (run={id} ")),
        "the refusal names the holder: {}",
        refused.stderr
    );
    std::fs::write(&gate, "").unwrap();
    assert!(first.wait().unwrap().success(), "{}", log(&p, "a.log"));
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "two\n");
    assert_eq!(finished_events(&p, &id), ("1".to_owned(), 1));
}

/// While a run holds `real.db`, a run on `alias.db` (a symlink to it) or on a path through
/// `..` is refused, naming the holder; once it is released, the alias runs.
#[test]
fn a_sqlite_target_is_locked_by_its_file_whatever_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new(|_| Target::Sqlite(dir.path().join("real.db")));
    std::os::unix::fs::symlink("real.db", dir.path().join("alias.db")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    p.playbook(
        "ok",
        "name: ok\nsteps:\n  - id: yes\n    shell: { argv: [\"true\"] }\n",
    );
    let gate = p.path().join("gate");
    let (mut holder, holder_id) = hold(&p, &p.target.arg(), &gate);
    for other in ["alias.db", "sub/../real.db"] {
        let target = format!("sqlite:{}", dir.path().join(other).display());
        let refused = p.cmd(&["run", "ok", "--target", &target]);
        assert_eq!(refused.code, 4, "{other}: {}", refused.combined());
        assert!(
            refused.stderr.contains(&holder_id),
            "{other}: the refusal names the holder: {}",
            refused.stderr
        );
    }
    std::fs::write(&gate, "").unwrap();
    assert!(holder.wait().unwrap().success(), "{}", log(&p, "hold.log"));
    let alias = format!("sqlite:{}", dir.path().join("alias.db").display());
    let next = p.cmd(&["run", "ok", "--target", &alias]);
    assert_eq!(next.code, 0, "{}", next.combined());
}

/// A run on a SQLite database that does not exist yet is locked by the file it will be: a
/// symlink to it and a path through `..` are refused while it runs.
#[test]
fn a_new_sqlite_target_is_locked_by_the_file_it_will_be() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new(|_| Target::Sqlite(dir.path().join("new.db")));
    std::os::unix::fs::symlink("new.db", dir.path().join("dangling.db")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    p.playbook(
        "ok",
        "name: ok\nsteps:\n  - id: yes\n    shell: { argv: [\"true\"] }\n",
    );
    let gate = p.path().join("gate");
    // The holder locks through a symlink to a file that does not exist yet (the run creates
    // it after taking the lock).
    let via_link = format!("sqlite:{}", dir.path().join("dangling.db").display());
    let (mut holder, holder_id) = hold(&p, &via_link, &gate);
    for other in ["new.db", "sub/../new.db"] {
        let target = format!("sqlite:{}", dir.path().join(other).display());
        let refused = p.cmd(&["run", "ok", "--target", &target]);
        assert_eq!(refused.code, 4, "{other}: {}", refused.combined());
        assert!(refused.stderr.contains(&holder_id), "{}", refused.stderr);
    }
    std::fs::write(&gate, "").unwrap();
    assert!(holder.wait().unwrap().success(), "{}", log(&p, "hold.log"));
}

/// Today's weekday in UTC, shifted by `offset` days, as a window names it.
fn weekday(offset: i64) -> &'static str {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 1970-01-01 was a Thursday (3).
    days[((secs / 86400 + 3 + offset).rem_euclid(7)) as usize]
}

/// What the lock's connection opened while a run is checked must keep: the lock is taken only
/// once every check has passed, so a run its checks refuse (here, its environment is outside
/// its maintenance window) is refused for that, at once, even while another run holds the
/// target and it was given `--lock-wait`; it never waits for the lock nor names its holder.
/// Nor is it refused for a state store that does not open.
#[test]
fn a_refused_run_never_takes_the_postgres_lock_it_connected_for() {
    let p = Project::new(|_| Target::postgres("lockrefused"));
    std::fs::write(
        p.path().join("runbook.yaml"),
        format!(
            "environments:\n  dev:\n    target: {{ sqlite: dev.db }}\n    allow_target_override: true\n  maint:\n    target: {{ sqlite: m.db }}\n    allow_target_override: true\n    protections:\n      windows: [{{ days: [{}], start: \"00:00\", end: \"23:59\", tz: UTC }}]\n",
            weekday(2)
        ),
    )
    .unwrap();
    let gate = p.path().join("gate");
    let (mut holder, id) = hold(&p, &p.target.arg(), &gate);
    p.playbook(
        "windowed",
        "name: windowed\nsteps:\n  - id: change\n    sql: { query: \"CREATE TABLE windowed (x INTEGER)\" }\n",
    );
    let out = p.run("windowed", &["--env", "maint", "--lock-wait", "30s"]);
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr.contains("outside its maintenance windows"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("in use by another run"),
        "a refused run waited for the lock: {}",
        out.stderr
    );
    // Nor is it refused for a state store it cannot open: the store opens while the run is
    // checked, and its failure is reported only once every check has passed.
    let out = p.run(
        "windowed",
        &[
            "--env",
            "maint",
            "--state",
            "postgres://runbook@127.0.0.1:1/state",
        ],
    );
    assert_eq!(out.code, 7, "{}", out.combined());
    assert!(
        out.stderr.contains("outside its maintenance windows")
            && !out.stderr.contains("state store"),
        "{}",
        out.stderr
    );
    // The holder still holds it, and its run finishes.
    std::fs::write(&gate, "").unwrap();
    assert!(holder.wait().unwrap().success(), "{}", log(&p, "hold.log"));
    assert_eq!(finished_events(&p, &id), ("1".to_owned(), 1));
    assert!(p.target.query("SELECT to_regclass('windowed') IS NULL") == ["t"]);
}

/// A run started through a link named otherwise (runbook installed as `rb`) is runbook's while
/// it lives: `runs` shows it running, not crashed, and a resume of it is refused. Its playbook
/// has no target, so no target's lock stands between the two. Before, a process not named
/// `runbook` was taken for a pid reused by another program: `runs` said crashed, and the resume
/// called the running step's outcome unknown and offered `--retry-step`, which would have run
/// it a second time beside the first.
#[test]
fn a_run_of_runbook_under_another_name_is_not_taken_for_crashed() {
    a_live_run_is_refused_a_resume(|dir| {
        let link = dir.join("rb");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_runbook"), &link).unwrap();
        link
    });
}

/// The same with another executable file, named otherwise (another version installed beside
/// this one as `runbook-1.2`): neither its name nor its file is this runbook's, and before the
/// run recorded its process's start time, the resume took it for a pid reused by another
/// program and went ahead.
#[test]
fn a_run_of_another_runbook_executable_is_not_taken_for_crashed() {
    a_live_run_is_refused_a_resume(|dir| {
        let other = dir.join("runbook-1.2");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_runbook"), &other).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_runbook"), &other).unwrap();
        }
        other
    });
}

/// The latest run `runs --format json` lists in `project` (with the state store options
/// `state`).
fn latest_run(project: &str, state: &[&str]) -> Option<serde_json::Value> {
    let mut args = vec!["-C", project, "runs", "--format", "json"];
    args.extend(state);
    let out = Runbook::new(&args).run();
    serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap_or_default()["runs"]
        .as_array()
        .and_then(|r| r.first().cloned())
}

/// A project folder of its own with the playbook `hold` (no target): the folder, the gate
/// that ends its step, and the folder's path as `-C` takes it.
fn holding_project() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::fs::write(
        dir.path().join("playbooks").join("hold.yaml"),
        holding_yaml(&gate),
    )
    .unwrap();
    let project = dir.path().display().to_string();
    (dir, gate, project)
}

/// Runs the holding playbook with the executable `make` puts in the project folder, and
/// checks that `runs` shows it running and that this runbook refuses to resume it.
fn a_live_run_is_refused_a_resume(make: impl Fn(&std::path::Path) -> std::path::PathBuf) {
    let (dir, gate, project) = holding_project();
    let link = make(dir.path());
    let mut run = Running(
        Runbook::via(&link, &["-C", &project, "run", "hold"]).start(&dir.path().join("rb.log")),
    );
    let runs = || latest_run(&project, &[]);
    wait_until("the run is recorded", || {
        runs().is_some_and(|r| r["status"].is_string())
    });
    let recorded = runs().unwrap();
    assert_eq!(recorded["status"], "running", "{recorded:#}");
    let id = recorded["run_id"].as_str().unwrap().to_owned();
    // In the background: a resume that went ahead would wait for the gate in the run's step.
    let mut resume = Running(
        Runbook::new(&["-C", &project, "resume", &id]).start(&dir.path().join("resume.log")),
    );
    wait_until(
        "the resume ends (one that went ahead waits for the gate)",
        || resume.0.try_wait().unwrap().is_some(),
    );
    let refused = resume.0.wait().ok();
    let said = std::fs::read_to_string(dir.path().join("resume.log")).unwrap_or_default();
    assert_eq!(
        refused.and_then(|s| s.code()),
        Some(4),
        "the resume of a live run was not refused:\n{said}"
    );
    assert!(said.contains("is still running"), "{said}");
    std::fs::write(&gate, "").unwrap();
    let status = run.0.wait().unwrap();
    let printed = std::fs::read_to_string(dir.path().join("rb.log")).unwrap_or_default();
    assert!(status.success(), "{printed}");
}

/// A resumed run is its resuming process's while that lives: a second resume of it is refused
/// (its playbook has no target, so no target's lock stands between the two). The resume
/// records its own process's start time; judged by the crashed process's, the resumed run
/// would look crashed again, and a second resume would run its step beside the first.
#[test]
fn a_resumed_run_is_refused_a_second_resume_while_it_lives() {
    second_resume_refused(&[]);
}

/// The same with the state store on PostgreSQL.
#[test]
fn a_resumed_run_is_refused_a_second_resume_while_it_lives_on_a_postgres_store() {
    let state = crate::support::pg::cluster().create_db("resumes");
    second_resume_refused(&["--state", &state]);
}

fn second_resume_refused(state: &[&str]) {
    let (dir, gate, project) = holding_project();
    let runs = || latest_run(&project, state);
    let status = || runs().map(|r| r["status"].as_str().unwrap_or_default().to_owned());
    let mut args = vec!["-C", &project, "run", "hold"];
    args.extend(state);
    let mut run = Running(Runbook::new(&args).start(&dir.path().join("run.log")));
    wait_until("the run is recorded", || {
        if run.0.try_wait().ok().flatten().is_some() {
            panic!(
                "the run ended: {}",
                std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default()
            );
        }
        status().as_deref() == Some("running")
    });
    let id = runs().unwrap()["run_id"].as_str().unwrap().to_owned();
    run.0.kill().unwrap(); // SIGKILL
    run.0.wait().unwrap();
    assert_eq!(status().as_deref(), Some("crashed"));
    let resume = |log: &str| {
        let mut args = vec!["-C", &project, "resume", &id, "--retry-step", "hold"];
        args.extend(state);
        Running(Runbook::new(&args).start(&dir.path().join(log)))
    };
    let mut first = resume("first.log");
    wait_until("the resumed run shows as running", || {
        status().as_deref() == Some("running")
    });
    let mut second = resume("second.log");
    let refused = second.0.wait().ok().and_then(|s| s.code());
    let said = std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default();
    assert_eq!(refused, Some(4), "a second resume went ahead:\n{said}");
    assert!(said.contains("is still running"), "{said}");
    std::fs::write(&gate, "").unwrap();
    let done = first.0.wait().unwrap();
    let printed = std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default();
    assert!(done.success(), "{printed}");
    assert_eq!(status().as_deref(), Some("succeeded"));
}

/// Ctrl-C while a run waits for the lock (`--lock-wait`) stops the wait at once: nothing ran,
/// exit 4. It went on waiting for the whole `--lock-wait` (the run then started, only to be
/// interrupted before its first step).
#[test]
fn ctrl_c_stops_waiting_for_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new(|_| Target::sqlite(dir.path()));
    let gate = p.path().join("gate");
    let target = p.target.arg();
    // However the test ends, the holder's gate opens and both runs end (killed after 5 s),
    // before the project's folder goes.
    struct Cleanup(std::path::PathBuf, Vec<Child>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::write(&self.0, "");
            for c in &mut self.1 {
                for _ in 0..100 {
                    if !matches!(c.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let (holder, _) = hold(&p, &target, &gate);
    let mut cleanup = Cleanup(gate.clone(), vec![holder]);
    p.playbook(
        "after",
        "name: after\nsteps:\n  - id: make\n    sql: { query: \"CREATE TABLE after_wait (x INTEGER)\" }\n",
    );
    cleanup.1.push(start(
        &p,
        "wait.log",
        &["run", "after", "--target", &target, "--lock-wait", "60s"],
    ));
    let waiting_pid = cleanup.1[1].id();
    wait_until("the second run waits for the lock", || {
        log(&p, "wait.log").contains("waiting up to")
    });
    let sent = std::process::Command::new("kill")
        .args(["-INT", &waiting_pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut status = None;
    wait_until("the waiting run stops after Ctrl-C", || {
        status = cleanup.1[1].try_wait().unwrap();
        status.is_some()
    });
    std::fs::write(&gate, "").unwrap();
    let held = cleanup.1[0].wait().unwrap();
    let text = log(&p, "wait.log");
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{text}");
    assert!(text.contains("stopped waiting"), "{text}");
    assert_eq!(held.code(), Some(0), "{}", log(&p, "hold.log"));
    assert!(
        p.target
            .query("SELECT name FROM sqlite_master WHERE name = 'after_wait'")
            .is_empty(),
        "the interrupted run ran its step"
    );
}
