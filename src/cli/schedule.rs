//! `runbook schedule list` and `runbook schedule export --to systemd|cron|kubernetes`: the
//! config's schedules, their next times, and the files the schedulers people run read.

use super::args::{ScheduleCmd, SchedulerKind};
use super::runtime::open;
use crate::exit::Exit;
use crate::schedule::{Job, crontab, kubernetes, systemd};
use crate::ui::Ui;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

pub(super) fn schedule_cmd(ui: &Ui, root: &Path, cmd: ScheduleCmd) -> Exit {
    let Some(project) = open(ui, root) else {
        return Exit::Invalid;
    };
    let jobs = match project.config_def().map(Job::all).unwrap_or(Ok(Vec::new())) {
        Ok(jobs) => jobs,
        Err(e) => {
            ui.error(&e, Some("fix the schedule in runbook.yaml"));
            return Exit::Invalid;
        }
    };
    let root = std::path::absolute(&project.root).unwrap_or(project.root.clone());
    match cmd {
        ScheduleCmd::List {
            count,
            from,
            format,
        } => list(ui, &jobs, count, from.unwrap_or_else(Utc::now), format),
        ScheduleCmd::Export(args) => export(ui, &root, &jobs, &args),
    }
}

fn list(
    ui: &Ui,
    jobs: &[Job],
    count: usize,
    from: DateTime<Utc>,
    format: super::OutputFormat,
) -> Exit {
    let rows: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            let next: Vec<String> = j
                .cadence
                .next(from, count)
                .iter()
                .map(|t| t.to_rfc3339())
                .collect();
            serde_json::json!({
                "name": j.name,
                "playbook": j.playbook,
                "environment": j.environment,
                "cron": j.cadence.expr,
                "time_zone": j.cadence.zone.name(),
                "next": next,
            })
        })
        .collect();
    match format {
        super::OutputFormat::Json => {
            ui.data(&serde_json::to_string_pretty(&rows).unwrap_or_default());
        }
        super::OutputFormat::Text if rows.is_empty() => {
            ui.note("no schedules: add them under `schedules:` in runbook.yaml");
        }
        super::OutputFormat::Text => {
            let mut out = String::new();
            for r in &rows {
                out.push_str(&format!(
                    "{}  {} on {}  `{}` {}\n",
                    r["name"].as_str().unwrap_or_default(),
                    r["playbook"].as_str().unwrap_or_default(),
                    r["environment"].as_str().unwrap_or_default(),
                    r["cron"].as_str().unwrap_or_default(),
                    r["time_zone"].as_str().unwrap_or_default(),
                ));
                for t in r["next"].as_array().into_iter().flatten() {
                    out.push_str(&format!("    next {}\n", t.as_str().unwrap_or_default()));
                }
            }
            ui.data(&out);
        }
    }
    Exit::Ok
}

fn export(ui: &Ui, root: &Path, jobs: &[Job], args: &super::args::ExportArgs) -> Exit {
    if jobs.is_empty() {
        ui.error(
            "no schedules to export",
            Some("add them under `schedules:` in runbook.yaml"),
        );
        return Exit::Invalid;
    }
    let mut jobs = jobs.to_vec();
    if let Some(dir) = &args.textfile_dir {
        for j in &mut jobs {
            j.args.push("--textfile".to_owned());
            j.args.push(
                dir.join(format!("runbook-{}.prom", j.name))
                    .display()
                    .to_string(),
            );
        }
    }
    let jobs = &jobs[..];
    let program = match &args.runbook {
        Some(p) => std::path::absolute(p).unwrap_or(p.clone()),
        None => std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/runbook")),
    };
    let env_file = args
        .env_file
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or(p.clone()));
    let host = systemd::Host {
        program: &program,
        project: root,
        env_file: env_file.as_deref(),
    };
    let files: Vec<(String, String)> = match args.to {
        SchedulerKind::Systemd => jobs
            .iter()
            .flat_map(|j| {
                let unit = systemd::unit_name(j);
                [
                    (format!("{unit}.service"), systemd::service(j, &host)),
                    (format!("{unit}.timer"), systemd::timer(j)),
                ]
            })
            .collect(),
        SchedulerKind::Cron => vec![("runbook.crontab".to_owned(), crontab::crontab(jobs, &host))],
        SchedulerKind::Kubernetes => {
            let Some(image) = args.image.as_deref() else {
                ui.error(
                    "a CronJob needs the image its pods run",
                    Some("give --image IMAGE: one holding runbook, with the project as its working directory"),
                );
                return Exit::Invalid;
            };
            let pod = kubernetes::Pod {
                image,
                secret: args.secret.as_deref(),
                namespace: args.namespace.as_deref(),
            };
            match kubernetes::manifests(jobs, &pod) {
                Ok(text) => vec![("runbook-cronjobs.yaml".to_owned(), text)],
                Err(e) => {
                    ui.error(&format!("cannot write the manifests: {e}"), None);
                    return Exit::Internal;
                }
            }
        }
    };
    write_out(ui, args.out.as_deref(), &files)
}

/// The files into `out`, or to stdout one after the other (each named in a comment).
fn write_out(ui: &Ui, out: Option<&Path>, files: &[(String, String)]) -> Exit {
    let Some(dir) = out else {
        let text: Vec<String> = if files.len() == 1 {
            vec![files[0].1.clone()]
        } else {
            files
                .iter()
                .map(|(name, text)| format!("# ==> {name} <==\n{text}"))
                .collect()
        };
        ui.data(&text.join("\n"));
        return Exit::Ok;
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        ui.error(&format!("cannot create `{}`: {e}", dir.display()), None);
        return Exit::RunFailed;
    }
    for (name, text) in files {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            ui.error(&format!("cannot write `{}`: {e}", path.display()), None);
            return Exit::RunFailed;
        }
        ui.note(&format!("wrote {}", path.display()));
    }
    Exit::Ok
}
