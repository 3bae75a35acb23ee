//! A schedule as a systemd timer and the oneshot service it starts (`systemd.timer(5)`,
//! `systemd.service(5)`). The timer's `OnCalendar=` carries the time zone, so the host's own
//! zone does not matter; `Persistent=true` runs a time missed while the host was down once it
//! is back (runbook's target lock keeps two runs of one target apart).

use super::Job;
use std::path::Path;

/// Where the units run from and what they read.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    /// The runbook binary (absolute).
    pub program: &'a Path,
    /// The project folder (absolute).
    pub project: &'a Path,
    /// A file of `NAME=value` lines the service reads (the target's URL, the secrets).
    pub env_file: Option<&'a Path>,
}

/// The unit name both files share: `runbook-NAME`.
pub fn unit_name(job: &Job) -> String {
    format!("runbook-{}", job.name)
}

/// The `.service` file.
pub fn service(job: &Job, host: &Host<'_>) -> String {
    let mut argv = vec![
        host.program.display().to_string(),
        "-C".to_owned(),
        host.project.display().to_string(),
    ];
    argv.extend(job.args.iter().cloned());
    let exec: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    let mut s = format!(
        "# Written by `runbook schedule export --to systemd`: schedule `{}`.\n",
        job.name
    );
    if !job.needs.is_empty() {
        s.push_str(&format!(
            "# The run reads {} from the environment{}.\n",
            job.needs.join(", "),
            if host.env_file.is_some() {
                " (EnvironmentFile)"
            } else {
                ": give them with EnvironmentFile= or --env-file"
            }
        ));
    }
    s.push_str(&format!(
        "[Unit]\nDescription={}\nWants=network-online.target\nAfter=network-online.target\n\n",
        one_line(&job.title())
    ));
    s.push_str("[Service]\nType=oneshot\n");
    if let Some(file) = host.env_file {
        // A path setting takes the rest of the line as it is, specifiers expanded.
        s.push_str(&format!(
            "EnvironmentFile={}\n",
            file.display().to_string().replace('%', "%%")
        ));
    }
    s.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    // Exit 3 (waiting at an approval gate) is a run that stopped as designed, not a failure.
    s.push_str("SuccessExitStatus=3\n");
    s
}

/// The `.timer` file.
pub fn timer(job: &Job) -> String {
    let f = job.cadence.fields();
    format!(
        "# Written by `runbook schedule export --to systemd`: schedule `{name}`, cron `{expr}` \
         in {zone}.\n[Unit]\nDescription={desc} (timer)\n\n[Timer]\nOnCalendar={cal}\n\
         Persistent=true\nUnit={unit}.service\n\n[Install]\nWantedBy=timers.target\n",
        name = job.name,
        expr = one_line(&job.cadence.expr),
        zone = job.cadence.zone.name(),
        desc = one_line(&job.title()),
        cal = f.on_calendar(job.cadence.zone.name()),
        unit = unit_name(job),
    )
}

/// One argument of `ExecStart=` or a path setting: double-quoted with C-style escapes, `%`
/// doubled (specifiers) and `$` doubled (variable expansion).
pub fn quote(arg: &str) -> String {
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A description on one line, `%` doubled (systemd expands specifiers there too).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn arguments_are_quoted_for_exec_start() {
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("50%"), "\"50%%\"");
        assert_eq!(quote("$HOME"), "\"$$HOME\"");
        assert_eq!(quote("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
    }
}
