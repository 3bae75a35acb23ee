//! The shipped `rollback` and `restore` playbooks without `from`, on real SQLite and real
//! PostgreSQL: the newest verified backup of the target is chosen and shown (time, size,
//! sha256, row counts) before the confirmation is asked; a corrupt one is skipped saying why;
//! pre-restore backups and other databases' backups are never taken; with none, the run fails
//! before the gate asks anything and nothing changes.

use crate::support::pg;
use crate::support::{Output, Runbook, Target, repo};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A project of the repository's playbooks, migrations and seeds, whose protected
/// environment `t` is the target and `u` another database; both back up to `backups/`.
struct Shipped {
    dir: tempfile::TempDir,
    target: Target,
    other: Target,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

impl Shipped {
    fn sqlite() -> Shipped {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Sqlite(dir.path().join("app.db"));
        let other = Target::Sqlite(dir.path().join("other.db"));
        Shipped::with(
            dir,
            target,
            other,
            "{ sqlite: app.db }",
            "{ sqlite: other.db }",
        )
    }

    fn postgres(prefix: &str) -> Shipped {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::postgres(prefix);
        let other = Target::postgres(prefix);
        Shipped::with(
            dir,
            target,
            other,
            "{ url_env: T_DATABASE_URL }",
            "{ url_env: U_DATABASE_URL }",
        )
    }

    fn with(dir: tempfile::TempDir, target: Target, other: Target, t: &str, u: &str) -> Shipped {
        for sub in ["playbooks", "migrations", "seeds"] {
            copy_tree(&repo().join(sub), &dir.path().join(sub));
        }
        let env = |target: &str| {
            format!(
                "    target: {target}\n    vars: {{ backup_dir: backups, min_free_disk_percent: 1, seed_set: development }}\n    protections: {{ protected: true, approvals: 1, self_approval: true }}\n"
            )
        };
        std::fs::write(
            dir.path().join("runbook.yaml"),
            format!(
                "environments:\n  t:\n{}  u:\n{}secrets: [T_DATABASE_URL, U_DATABASE_URL]\n",
                env(t),
                env(u)
            ),
        )
        .unwrap();
        Shipped { dir, target, other }
    }

    fn runbook(&self, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs)
            .env("T_DATABASE_URL", &self.target.arg())
            .env("U_DATABASE_URL", &self.other.arg())
            .run()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.runbook(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.combined());
        out
    }

    fn deploy(&self) {
        self.ok(&["run", "deploy", "--env", "t", "--approve", "approve"]);
    }

    fn backup(&self, env: &str) {
        self.ok(&["run", "backup", "--env", env]);
    }

    fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// The name the confirm gate wants.
    fn db(&self) -> String {
        match &self.target {
            Target::Sqlite(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
            Target::Postgres(url) => url.rsplit('/').next().unwrap().to_owned(),
        }
    }

    fn plans(&self) -> u64 {
        self.target.query(r#"SELECT count(*) FROM "Plan""#)[0]
            .parse()
            .unwrap()
    }

    fn delete_plans(&self, filter: &str) {
        self.target
            .query(&format!(r#"DELETE FROM "Plan" WHERE {filter}"#));
    }

    /// The newest run's id.
    fn last_run(&self) -> String {
        let runs = self.ok(&["runs", "--format", "json"]);
        let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
        runs["runs"][0]["run_id"].as_str().unwrap().to_owned()
    }

    /// The outputs of step `id` of the newest run.
    fn outputs(&self, id: &str) -> Value {
        self.outputs_of(&self.last_run(), id)
    }

    fn outputs_of(&self, run: &str, id: &str) -> Value {
        let st = self.ok(&["status", run, "--format", "json"]);
        let st: Value = serde_json::from_str(&st.stdout).unwrap();
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .unwrap_or_else(|| panic!("no step {id} in {st}"))["outputs"]
            .clone()
    }
}

/// The backups (not pre-restore) in `dir`, oldest first: manifest path and manifest.
fn backups(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .map(|p| {
            let m: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, m)
        })
        .filter(|(_, m)| m["purpose"] == "backup")
        .collect();
    out.sort_by(|a, b| {
        let t = |m: &Value| m["created_at"].as_str().unwrap().to_owned();
        t(&a.1).cmp(&t(&b.1))
    });
    out
}

fn archive(dir: &Path, m: &Value) -> PathBuf {
    dir.join(m["archive"].as_str().unwrap())
}

/// Flips one byte in the middle of an archive.
fn corrupt(archive: &Path) {
    let mut bytes = std::fs::read(archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(archive, bytes).unwrap();
}

/// Where `needle` first appears in `text`, failing with the text when it does not.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"))
}

/// `rows    23 in 10 tables: `, as the shown row counts begin for a manifest.
fn rows_shown(m: &Value) -> String {
    let counts = m["row_counts"].as_object().unwrap();
    let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    format!("rows    {total} in {} tables: ", counts.len())
}

/// The chosen backup's lines come before the confirmation: the backup to restore, its
/// archive, time, size and sha256, row counts, and then the gate naming it.
fn shows_before_the_gate(text: &str, m: &Value) {
    let shown = at(text, "backup to restore, the newest verified backup of");
    let name = m["archive"].as_str().unwrap();
    assert!(at(text, &format!("  archive {name}")) > shown, "{text}");
    let created = chrono::DateTime::parse_from_rfc3339(m["created_at"].as_str().unwrap()).unwrap();
    let taken = created
        .with_timezone(&chrono::Utc)
        .format("  taken   %Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let sha = &m["sha256"].as_str().unwrap()[..12];
    let rows = at(text, &rows_shown(m));
    for line in [taken, format!("sha256 {sha}")] {
        assert!(at(text, &line) > shown, "{line} in {text}");
    }
    let gate = at(text, "waiting confirm (gate)");
    assert!(rows > shown && gate > rows, "{text}");
    assert!(
        text[gate..].contains(&format!("to the backup {name} of ")),
        "the gate names the backup it confirms: {text}"
    );
}

/// (a) After two deploys, `rollback` without `from` takes the second deploy's backup (the
/// newest), shows it before the confirmation, and restores exactly what it showed even when a
/// newer backup appears while the run waits at the gate.
fn rollback_takes_the_newest_deploy_backup(s: &Shipped) {
    s.deploy();
    s.deploy();
    let dir = s.backups();
    let all = backups(&dir);
    assert_eq!(all.len(), 2, "{all:?}");
    let (_, newest) = &all[1];
    assert_eq!(
        newest["row_counts"]["Plan"]
            .as_u64()
            .or(newest["row_counts"]["public.Plan"].as_u64()),
        Some(6)
    );
    s.delete_plans("true");

    let waiting = s.runbook(&["run", "rollback", "--env", "t"]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    shows_before_the_gate(&waiting.stderr, newest);
    assert_eq!(s.plans(), 0, "nothing restored before the confirmation");
    let run = s.last_run();

    // A newer backup (of the database without plans) taken while the run waits is not what
    // the operator was shown, and is not what the run restores.
    s.backup("t");
    assert_eq!(backups(&dir).len(), 3);
    let db = s.db();
    s.ok(&["resume", &run, "--confirm", &db]);
    assert_eq!(s.plans(), 6);
    assert_eq!(
        s.outputs_of(&run, "restore")["path"],
        archive(&dir, newest).display().to_string()
    );
}

#[test]
fn sqlite_rollback_without_from_restores_the_newest_backup_shown_before_the_confirmation() {
    rollback_takes_the_newest_deploy_backup(&Shipped::sqlite());
}

#[test]
fn pg_rollback_without_from_restores_the_newest_backup_shown_before_the_confirmation() {
    rollback_takes_the_newest_deploy_backup(&Shipped::postgres("rb_newest"));
}

/// (b) The newest backup is taken; once it is corrupt, the one before it, saying why; the
/// pre-restore backup the first rollback left (newer than both) is never taken.
#[test]
fn a_corrupt_newest_backup_is_skipped_saying_why_and_pre_restore_backups_are_passed_over() {
    let s = Shipped::sqlite();
    s.deploy();
    s.deploy();
    s.delete_plans("name LIKE 'Enterprise%'");
    s.backup("t");
    s.delete_plans("true");
    let db = s.db();
    let dir = s.backups();
    let all = backups(&dir);
    assert_eq!(all.len(), 3);

    let first = s.ok(&["run", "rollback", "--env", "t", "--confirm", &db]);
    assert_eq!(s.plans(), 4, "the newest backup: {}", first.stderr);
    assert_eq!(
        s.outputs("restore")["path"],
        archive(&dir, &all[2].1).display().to_string()
    );

    s.delete_plans("true");
    corrupt(&archive(&dir, &all[2].1));
    let second = s.ok(&["run", "rollback", "--env", "t", "--confirm", &db]);
    assert_eq!(s.plans(), 6, "the backup before it: {}", second.stderr);
    let name = all[2].1["archive"].as_str().unwrap();
    let skipped = at(&second.stderr, &format!("skipped {name} (taken "));
    assert!(
        second.stderr[skipped..]
            .lines()
            .next()
            .unwrap()
            .contains("is corrupt: sha256"),
        "{}",
        second.stderr
    );
    assert!(
        second
            .stderr
            .contains("passed over newer 1 pre-restore backup, taken only when named with `from`"),
        "{}",
        second.stderr
    );
    assert!(at(&second.stderr, "backup to restore") > skipped);
    assert_eq!(
        s.outputs("restore")["path"],
        archive(&dir, &all[1].1).display().to_string()
    );
}

/// (c) With no backup of the target (only another database's, and a pre-restore backup), the
/// run fails at the first step, exit 1, before the gate asks anything; nothing changes.
#[test]
fn without_a_backup_the_run_fails_before_the_gate_and_changes_nothing() {
    let s = Shipped::sqlite();
    s.deploy();
    std::fs::remove_dir_all(s.backups()).unwrap();
    s.delete_plans("name LIKE 'Basic%'");
    for playbook in ["rollback", "restore"] {
        let out = s.runbook(&["run", playbook, "--env", "t"]);
        assert_eq!(out.code, 1, "{}", out.combined());
        let want = format!(
            "no verified backup of database `app` in {}; take one with `runbook run backup`",
            s.backups().display()
        );
        assert!(out.stderr.contains(&want), "{}", out.stderr);
        for asked in ["Type the database name", "waiting confirm", "(restore)"] {
            assert!(!out.stderr.contains(asked), "{asked}: {}", out.stderr);
        }
        assert_eq!(s.plans(), 4);
        assert!(!s.backups().exists(), "nothing written");
    }

    // Another database's backup in the same folder is never taken, nor a pre-restore backup.
    s.backup("u");
    let dir = s.backups();
    let (_, mut m) = backups(&dir).remove(0);
    std::fs::copy(archive(&dir, &m), dir.join("app_pre.sqlite")).unwrap();
    m["purpose"] = "pre_restore".into();
    m["database"] = "app".into();
    m["archive"] = "app_pre.sqlite".into();
    std::fs::write(
        dir.join("app_pre.manifest.json"),
        serde_json::to_string(&m).unwrap(),
    )
    .unwrap();
    let out = s.runbook(&["run", "rollback", "--env", "t"]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("no verified backup of database `app` in")
            && out
                .stderr
                .contains("(1 pre-restore backup, taken only when named with `from`)"),
        "{}",
        out.stderr
    );
    assert_eq!(s.plans(), 4);
}

/// (d) A newer backup of another database in the same folder is never taken: the target's
/// own is; once that is corrupt, there is none, whatever the other database's backups.
#[test]
fn another_databases_backup_in_the_same_folder_is_never_taken() {
    let s = Shipped::sqlite();
    s.deploy();
    s.backup("t");
    s.ok(&["run", "deploy", "--env", "u", "--approve", "approve"]);
    s.backup("u");
    let dir = s.backups();
    let ours: Vec<Value> = backups(&dir)
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| m["database"] == "app")
        .collect();
    let newest_ours = ours.last().unwrap();
    s.delete_plans("true");
    let db = s.db();
    let out = s.ok(&["run", "rollback", "--env", "t", "--confirm", &db]);
    assert!(
        out.stderr.contains(&format!(
            "  archive {}",
            newest_ours["archive"].as_str().unwrap()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(s.plans(), 6);

    for m in &ours {
        corrupt(&archive(&dir, m));
    }
    s.delete_plans("true");
    let out = s.runbook(&["run", "rollback", "--env", "t", "--confirm", &db]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains(&format!(
            "no verified backup of database `app` in {} ({} backups failed verification",
            dir.display(),
            ours.len()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(s.plans(), 0);
    assert!(!out.stderr.contains("other_"), "{}", out.stderr);
}

/// (e) `restore` without `from` on PostgreSQL: the newest verified backup, shown before the
/// confirmation, restored with a pre-restore backup kept; `from` still names one explicitly.
#[test]
fn pg_restore_without_from_takes_the_newest_verified_backup() {
    let s = Shipped::postgres("rs_newest");
    s.deploy();
    s.deploy();
    s.delete_plans(r#""name" LIKE 'Enterprise%'"#);
    s.backup("t");
    s.delete_plans("true");
    let dir = s.backups();
    let all = backups(&dir);
    let newest = &all[2].1;
    let waiting = s.runbook(&["run", "restore", "--env", "t"]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    let shown = at(
        &waiting.stderr,
        "backup to restore, the newest verified backup of",
    );
    assert!(
        waiting.stderr[shown..].contains(&rows_shown(newest)),
        "{}",
        waiting.stderr
    );
    assert!(at(&waiting.stderr, "waiting confirm (gate)") > shown);

    let db = s.db();
    let out = s.ok(&["run", "restore", "--env", "t", "--confirm", &db]);
    assert_eq!(s.plans(), 4, "{}", out.stderr);
    let o = s.outputs("restore");
    assert_eq!(o["path"], archive(&dir, newest).display().to_string());
    assert!(
        PathBuf::from(o["pre_backup"].as_str().unwrap()).is_file(),
        "{o}"
    );

    // Named with `from`, an older backup is taken (and shown as named).
    let older = archive(&dir, &all[1].1);
    let from = format!("from={}", older.display());
    let out = s.ok(&[
        "run",
        "restore",
        "--env",
        "t",
        "--var",
        &from,
        "--confirm",
        &db,
    ]);
    assert!(
        out.stderr.contains("backup to restore, named by `from`:"),
        "{}",
        out.stderr
    );
    assert_eq!(s.plans(), 6);

    // A corrupt named backup is refused before the gate, not replaced by another.
    corrupt(&older);
    s.delete_plans("true");
    let out = s.runbook(&["run", "restore", "--env", "t", "--var", &from]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("does not verify") && out.stderr.contains("is corrupt"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("waiting confirm"), "{}", out.stderr);
    assert_eq!(s.plans(), 0);
    assert_eq!(pg::cluster().psql(&s.target.arg(), "SELECT 1"), "1");
}

/// `method=revert` needs no backup: the find step is skipped, the gate's message renders
/// without it, and the revert runs.
#[test]
fn rollback_by_revert_needs_no_backup() {
    let s = Shipped::sqlite();
    s.deploy();
    std::fs::remove_dir_all(s.backups()).unwrap();
    let waiting = s.runbook(&["run", "rollback", "--env", "t", "--var", "method=revert"]);
    assert_eq!(waiting.code, 3, "{}", waiting.combined());
    assert!(
        waiting.stderr.contains(
            "skipped backup (find_backup) 0.0s  `when: params.method == \"restore\"` is false"
        ),
        "{}",
        waiting.stderr
    );
    assert!(
        waiting
            .stderr
            .contains("Roll back t by revert. Type the database name to go on"),
        "{}",
        waiting.stderr
    );
    let run = s.last_run();
    let out = s.ok(&["resume", &run, "--confirm", &s.db()]);
    assert!(
        out.stderr
            .contains("reverted `migrations/sqlite/20251218000000_appointment_reason.sql`"),
        "{}",
        out.stderr
    );
}

/// Runs `runbook` as at a person's terminal (stdin, stdout and stderr on a pseudo-terminal),
/// typing `answer` once `prompt` shows; returns what the terminal showed and the exit code.
fn at_terminal(s: &Shipped, args: &[&str], prompt: &str, answer: &str) -> (String, i32) {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, slave) = {
        let (mut m, mut sl) = (0, 0);
        // SAFETY: openpty writes two new descriptors, each owned once below.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut sl,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are open and owned by nothing else.
        unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(sl)) }
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(["--color", "never", "-C"])
        .arg(s.dir.path())
        .args(args)
        .env("T_DATABASE_URL", s.target.arg())
        .env("U_DATABASE_URL", s.other.arg())
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave);
    let mut child = cmd.spawn().unwrap();
    // The terminal reads end-of-file only once no process holds its other side.
    drop(cmd);
    // A run that never exits (a prompt that never came) is killed after two minutes; `done`
    // is set while the child is still unreaped, so its pid cannot have been reused.
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..1200 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            // SAFETY: a signal to our own child, not yet reaped (`done` is unset).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        })
    };
    let (mut seen, mut buf, mut answered) = (String::new(), [0u8; 4096], false);
    // Reading fails (EIO) once the child has exited and closed the terminal.
    while let Ok(n @ 1..) = master.read(&mut buf) {
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !answered && seen.contains(prompt) {
            master.write_all(format!("{answer}\n").as_bytes()).unwrap();
            answered = true;
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let code = child.wait().unwrap().code().unwrap_or(-1);
    watchdog.join().unwrap();
    (seen, code)
}

/// At a terminal, the chosen backup is on the screen before the confirmation prompt, and the
/// answer to the prompt restores it.
#[test]
fn at_a_terminal_the_backup_is_shown_before_the_prompt() {
    let s = Shipped::sqlite();
    s.deploy();
    s.deploy();
    s.delete_plans("true");
    let newest = backups(&s.backups()).remove(1).1;
    let prompt = "Type `app.db` to go on: ";
    let (seen, code) = at_terminal(&s, &["run", "rollback", "--env", "t"], prompt, "app.db");
    assert_eq!(code, 0, "{seen}");
    let shown = at(
        &seen,
        "backup to restore, the newest verified backup of `app`",
    );
    let name = newest["archive"].as_str().unwrap();
    let sha = &newest["sha256"].as_str().unwrap()[..12];
    let asked = at(&seen, prompt);
    for line in [
        format!("  archive {name}"),
        "  taken   ".to_owned(),
        format!("sha256 {sha}"),
        rows_shown(&newest),
        "Roll back t by restore to the backup".to_owned(),
    ] {
        let i = at(&seen, &line);
        assert!(shown < i && i < asked, "`{line}` between:\n{seen}");
    }
    assert!(
        seen[asked..].contains("confirmed at the terminal"),
        "{seen}"
    );
    assert_eq!(s.plans(), 6);
}
