//! A project folder with playbooks, its own state store and a target database the test can
//! also read directly: the fixture builder most integration tests start from.

use super::cli::{Output, Runbook};
use super::{pg, sqlite};
use std::path::{Path, PathBuf};

/// A target database the test can also read directly.
#[derive(Clone)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    pub fn sqlite(dir: &Path) -> Target {
        Target::Sqlite(dir.join("target.db"))
    }

    pub fn postgres(prefix: &str) -> Target {
        Target::Postgres(pg::cluster().create_db(prefix))
    }

    pub fn arg(&self) -> String {
        match self {
            Target::Sqlite(p) => format!("sqlite:{}", p.display()),
            Target::Postgres(url) => url.clone(),
        }
    }

    /// Rows of a query, columns joined with `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        match self {
            Target::Postgres(url) => {
                let out = pg::cluster().psql(url, sql);
                out.lines()
                    .map(str::to_owned)
                    .filter(|l| !l.is_empty())
                    .collect()
            }
            Target::Sqlite(path) => sqlite::query(path, sql),
        }
    }
}

/// A project folder with playbooks, its own state store and a target.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub target: Target,
}

impl Project {
    pub fn new(target: impl FnOnce(&Path) -> Target) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("playbooks")).unwrap();
        let target = target(dir.path());
        Project { dir, target }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn playbook(&self, name: &str, text: &str) -> &Self {
        std::fs::write(
            self.path().join("playbooks").join(format!("{name}.yaml")),
            text,
        )
        .unwrap();
        self
    }

    /// `runbook -C PROJECT ARGS`, to be given environment variables before it runs.
    pub fn base(&self, args: &[&str]) -> Runbook {
        let mut all: Vec<String> = vec!["-C".into(), self.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs)
    }

    /// `runbook run NAME --target T` plus extra arguments.
    pub fn run(&self, name: &str, extra: &[&str]) -> Output {
        let target = self.target.arg();
        let mut args = vec!["run", name, "--target", target.as_str()];
        args.extend(extra);
        self.base(&args).run()
    }

    /// `runbook run NAME --target T` plus extra arguments, started in the background with its
    /// output going to `runbook.log` in the project folder.
    pub fn start(&self, name: &str, extra: &[&str]) -> std::process::Child {
        let target = self.target.arg();
        let mut args = vec!["run", name, "--target", target.as_str()];
        args.extend(extra);
        self.base(&args).start(&self.path().join("runbook.log"))
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        self.base(args).run()
    }

    /// Any command in the project as `user` (RUNBOOK_ACTOR): the operator, or an approver.
    pub fn as_user(&self, user: &str, args: &[&str]) -> Output {
        self.base(args).env("RUNBOOK_ACTOR", user).run()
    }

    pub fn resume(&self, run_id: &str, extra: &[&str]) -> Output {
        let target = self.target.arg();
        let mut args = vec!["resume", run_id, "--target", target.as_str()];
        args.extend(extra);
        self.base(&args).run()
    }

    /// The newest run's id and status.
    pub fn last_run(&self) -> (String, String) {
        let out = self.cmd(&["runs", "--format", "json"]);
        let runs: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.combined()));
        let r = &runs["runs"][0];
        (
            r["run_id"].as_str().unwrap().to_owned(),
            r["status"].as_str().unwrap().to_owned(),
        )
    }

    /// The id of a run of `playbook` recorded as running (a run is recorded only once it holds
    /// its target's lock), waited for up to 20 s.
    pub fn running_run(&self, playbook: &str) -> String {
        for _ in 0..400 {
            let out = self.cmd(&["runs", "--format", "json"]);
            let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            let found = runs["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["playbook"] == playbook && r["status"] == "running")
                .and_then(|r| r["run_id"].as_str().map(str::to_owned));
            if let Some(id) = found {
                return id;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the run of {playbook} never showed as running");
    }

    /// How far the project's SQLite state store notes run `run`'s audit chain as fsynced.
    pub fn audit_synced(&self, run: &str) -> i64 {
        let note = sqlite::query(
            &self.path().join(".runbook/state.db"),
            &format!("SELECT CAST(audit_synced AS TEXT) FROM runbook_runs WHERE id = '{run}'"),
        );
        note[0].parse().unwrap()
    }

    pub fn status_json(&self, run: &str) -> serde_json::Value {
        let out = self.cmd(&["status", run, "--format", "json"]);
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.combined()))
    }
}

/// Copies a folder and everything in it (fixtures, the shipped migrations) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
