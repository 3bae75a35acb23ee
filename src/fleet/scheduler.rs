//! The scheduler: starts child runs within the concurrency limit (canaries first, and alone),
//! records each target's outcome in the state store as its child ends, and starts no new
//! target after a failed canary, at the stop threshold, or on Ctrl-C.

use super::child::{Job, Launcher, Running, outcome};
use super::options::FleetOptions;
use crate::state::StateStore;
use crate::ui::{FleetProgress, FleetTally, Ui};
use std::collections::VecDeque;
use std::time::Duration;

/// How often children are polled for their end.
const POLL: Duration = Duration::from_millis(20);

/// What the scheduler did: each target's outcome in the order they ended (targets that never
/// started last), and whether it stopped starting targets early.
pub(super) struct Ran {
    pub results: Vec<(String, &'static str)>,
    pub stopped: bool,
    pub interrupted: bool,
}

/// Runs the jobs under the options.
pub(super) async fn schedule(
    ui: &Ui,
    state: &StateStore,
    fleet_id: &str,
    jobs: Vec<Job>,
    (opts, logs): (&FleetOptions, std::path::PathBuf),
) -> Ran {
    let total = jobs.len();
    let mut s = Scheduler {
        ui,
        state,
        fleet_id,
        opts,
        total,
        canary: opts.canary.min(total),
        queue: jobs.into(),
        started: 0,
        running: Vec::new(),
        results: Vec::new(),
        failures: 0,
        stopped: false,
        interrupted: false,
        launcher: Launcher::new(logs),
        progress: FleetProgress::new(ui, total),
    };
    // The children lead their own process groups, so the terminal's Ctrl-C reaches only us;
    // we pass it on (SIGTERM and SIGHUP too).
    let mut interrupts = crate::cancel::StopSignals::new().ok();
    loop {
        s.start_what_limits_allow().await;
        if s.running.is_empty() {
            break;
        }
        let (running, code) = s.next_to_end(&mut interrupts).await;
        s.ended(running, code).await;
    }
    let mut results = s.results;
    for job in s.queue {
        results.push((job.target, "not_started"));
    }
    Ran {
        results,
        stopped: s.stopped,
        interrupted: s.interrupted,
    }
}

struct Scheduler<'a> {
    ui: &'a Ui,
    state: &'a StateStore,
    fleet_id: &'a str,
    opts: &'a FleetOptions,
    total: usize,
    canary: usize,
    queue: VecDeque<Job>,
    started: usize,
    running: Vec<Running>,
    results: Vec<(String, &'static str)>,
    failures: usize,
    stopped: bool,
    interrupted: bool,
    launcher: Launcher,
    progress: FleetProgress,
}

impl Scheduler<'_> {
    /// Starts what the limits allow: canaries first, alone; then the rest.
    async fn start_what_limits_allow(&mut self) {
        let in_canary = self.started < self.canary || self.results.len() < self.canary;
        let limit = if in_canary {
            self.opts.concurrency.min(self.canary.max(1))
        } else {
            self.opts.concurrency
        };
        while !self.stopped
            && self.running.len() < limit
            && (!in_canary || self.started < self.canary)
        {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            self.started += 1;
            let _ = self
                .state
                .fleet_target(self.fleet_id, &job.target, None, ("running", None, None))
                .await;
            self.progress.started(&job.target, in_canary);
            self.running.push(self.launcher.start(job));
        }
    }

    /// Waits for the first child to end and takes it out of the running ones, with its exit
    /// code. A Ctrl-C meanwhile is passed on to every running child.
    async fn next_to_end(
        &mut self,
        interrupts: &mut Option<crate::cancel::StopSignals>,
    ) -> (Running, i32) {
        loop {
            if let Some((i, code)) = self
                .running
                .iter()
                .enumerate()
                .find_map(|(i, r)| r.poll().map(|code| (i, code)))
            {
                return (self.running.swap_remove(i), code);
            }
            let interrupt = async {
                match interrupts {
                    Some(signals) => Some(signals.next().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                Some(_) = interrupt => self.interrupt(),
            }
        }
    }

    /// Passes a Ctrl-C on to the running children (each stops its run as on its own Ctrl-C; a
    /// second one makes them exit at once) and starts no new target.
    fn interrupt(&mut self) {
        if !self.interrupted {
            self.ui.urgent(
                "interrupting: the running targets stop their current step and no new target starts (Ctrl-C again to stop them at once)",
            );
        }
        self.interrupted = true;
        self.stopped = true;
        for r in &self.running {
            r.interrupt();
        }
    }

    /// Records a child's end, shows it, and decides whether new targets may still start.
    async fn ended(&mut self, running: Running, code: i32) {
        let result = outcome(code);
        let reason = match result {
            "succeeded" | "waiting_approval" => None,
            _ => running.reason(),
        };
        let Running { target, began, .. } = running;
        let _ = self
            .state
            .fleet_target(
                self.fleet_id,
                &target,
                None,
                (result, Some(i64::from(code)), reason.as_deref()),
            )
            .await;
        if result != "succeeded" && result != "waiting_approval" {
            self.failures += 1;
        }
        self.results.push((target.clone(), result));
        let tally = FleetTally {
            done: self.results.len(),
            running: self.running.len(),
            failed: self.failures,
        };
        self.progress
            .finished(&target, result, began.elapsed(), tally);
        self.check_stop(&target, result);
    }

    /// After a target ends: a failed canary stops the fleet, and so does reaching the threshold.
    fn check_stop(&mut self, target: &str, result: &str) {
        if !self.stopped && self.results.len() <= self.canary && result != "succeeded" {
            self.stopped = true;
            self.ui.error(
                &format!("canary `{target}` did not succeed ({result}): no other target starts"),
                Some("fix it, then `runbook resume FLEET` runs what is left"),
            );
        }
        if !self.stopped
            && let Some(limit) = self.opts.stop_after
            && limit.reached(self.failures, self.total)
        {
            self.stopped = true;
            self.ui.error(
                &format!(
                    "{} failed: the stop threshold is reached, no new target starts",
                    crate::fmt::plural(self.failures, "target", "targets")
                ),
                None,
            );
        }
    }
}
