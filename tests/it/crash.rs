//! The crash test: a run is killed with SIGKILL at every step boundary and in the middle of
//! steps; after each kill `runbook resume` (with --retry-step or --skip-step where asked)
//! finishes the run, and every side effect happened exactly once.

use crate::support::Output;
use crate::support::{Project, Target};
use std::path::Path;
use std::time::Duration;

const STEPS: [&str; 4] = ["s1", "s2", "s3", "s4"];

fn playbook() -> String {
    let mut text = String::from(
        "name: crash\nsteps:\n  - id: setup\n    sql: { query: \"CREATE TABLE IF NOT EXISTS effects (step TEXT NOT NULL)\" }\n",
    );
    for s in STEPS {
        text.push_str(&format!(
            "  - id: {s}\n    sql: {{ query: \"INSERT INTO effects (step) VALUES ($1)\", params: [{s}] }}\n"
        ));
    }
    text
}

fn effects(p: &Project) -> Vec<String> {
    p.target.query("SELECT step FROM effects ORDER BY step")
}

/// Resumes the run to the end, answering "was it done?" by looking at the target, as an
/// operator would. Returns how many decisions were needed (0 or 1: one step at most is in
/// flight when a run dies).
fn finish(p: &Project, run_id: &str) -> usize {
    let out = p.resume(run_id, &[]);
    if out.code == 0 {
        return 0;
    }
    assert_eq!(
        out.code,
        2,
        "resume failed unexpectedly:\n{}",
        out.combined()
    );
    assert!(out.stderr.contains("was in flight"), "{}", out.stderr);
    let step = out
        .stderr
        .split("step `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .expect("the refusal names the step")
        .to_owned();
    // Creating the table is idempotent, so it is always retried; the inserts are checked.
    let done = step != "setup" && effects(p).contains(&step);
    let flag = if done { "--skip-step" } else { "--retry-step" };
    let out = p.resume(run_id, &[flag, &step]);
    assert_eq!(
        out.code,
        0,
        "resume {flag} {step} failed:\n{}",
        out.combined()
    );
    1
}

/// `runbook run crash` on the project's target with the failpoint `at` set.
fn killed_at(p: &Project, at: &str) -> Output {
    let target = p.target.arg();
    p.base(&["run", "crash", "--target", &target])
        .env("RUNBOOK_FAILPOINT", at)
        .run()
}

fn crash_everywhere(target: impl Fn(&Path) -> Target) {
    let mut cases = 0;
    for step in std::iter::once("setup").chain(STEPS) {
        for point in ["started", "acted", "finished"] {
            let p = Project::new(&target);
            p.playbook("crash", &playbook());
            let out = killed_at(&p, &format!("{point}:{step}"));
            assert_eq!(
                out.code,
                -1,
                "{point}:{step} should have killed the run:\n{}",
                out.combined()
            );
            let (id, status) = p.last_run();
            assert_eq!(status, "crashed", "a killed run shows as crashed");
            let decisions = finish(&p, &id);
            // A kill between `started` and `finished` leaves the step's outcome unknown.
            let expected = if point == "finished" { 0 } else { 1 };
            assert_eq!(decisions, expected, "{point}:{step}");
            assert_eq!(
                effects(&p),
                STEPS,
                "{point}:{step}: every side effect exactly once"
            );
            assert_eq!(p.last_run().1, "succeeded");
            let events = p.status_json(&id);
            let steps = events["steps"].as_array().unwrap();
            assert!(
                steps
                    .iter()
                    .all(|s| s["status"] == "succeeded" || s["status"] == "skipped"),
                "{point}:{step}: {steps:?}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 15);
}

#[test]
fn sigkill_at_every_boundary_then_resume_gives_exactly_once_on_sqlite() {
    crash_everywhere(Target::sqlite);
}

#[test]
fn sigkill_at_every_boundary_then_resume_gives_exactly_once_on_postgres() {
    crash_everywhere(|_| Target::postgres("crash"));
}

/// The journal's boundaries (issue 20): each event's record is written to the audit chain
/// without an fsync, then committed durably to the state store with its line. `written` kills
/// the run between the two (the chain one record ahead of the store); `lost` kills it after
/// the commit with the chain first cut back to what was fsynced, as a power cut leaves it (the
/// chain loses every record since it was opened, the store has them all). Every case resumes
/// to exactly-once effects, with an operator's decision only where the store says the step
/// started and not that it finished; the chain verifies after the resume (and before it, where
/// it is not behind the store); a `lost` chain is written back from the store.
fn crash_at_journal_boundaries(target: impl Fn(&Path) -> Target) {
    let cases = [
        ("lost", "run_started", "run", 0),
        ("written", "step_started", "setup", 0),
        ("written", "step_finished", "s2", 1),
        ("written", "step_started", "s4", 0),
        ("lost", "step_started", "setup", 1),
        ("lost", "step_finished", "s2", 0),
        ("lost", "step_started", "s4", 1),
        ("lost", "step_finished", "s4", 0),
    ];
    for (point, event, step, decisions) in cases {
        let at = format!("{point}:{event}:{step}");
        let p = Project::new(&target);
        p.playbook("crash", &playbook());
        let out = killed_at(&p, &at);
        assert_eq!(
            out.code,
            -1,
            "{at} should have killed the run:\n{}",
            out.combined()
        );
        let (id, status) = p.last_run();
        assert_eq!(status, "crashed", "{at}");
        let verify = p.cmd(&["audit", "verify", &id]);
        if point == "written" {
            assert_eq!(verify.code, 0, "{at}: {}", verify.combined());
        } else {
            assert_eq!(
                verify.code,
                6,
                "{at}: the chain is behind the store until resume: {}",
                verify.combined()
            );
        }
        assert_eq!(finish(&p, &id), decisions, "{at}");
        assert_eq!(effects(&p), STEPS, "{at}: every side effect exactly once");
        assert_eq!(p.last_run().1, "succeeded", "{at}");
        let verify = p.cmd(&["audit", "verify", &id]);
        assert_eq!(verify.code, 0, "{at}: {}", verify.combined());
        let chain = chain_text(&p, &id);
        assert!(
            chain
                .lines()
                .next()
                .is_some_and(|l| l.contains("\"event\":\"run_started\"")),
            "{at}: the chain starts with the run's first record again:\n{chain}"
        );
    }
}

#[test]
fn a_crash_at_each_journal_boundary_resumes_and_verifies_on_sqlite() {
    crash_at_journal_boundaries(Target::sqlite);
}

#[test]
fn a_crash_at_each_journal_boundary_resumes_and_verifies_on_postgres() {
    crash_at_journal_boundaries(|_| Target::postgres("journal"));
}

/// The run's audit chain as text (empty when there is none).
fn chain_text(p: &Project, id: &str) -> String {
    std::fs::read_to_string(p.path().join(".runbook/audit").join(format!("{id}.jsonl")))
        .unwrap_or_default()
}

/// How many complete records the run's audit chain holds, and how far the state store notes
/// it was fsynced: a chain found shorter than the note was cut, which no crash does.
fn chain_and_note(p: &Project, id: &str) -> (i64, i64) {
    (chain_text(p, id).lines().count() as i64, p.audit_synced(id))
}

/// A run's last record is fsynced in the chain before the state store commits it, and that
/// commit notes the chain as fsynced through it: a power cut right after the commit
/// (`lost:run_finished:run`, the chain cut back to what was fsynced) takes nothing from the
/// chain, which verifies without a resume to write it back.
fn the_last_record_is_in_the_chain_before_the_store_commits_it(target: impl Fn(&Path) -> Target) {
    let p = Project::new(&target);
    p.playbook("crash", &playbook());
    let out = killed_at(&p, "lost:run_finished:run");
    assert_eq!(out.code, -1, "{}", out.combined());
    let (id, status) = p.last_run();
    assert_eq!(status, "succeeded");
    let verify = p.cmd(&["audit", "verify", &id]);
    assert_eq!(verify.code, 0, "{}", verify.combined());
    let (records, note) = chain_and_note(&p, &id);
    assert_eq!(records, note, "the store notes the whole chain as fsynced");
    let chain = chain_text(&p, &id);
    assert!(
        chain
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"event\":\"run_finished\"")),
        "{chain}"
    );
}

#[test]
fn the_last_record_is_fsynced_before_its_commit_on_sqlite() {
    the_last_record_is_in_the_chain_before_the_store_commits_it(Target::sqlite);
}

#[test]
fn the_last_record_is_fsynced_before_its_commit_on_postgres() {
    the_last_record_is_in_the_chain_before_the_store_commits_it(|_| Target::postgres("synced"));
}

/// A real `kill -9` in the middle of a long step, with no failpoint: the step is in flight.
#[test]
fn sigkill_in_the_middle_of_a_step_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new(|_| Target::sqlite(dir.path()));
    let marker = dir.path().join("slow-done");
    p.playbook(
        "slow",
        &format!(
            "name: slow\nsteps:\n  - id: setup\n    sql: {{ query: \"CREATE TABLE IF NOT EXISTS effects (step TEXT)\" }}\n  - id: slow\n    shell: {{ script: \"sleep 3 && touch {}\" }}\n  - id: after\n    sql: {{ query: \"INSERT INTO effects VALUES ('after')\" }}\n",
            marker.display()
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "-q",
            "-C",
            &p.path().display().to_string(),
            "run",
            "slow",
            "--target",
            &p.target.arg(),
        ])
        .spawn()
        .unwrap();
    let mut id = String::new();
    for _ in 0..200 {
        let out = p.cmd(&["runs", "--format", "json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && let Some(run) = v["runs"][0]["run_id"].as_str()
        {
            let st = p.status_json(run);
            if st["steps"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["step"] == "slow" && s["status"] == "running")
            }) {
                id = run.to_owned();
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!id.is_empty(), "the slow step never started");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let out = p.cmd(&["status", &id]);
    assert!(
        out.stdout.contains("unknown"),
        "an in-flight step of a dead run shows as unknown:\n{}",
        out.stdout
    );
    // `runbook runs` says what `status` and the JSON say: crashed, not running.
    let runs = p.cmd(&["runs"]);
    let line = runs
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{}", runs.stdout));
    assert!(
        line.contains("crashed") && !line.contains("running"),
        "{line}"
    );
    let refused = p.resume(&id, &[]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("--retry-step slow"),
        "{}",
        refused.stderr
    );
    let out = p.resume(&id, &["--retry-step", "slow"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(marker.exists());
    assert_eq!(p.target.query("SELECT step FROM effects"), ["after"]);
}

/// Ctrl-C stops the child, marks the run interrupted (exit 5), and resume finishes it.
#[test]
fn ctrl_c_interrupts_and_the_run_can_be_resumed() {
    interrupted_by(libc::SIGINT);
}

/// SIGTERM (`kill`, a service manager, a cancelled CI job) is handled like Ctrl-C.
#[test]
fn sigterm_interrupts_like_ctrl_c() {
    interrupted_by(libc::SIGTERM);
}

/// SIGHUP (the terminal or SSH session went away) is handled like Ctrl-C.
#[test]
fn sighup_interrupts_like_ctrl_c() {
    interrupted_by(libc::SIGHUP);
}

fn interrupted_by(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let p = Project::new(|_| Target::sqlite(dir.path()));
    let pidfile = dir.path().join("sleep.pid");
    p.playbook(
        "long",
        &format!(
            "name: long\nsteps:\n  - id: long\n    shell: {{ script: \"sleep 60 & echo $! > {}; wait\" }}\n  - id: after\n    shell: {{ argv: [\"true\"] }}\n",
            pidfile.display()
        ),
    );
    let out = signalled_when(&p, "long", signal, Duration::ZERO, || {
        pidfile.exists() && !std::fs::read_to_string(&pidfile).unwrap().trim().is_empty()
    });
    let sleep_pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signal 0 only checks whether the process exists.
    let gone = unsafe { libc::kill(sleep_pid, 0) } != 0
        || std::fs::read_to_string(format!("/proc/{sleep_pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true);
    assert!(gone, "the step's child survived signal {signal}");
    let (id, status) = p.last_run();
    assert_eq!(status, "interrupted");
    // The interrupted run's chain was fsynced through its last record, and the store says so.
    let (records, note) = chain_and_note(&p, &id);
    assert!(records > 0);
    assert_eq!(records, note);
    // The message names the commands that work (a plain resume is refused for the step in
    // flight).
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("`runbook resume {id} --retry-step long`"))
            && said.contains(&format!("`runbook resume {id} --skip-step long`")),
        "{said}"
    );
    let out = p.resume(&id, &["--skip-step", "long"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(p.last_run().1, "succeeded");
}

/// Ctrl-C while a step waits to retry (its attempt failed, another is due): nothing is in
/// flight and the failure was not the step's last word. The run is interrupted (exit 5), the
/// message says a plain resume, and the resume runs the step again (here it then succeeds)
/// rather than taking the failed attempt for the step's verdict and rolling the run back.
#[test]
fn ctrl_c_while_a_step_waits_to_retry_resumes_by_retrying_it() {
    let dir = tempfile::tempdir().unwrap();
    let tried = dir.path().join("tried");
    let undone = dir.path().join("undone");
    let p = interrupted_in_retry_wait(
        &dir,
        &format!(
            "name: flaky\nsteps:\n  - id: first\n    shell: {{ argv: [\"true\"] }}\n    rollback:\n      - id: undo_first\n        shell: {{ script: \"touch {undone}\" }}\n  - id: flaky\n    shell: {{ script: \"if [ -e {tried} ]; then echo ok; else touch {tried}; exit 1; fi\" }}\n    retry: {{ attempts: 2, delay: 60s }}\n  - id: after\n    shell: {{ argv: [\"true\"] }}\n",
            tried = tried.display(),
            undone = undone.display()
        ),
        &tried,
    );
    let (id, _) = p.last_run();
    let out = p.resume(&id, &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(p.last_run().1, "succeeded");
    assert!(
        !undone.exists(),
        "the run was rolled back: {}",
        out.combined()
    );
    let status = p.status_json(&id);
    let steps = status["steps"].as_array().unwrap();
    let flaky = steps.iter().find(|s| s["step"] == "flaky").unwrap();
    assert_eq!(flaky["status"], "succeeded", "{status}");
}

/// The same for a `finally` step: the resume runs it again (it was taken for done, and the
/// run ended succeeded without its second attempt).
#[test]
fn ctrl_c_while_a_finally_step_waits_to_retry_resumes_by_retrying_it() {
    let dir = tempfile::tempdir().unwrap();
    let tried = dir.path().join("tried");
    let again = dir.path().join("again");
    let p = interrupted_in_retry_wait(
        &dir,
        &format!(
            "name: flaky\nsteps:\n  - id: first\n    shell: {{ argv: [\"true\"] }}\nfinally:\n  - id: tidy\n    shell: {{ script: \"if [ -e {tried} ]; then touch {again}; else touch {tried}; exit 1; fi\" }}\n    retry: {{ attempts: 2, delay: 60s }}\n",
            tried = tried.display(),
            again = again.display()
        ),
        &tried,
    );
    let (id, _) = p.last_run();
    let out = p.resume(&id, &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        again.exists(),
        "the finally step did not run again: {}",
        out.combined()
    );
    assert_eq!(p.last_run().1, "succeeded");
}

/// Runs playbook `flaky` until its flaky step's first attempt failed (`tried` made) and it
/// waits to retry, then sends Ctrl-C: exit 5, interrupted, with plain resume advice.
fn interrupted_in_retry_wait(dir: &tempfile::TempDir, playbook: &str, tried: &Path) -> Project {
    let p = Project::new(|_| Target::sqlite(dir.path()));
    p.playbook("flaky", playbook);
    // The first attempt failed once its marker is there; its record is written before the
    // wait begins (given half a second).
    let out = signalled_when(
        &p,
        "flaky",
        libc::SIGINT,
        Duration::from_millis(500),
        || tried.exists(),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{said}");
    let (id, status) = p.last_run();
    assert_eq!(status, "interrupted");
    assert!(
        said.contains(&format!("`runbook resume {id}`")) && !said.contains("--retry-step"),
        "{said}"
    );
    p
}

/// Runs playbook `name` in the background, sends it `signal` `settle` after `ready` (polled
/// every 50 ms, for at most 10 s), and gives what it printed and how it exited.
fn signalled_when(
    p: &Project,
    name: &str,
    signal: i32,
    settle: Duration,
    ready: impl Fn() -> bool,
) -> std::process::Output {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "-C",
            &p.path().display().to_string(),
            "run",
            name,
            "--target",
            &p.target.arg(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if ready() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(settle);
    // SAFETY: sending a signal to the child we started.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap()
}
