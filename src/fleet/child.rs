//! One target's child process: the `runbook run` (or `runbook resume`) arguments it gets, its
//! start through the one subprocess wrapper with the target's address in its environment, and
//! what its exit code means for the target.

use crate::process;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The environment variable a child reads its target's URL from.
const TARGET_URL_ENV: &str = "RUNBOOK_FLEET_TARGET_URL";

/// The exit code that stands for a child that could not start or was killed by a signal.
const NO_EXIT_CODE: i32 = 70;

/// The common arguments of child runs.
pub struct ChildArgs {
    pub root: String,
    pub state: Option<String>,
    pub vars: Vec<(String, String)>,
    pub approve: Vec<String>,
    pub lock_wait: String,
}

/// One child to start: a run (or resume) of one target.
pub(super) struct Job {
    pub target: String,
    pub args: Vec<String>,
    pub address: String,
}

/// Where a fleet's children write what they print on stderr: `.runbook/fleets/FLEET/`, one
/// file per target, read back for the reason a target failed.
pub(super) fn log_dir(root: &Path, fleet_id: &str) -> PathBuf {
    root.join(".runbook").join("fleets").join(fleet_id)
}

/// The arguments of a child that runs the playbook on one target of a fleet.
pub(super) fn run_args(
    child: &ChildArgs,
    playbook: &str,
    env: &str,
    fleet_id: &str,
    target: &str,
) -> Vec<String> {
    let mut args = vec![
        "-q".to_owned(),
        "-C".to_owned(),
        child.root.clone(),
        "run".to_owned(),
        playbook.to_owned(),
        "--env".to_owned(),
        env.to_owned(),
    ];
    args.extend([
        "--target-env".to_owned(),
        TARGET_URL_ENV.to_owned(),
        "--fleet".to_owned(),
        fleet_id.to_owned(),
        "--fleet-target".to_owned(),
        target.to_owned(),
    ]);
    args.extend(["--lock-wait".to_owned(), child.lock_wait.clone()]);
    if let Some(s) = &child.state {
        args.extend(["--state".to_owned(), s.clone()]);
    }
    for (k, v) in &child.vars {
        args.extend(["--var".to_owned(), format!("{k}={v}")]);
    }
    for g in &child.approve {
        args.extend(["--approve".to_owned(), g.clone()]);
    }
    args
}

/// The arguments of a child that resumes a target's interrupted or waiting run.
pub(super) fn resume_args(child: &ChildArgs, run_id: &str) -> Vec<String> {
    let mut args = vec![
        "-q".to_owned(),
        "-C".to_owned(),
        child.root.clone(),
        "resume".to_owned(),
        run_id.to_owned(),
        "--target-env".to_owned(),
        TARGET_URL_ENV.to_owned(),
    ];
    if let Some(s) = &child.state {
        args.extend(["--state".to_owned(), s.clone()]);
    }
    args
}

/// Where children start from: this very program, in our working directory; their stderr goes
/// to a file per target under `logs`.
pub(super) struct Launcher {
    exe: PathBuf,
    cwd: PathBuf,
    logs: PathBuf,
}

impl Launcher {
    pub fn new(logs: PathBuf) -> Launcher {
        Launcher {
            exe: std::env::current_exe().unwrap_or_else(|_| "runbook".into()),
            cwd: std::env::current_dir().unwrap_or_else(|_| ".".into()),
            logs,
        }
    }

    /// Starts a job's child. A child that cannot start is reported as ended with code 70 the
    /// first time it is polled, like one that crashed, with why it could not start.
    pub fn start(&self, job: Job) -> Running {
        let mut argv = vec![self.exe.to_string_lossy().into_owned()];
        argv.extend(job.args);
        let env = BTreeMap::from([(TARGET_URL_ENV.to_owned(), job.address)]);
        let log = self.logs.join(format!("{}.log", job.target));
        let started = std::fs::create_dir_all(&self.logs)
            .map_err(|e| format!("cannot create {}: {e}", self.logs.display()))
            .and_then(|()| process::spawn(&argv, &self.cwd, &env, &log).map_err(|e| e.to_string()));
        let (child, not_started) = match started {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        };
        Running {
            target: job.target,
            began: Instant::now(),
            child,
            log,
            not_started,
        }
    }
}

/// A child in flight.
pub(super) struct Running {
    pub target: String,
    pub began: Instant,
    child: Option<process::Child>,
    /// Where its stderr goes.
    log: PathBuf,
    /// Why it could not start, when it could not.
    not_started: Option<String>,
}

impl Running {
    /// The child's exit code once it has ended (70 when it could not start, was killed by a
    /// signal, or cannot be waited for).
    pub fn poll(&self) -> Option<i32> {
        let Some(child) = &self.child else {
            return Some(NO_EXIT_CODE);
        };
        match child.try_wait() {
            Ok(Some(code)) => Some(code.unwrap_or(NO_EXIT_CODE)),
            Ok(None) => None,
            Err(_) => Some(NO_EXIT_CODE),
        }
    }

    /// Why the target failed: why its child could not start, else the last error the child
    /// printed (its runbook redacts secrets before printing), else the last line it printed.
    pub fn reason(&self) -> Option<String> {
        if let Some(why) = &self.not_started {
            return Some(why.clone());
        }
        let text = std::fs::read_to_string(&self.log).ok()?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let last = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .or_else(|| lines.last().copied())?;
        Some(last.chars().take(500).collect())
    }

    /// Passes a Ctrl-C on to the child, which then stops its run the way a run stops on Ctrl-C.
    pub fn interrupt(&self) {
        if let Some(child) = &self.child {
            child.interrupt();
        }
    }
}

/// What a child's exit code means for its target.
pub(super) fn outcome(code: i32) -> &'static str {
    match code {
        0 => "succeeded",
        3 => "waiting_approval",
        4 => "locked",
        5 => "interrupted",
        7 => "refused",
        _ => "failed",
    }
}
