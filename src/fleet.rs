//! Fleets: one playbook across many databases (tenants, shards). Each target gets its own run
//! (run id, lock, checkpoints, audit chain) in a child `runbook run` process, grouped under a
//! fleet run in the state store; a concurrency limit, an optional canary and a stop threshold
//! decide which start. `runbook resume FLEET` resumes or restarts only the unfinished targets.
//!
//! Child processes rather than tasks: a target's run is exactly a single run, with all its
//! guarantees, and one target's crash cannot take the others down.

use crate::config::{ConfigDef, FleetTarget};
use crate::exit::Exit;
use crate::run;
use crate::state::{FleetRecord, StateStore};
use crate::ui::Ui;
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

/// When to stop starting new targets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopAfter {
    Count(usize),
    Percent(f64),
}

impl std::fmt::Display for StopAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopAfter::Count(n) => write!(f, "{n}"),
            StopAfter::Percent(p) => write!(f, "{p}%"),
        }
    }
}

pub fn parse_stop_after(text: &str) -> Result<StopAfter, String> {
    match text.strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && *v <= 100.0)
            .map(StopAfter::Percent),
        None => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|v| *v > 0)
            .map(StopAfter::Count),
    }
    .ok_or_else(|| format!("`{text}` is not a failure count like `3` or a percentage like `10%`"))
}

/// How a fleet run goes.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub concurrency: usize,
    pub canary: usize,
    pub stop_after: Option<StopAfter>,
}

impl FleetOptions {
    /// The options of a resumed fleet: what the command line gives, else what the fleet run
    /// started with. The canary applies to the resumed targets and is never carried over: the
    /// first run's canaries either passed or are among the unfinished.
    pub fn resumed(
        stored: &serde_json::Value,
        concurrency: Option<usize>,
        canary: Option<usize>,
        stop_after: Option<StopAfter>,
    ) -> FleetOptions {
        FleetOptions {
            concurrency: concurrency
                .or_else(|| {
                    stored["concurrency"]
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                })
                .filter(|&n| n > 0)
                .unwrap_or(4),
            canary: canary.unwrap_or(0),
            stop_after: stop_after.or_else(|| {
                stored["stop_after"].as_str().and_then(|t| {
                    // Fleets started by earlier versions stored `Some(Count(3))`, `None`.
                    let legacy = t
                        .strip_prefix("Some(Count(")
                        .or_else(|| t.strip_prefix("Some(Percent("))
                        .and_then(|v| v.strip_suffix("))"))
                        .map(|v| {
                            if t.contains("Percent") {
                                format!("{v}%")
                            } else {
                                v.to_owned()
                            }
                        });
                    parse_stop_after(legacy.as_deref().unwrap_or(t)).ok()
                })
            }),
        }
    }
}

/// The fleet targets of an environment: the config's list plus its `targets_file`.
pub fn targets(root: &Path, config: &ConfigDef, env: &str) -> Result<Vec<FleetTarget>, String> {
    let e = config
        .environments
        .get(env)
        .ok_or_else(|| format!("no environment `{env}` in runbook.yaml"))?;
    let mut all = e.targets.clone();
    if let Some(file) = &e.targets_file {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
        let more: Vec<FleetTarget> =
            serde_saphyr::from_str(&text).map_err(|err| format!("`{}`: {err}", path.display()))?;
        all.extend(more);
    }
    Ok(all)
}

/// Targets a selector picks: `all`, names (with `*` wildcards) and `label=value`, comma-separated;
/// the union, in the config's order.
pub fn select<'a>(targets: &'a [FleetTarget], selector: &str) -> Vec<&'a FleetTarget> {
    let terms: Vec<&str> = selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    targets
        .iter()
        .filter(|t| {
            terms.iter().any(|term| {
                if *term == "all" {
                    true
                } else if let Some((k, v)) = term.split_once('=') {
                    t.labels.get(k.trim()).is_some_and(|x| x == v.trim())
                } else {
                    wildcard(term, &t.name)
                }
            })
        })
        .collect()
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.len() >= head.len() + tail.len()
                && name.starts_with(head)
                && wildcard_rest(tail, &name[head.len()..])
        }
    }
}

fn wildcard_rest(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.ends_with(pattern);
    }
    (0..=name.len()).any(|i| name.is_char_boundary(i) && wildcard(pattern, &name[i..]))
}

/// A target's address for a child run: `(value, is_secret)`; secrets go by environment.
fn address(t: &FleetTarget, root: &Path) -> Result<String, String> {
    if let Some(var) = &t.url_env {
        return std::env::var(var)
            .map_err(|_| format!("`{var}` (the URL of fleet target `{}`) is not set", t.name));
    }
    if let Some(url) = &t.url {
        return Ok(url.clone());
    }
    if let Some(path) = &t.sqlite {
        return Ok(format!("sqlite:{}", root.join(path).display()));
    }
    Err(format!("fleet target `{}` names no database", t.name))
}

/// What a child's exit code means for its target.
fn outcome(code: i32) -> &'static str {
    match code {
        0 => "succeeded",
        3 => "waiting_approval",
        4 => "locked",
        5 => "interrupted",
        7 => "refused",
        _ => "failed",
    }
}

/// One child: a run (or resume) of one target.
struct Job {
    target: String,
    args: Vec<String>,
    address: String,
}

/// Runs the jobs under the options; returns each target's outcome and whether the fleet
/// stopped early.
async fn schedule(
    ui: &Ui,
    state: &StateStore,
    fleet_id: &str,
    jobs: Vec<Job>,
    opts: &FleetOptions,
) -> (Vec<(String, &'static str)>, bool) {
    let total = jobs.len();
    let mut queue: VecDeque<Job> = jobs.into();
    let canary = opts.canary.min(total);
    let mut started = 0usize;
    let mut results: Vec<(String, &'static str)> = Vec::new();
    let mut failures = 0usize;
    let mut stopped = false;
    let mut running: Vec<(String, Instant, tokio::task::JoinHandle<i32>)> = Vec::new();
    let exe = std::env::current_exe().unwrap_or_else(|_| "runbook".into());
    let began = Instant::now();
    // On a terminal: a spinner per target in flight and a totals bar; otherwise plain lines.
    let bars = ui.is_interactive().then(|| {
        let multi = indicatif::MultiProgress::new();
        let totals = multi.add(indicatif::ProgressBar::new(total as u64));
        totals.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} targets done  {msg}  {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        (multi, totals)
    });
    let mut spinners: Vec<(String, indicatif::ProgressBar)> = Vec::new();
    loop {
        // Start what the limits allow: canaries first, alone; then the rest.
        let in_canary = started < canary || results.len() < canary;
        let limit = if in_canary {
            opts.concurrency.min(canary.max(1))
        } else {
            opts.concurrency
        };
        while !stopped && running.len() < limit && (!in_canary || started < canary) {
            let Some(job) = queue.pop_front() else { break };
            started += 1;
            let _ = state
                .fleet_target(fleet_id, &job.target, None, "running", None)
                .await;
            let exe = exe.clone();
            let target = job.target.clone();
            let mut cmd = std::process::Command::new(&exe);
            cmd.args(&job.args)
                .env("RUNBOOK_FLEET_TARGET_URL", &job.address)
                .stdin(std::process::Stdio::null());
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let label = format!("{target}{}", if in_canary { " (canary)" } else { "" });
            match &bars {
                Some((multi, _)) => {
                    let sp = multi.insert(0, indicatif::ProgressBar::new_spinner());
                    sp.set_message(label);
                    sp.enable_steady_tick(Duration::from_millis(120));
                    spinners.push((target.clone(), sp));
                }
                None => ui.note(&format!("{} start   {label}", stamp())),
            }
            let handle = tokio::task::spawn_blocking(move || {
                cmd.status().ok().and_then(|s| s.code()).unwrap_or(70)
            });
            running.push((target, Instant::now(), handle));
        }
        if running.is_empty() {
            break;
        }
        // Wait for the first child to finish.
        let finished = loop {
            if let Some(i) = running.iter().position(|(_, _, h)| h.is_finished()) {
                break running.swap_remove(i);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (target, t0, handle) = finished;
        let code = handle.await.unwrap_or(70);
        let result = outcome(code);
        let _ = state
            .fleet_target(fleet_id, &target, None, result, Some(i64::from(code)))
            .await;
        if result != "succeeded" && result != "waiting_approval" {
            failures += 1;
        }
        results.push((target.clone(), result));
        if let Some((multi, totals)) = &bars {
            if let Some(i) = spinners.iter().position(|(t, _)| *t == target) {
                let (_, sp) = spinners.swap_remove(i);
                sp.finish_and_clear();
                multi.remove(&sp);
            }
            totals.set_position(results.len() as u64);
            totals.set_message(format!("{} running, {failures} failed", running.len()));
            let _ = multi.println(format!(
                "{:<8} {target} in {:.1}s",
                if result == "succeeded" { "ok" } else { result },
                t0.elapsed().as_secs_f64()
            ));
            continue_after_print(
                &mut stopped,
                results.len(),
                canary,
                result,
                &target,
                ui,
                failures,
                total,
                opts,
            );
            continue;
        }
        ui.note(&format!(
            "{} {:<8} {target} in {:.1}s    [{}/{total} done, {} running, {failures} failed, {:.0}s]",
            stamp(),
            if result == "succeeded" { "ok" } else { result },
            t0.elapsed().as_secs_f64(),
            results.len(),
            running.len(),
            began.elapsed().as_secs_f64()
        ));
        if !stopped && results.len() <= canary && result != "succeeded" {
            stopped = true;
            ui.error(
                &format!("canary `{target}` did not succeed ({result}): no other target starts"),
                Some("fix it, then `runbook resume FLEET` runs what is left"),
            );
        }
        if !stopped && let Some(limit) = opts.stop_after {
            let hit = match limit {
                StopAfter::Count(n) => failures >= n,
                StopAfter::Percent(p) => (failures as f64) * 100.0 / (total as f64) >= p,
            };
            if hit {
                stopped = true;
                ui.error(&format!("{failures} targets failed: the stop threshold is reached, no new target starts"), None);
            }
        }
    }
    for job in queue {
        results.push((job.target, "not_started"));
    }
    (results, stopped)
}

/// After a target ends: a failed canary stops the fleet, and so does reaching the threshold.
#[allow(clippy::too_many_arguments)]
fn continue_after_print(
    stopped: &mut bool,
    done: usize,
    canary: usize,
    result: &str,
    target: &str,
    ui: &Ui,
    failures: usize,
    total: usize,
    opts: &FleetOptions,
) {
    if !*stopped && done <= canary && result != "succeeded" {
        *stopped = true;
        ui.error(
            &format!("canary `{target}` did not succeed ({result}): no other target starts"),
            Some("fix it, then `runbook resume FLEET` runs what is left"),
        );
    }
    if !*stopped && let Some(limit) = opts.stop_after {
        let hit = match limit {
            StopAfter::Count(n) => failures >= n,
            StopAfter::Percent(p) => (failures as f64) * 100.0 / (total as f64) >= p,
        };
        if hit {
            *stopped = true;
            ui.error(
                &format!(
                    "{failures} targets failed: the stop threshold is reached, no new target starts"
                ),
                None,
            );
        }
    }
}

fn stamp() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

/// The common arguments of child runs.
pub struct ChildArgs {
    pub root: String,
    pub state: Option<String>,
    pub vars: Vec<(String, String)>,
    pub approve: Vec<String>,
    pub lock_wait: String,
}

/// `runbook run NAME --env ENV --targets SELECTOR`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ui: &Ui,
    state: &StateStore,
    root: &Path,
    config: &ConfigDef,
    playbook: &str,
    env: &str,
    selector: &str,
    opts: &FleetOptions,
    child: &ChildArgs,
) -> Exit {
    let all = match targets(root, config, env) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&e, None);
            return Exit::Invalid;
        }
    };
    let picked = select(&all, selector);
    if picked.is_empty() {
        ui.error(
            &format!("`{selector}` selects no target of environment `{env}`"),
            Some(&format!(
                "targets: {}",
                all.iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
        return Exit::Invalid;
    }
    let fleet_id = format!("fleet-{}", run::new_run_id());
    let record = FleetRecord {
        id: fleet_id.clone(),
        playbook: playbook.to_owned(),
        env: env.to_owned(),
        selector: selector.to_owned(),
        options: serde_json::json!({"concurrency": opts.concurrency, "canary": opts.canary, "stop_after": opts.stop_after.map(|s| s.to_string()),
            "vars": child.vars, "approve": child.approve}),
        targets: picked.iter().map(|t| t.name.clone()).collect(),
        operator: run::operator(),
        status: "running".to_owned(),
        started_at: run::now_ms(),
    };
    if let Err(e) = state.create_fleet(&record).await {
        ui.error(&e.to_string(), None);
        return Exit::Internal;
    }
    ui.note(&format!(
        "fleet {fleet_id}: {playbook} on {} targets of {env} (concurrency {}, canary {})",
        picked.len(),
        opts.concurrency,
        opts.canary
    ));
    let mut jobs = Vec::new();
    for t in picked {
        let address = match address(t, root) {
            Ok(a) => a,
            Err(e) => {
                ui.error(&e, None);
                return Exit::Invalid;
            }
        };
        jobs.push(Job {
            target: t.name.clone(),
            args: run_args(child, playbook, env, &fleet_id, &t.name),
            address,
        });
    }
    finish(ui, state, &fleet_id, jobs, opts).await
}

fn run_args(
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
        "RUNBOOK_FLEET_TARGET_URL".to_owned(),
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

async fn finish(
    ui: &Ui,
    state: &StateStore,
    fleet_id: &str,
    jobs: Vec<Job>,
    opts: &FleetOptions,
) -> Exit {
    let (results, stopped) = schedule(ui, state, fleet_id, jobs, opts).await;
    let count = |what: &str| results.iter().filter(|(_, r)| *r == what).count();
    let (ok, waiting, not_started) = (
        count("succeeded"),
        count("waiting_approval"),
        count("not_started"),
    );
    let failed = results.len() - ok - waiting - not_started;
    let status = if ok == results.len() {
        "succeeded"
    } else if stopped {
        "stopped"
    } else if failed > 0 {
        "failed"
    } else {
        "waiting"
    };
    let _ = state.finish_fleet(fleet_id, status).await;
    ui.note(&format!(
        "fleet {fleet_id} {status}: {ok} succeeded, {failed} failed, {waiting} waiting, {not_started} not started{}",
        if ok == results.len() { String::new() } else { format!("; `runbook resume {fleet_id}` continues the unfinished targets") }
    ));
    if ok == results.len() {
        Exit::Ok
    } else if failed > 0 || stopped {
        Exit::RunFailed
    } else {
        Exit::WaitingApproval
    }
}

/// `runbook resume FLEET`: resumes the targets whose run can be resumed, starts again those that
/// failed or never started, and leaves the succeeded ones alone.
pub async fn resume(
    ui: &Ui,
    state: &StateStore,
    root: &Path,
    config: &ConfigDef,
    fleet: FleetRecord,
    opts: &FleetOptions,
    child: &ChildArgs,
) -> Exit {
    let all = match targets(root, config, &fleet.env) {
        Ok(t) => t,
        Err(e) => {
            ui.error(&e, None);
            return Exit::Invalid;
        }
    };
    let rows = match state.fleet_targets(&fleet.id).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(&e.to_string(), None);
            return Exit::Internal;
        }
    };
    let mut jobs = Vec::new();
    for name in &fleet.targets {
        let Some((_, run_id, status, _)) = rows.iter().find(|(t, ..)| t == name) else {
            continue;
        };
        if status == "succeeded" {
            continue;
        }
        let Some(t) = all.iter().find(|t| &t.name == name) else {
            ui.error(
                &format!("fleet target `{name}` is no longer in runbook.yaml"),
                None,
            );
            return Exit::Invalid;
        };
        let address = match address(t, root) {
            Ok(a) => a,
            Err(e) => {
                ui.error(&e, None);
                return Exit::Invalid;
            }
        };
        let resumable = match run_id {
            Some(id) => state
                .load_run(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.status.resumable()),
            None => false,
        };
        let args = match (resumable, run_id) {
            (true, Some(id)) => {
                let mut a = vec![
                    "-q".to_owned(),
                    "-C".to_owned(),
                    child.root.clone(),
                    "resume".to_owned(),
                    id.clone(),
                    "--target-env".to_owned(),
                    "RUNBOOK_FLEET_TARGET_URL".to_owned(),
                ];
                if let Some(s) = &child.state {
                    a.extend(["--state".to_owned(), s.clone()]);
                }
                a
            }
            _ => run_args(child, &fleet.playbook, &fleet.env, &fleet.id, name),
        };
        jobs.push(Job {
            target: name.clone(),
            args,
            address,
        });
    }
    if jobs.is_empty() {
        ui.note(&format!(
            "fleet {}: every target already succeeded",
            fleet.id
        ));
        return Exit::Ok;
    }
    ui.note(&format!(
        "fleet {}: resuming {} unfinished targets",
        fleet.id,
        jobs.len()
    ));
    finish(ui, state, &fleet.id, jobs, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resumed_fleet_keeps_its_options_unless_given_new_ones() {
        let stored = json!({"concurrency": 3, "canary": 2, "stop_after": "10%"});
        let o = FleetOptions::resumed(&stored, None, None, None);
        assert_eq!(o.concurrency, 3);
        assert_eq!(o.canary, 0, "a canary is never carried over");
        assert_eq!(o.stop_after, Some(StopAfter::Percent(10.0)));
        let o = FleetOptions::resumed(&stored, Some(8), Some(1), Some(StopAfter::Count(2)));
        assert_eq!((o.concurrency, o.canary), (8, 1));
        assert_eq!(o.stop_after, Some(StopAfter::Count(2)));
        // What earlier versions stored.
        for (text, want) in [
            ("Some(Count(3))", Some(StopAfter::Count(3))),
            ("Some(Percent(12.5))", Some(StopAfter::Percent(12.5))),
            ("None", None),
        ] {
            let o = FleetOptions::resumed(&json!({"stop_after": text}), None, None, None);
            assert_eq!(o.stop_after, want, "{text}");
            assert_eq!(o.concurrency, 4);
        }
    }
}
