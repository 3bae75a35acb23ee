//! Schedules as crontab lines (`crontab(5)`): each preceded by `CRON_TZ=` with its zone (read
//! by cronie, busybox crond and systemd-cron; Debian's own cron reads every line in the host's
//! zone), the time fields as plain numbers, the command quoted for `/bin/sh` with `%` escaped
//! (cron turns a bare `%` into a newline).

use super::Job;
use super::systemd::Host;

/// The whole crontab for these schedules.
pub fn crontab(jobs: &[Job], host: &Host<'_>) -> String {
    let mut out = String::from("# Written by `runbook schedule export --to cron`.\n");
    let mut needs: Vec<&str> = Vec::new();
    for job in jobs {
        for var in &job.needs {
            if !needs.contains(&var.as_str()) {
                needs.push(var);
            }
        }
    }
    if !needs.is_empty() {
        out.push_str(&format!(
            "# The runs read {} from the environment: set them above, or in the crontab's \
             environment.\n",
            needs.join(", ")
        ));
    }
    for job in jobs {
        out.push_str(&format!("\n# {}: {}\n", job.name, one_line(&job.title())));
        out.push_str(&format!("CRON_TZ={}\n", job.cadence.zone.name()));
        out.push_str(&format!(
            "{} {}\n",
            job.cadence.fields().cron_text(),
            command(job, host)
        ));
    }
    out
}

/// The command of one line.
pub fn command(job: &Job, host: &Host<'_>) -> String {
    let mut argv = vec![
        host.program.display().to_string(),
        "-C".to_owned(),
        host.project.display().to_string(),
    ];
    argv.extend(job.args.iter().cloned());
    let line: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    let mut cmd = line.join(" ");
    if let Some(file) = host.env_file {
        cmd = format!(
            "set -a && . {} && exec {cmd}",
            sh_quote(&file.display().to_string())
        );
    }
    cmd.replace('%', "\\%")
}

/// Single-quoted for `/bin/sh`.
pub fn sh_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
