//! Schedules in runbook.yaml: validation at file:line:column, `schedule list`'s next times, and
//! `schedule export` checked by the schedulers' own tools: `systemd-analyze verify` and
//! `systemd-analyze calendar` (the same next times), crontab lines parsed back and their command
//! run by `/bin/sh`, CronJob manifests against the schema of the batch/v1 fields they use.

use crate::support::{Output, Runbook, repo};
use runbook::schedule::Cadence;
use std::path::Path;
use std::process::Command;

const CONFIG: &str = "\
environments:
  production:
    target: { url_env: PROD_DATABASE_URL }
  staging:
    target: { sqlite: staging.db }
secrets: [APP_TOKEN]
schedules:
  nightly-backup:
    description: Daily backup at 02:00
    playbook: note
    environment: production
    cron: \"0 2 * * *\"
    time_zone: Europe/Berlin
    vars: { keep: 7, label: \"50% of 'it' $HOME \\\"q\\\"\" }
  weekly-restore-test:
    playbook: note
    environment: staging
    cron: \"0 3 * * sun\"
    time_zone: Europe/Berlin
    vars: { label: \"50% of 'it'\" }
  office-hours:
    playbook: note
    environment: staging
    cron: \"*/15 9-17 * * mon-fri\"
    time_zone: America/New_York
  hourly-health:
    playbook: note
    environment: staging
    cron: \"@hourly\"
";

const PLAYBOOK: &str = "name: note\nparams:\n  label: { type: string, default: none }\n  keep: { type: integer, default: 1 }\nsteps:\n  - id: say\n    log: { message: \"label {{ params.label }}\" }\n";

fn project(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    std::fs::write(dir.path().join("playbooks/note.yaml"), PLAYBOOK).unwrap();
    std::fs::write(dir.path().join("runbook.yaml"), config).unwrap();
    dir
}

fn runbook(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["-C", dir.to_str().unwrap()];
    all.extend(args);
    Runbook::new(&all).run()
}

fn listed(dir: &Path, from: &str, count: &str) -> serde_json::Value {
    let out = runbook(
        dir,
        &[
            "schedule", "list", "--format", "json", "--from", from, "--count", count,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    serde_json::from_str(&out.stdout).unwrap()
}

fn next_of<'a>(list: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"));
    row["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

fn utc(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[test]
fn schedule_list_shows_the_next_times_in_each_zone() {
    let dir = project(CONFIG);
    // Berlin leaves summer time on 2026-10-25: 02:00 local is 00:00 UTC, then 01:00 UTC.
    let list = listed(dir.path(), "2026-10-24T12:00:00Z", "3");
    assert_eq!(
        next_of(&list, "nightly-backup"),
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-26T02:00:00+01:00",
            "2026-10-27T02:00:00+01:00"
        ]
    );
    assert_eq!(
        next_of(&list, "weekly-restore-test"),
        [
            "2026-10-25T03:00:00+01:00",
            "2026-11-01T03:00:00+01:00",
            "2026-11-08T03:00:00+01:00"
        ]
    );
    // Saturday the 24th in New York: the next office-hours slot is Monday 09:00.
    assert_eq!(
        next_of(&list, "office-hours")[0],
        "2026-10-26T09:00:00-04:00"
    );
    let text = runbook(
        dir.path(),
        &[
            "schedule",
            "list",
            "--from",
            "2026-10-24T12:00:00Z",
            "--count",
            "1",
        ],
    );
    assert_eq!(text.code, 0, "{}", text.combined());
    assert!(
        text.stdout.contains(
            "nightly-backup  note on production  `0 2 * * *` Europe/Berlin\n    next 2026-10-25T02:00:00+02:00"
        ),
        "{}",
        text.stdout
    );
}

#[test]
fn a_bad_schedule_is_refused_at_its_line_and_column() {
    let config = "\
environments:
  staging:
    target: { sqlite: staging.db }
schedules:
  Nightly:
    playbook: note
    environment: staging
    cron: \"0 2 * *\"
  zoned:
    playbook: nope
    environment: stagin
    cron: \"0 2 L * *\"
    time_zone: Europe/Berlim
    vars: { list: [1, 2] }
";
    let dir = project(config);
    let out = runbook(dir.path(), &["validate"]);
    assert_eq!(out.code, 2, "{}", out.combined());
    for (at, says) in [
        (
            "runbook.yaml:5:3",
            "schedule name `Nightly` cannot name a unit",
        ),
        ("runbook.yaml:8:11", "`0 2 * *` is not a cron expression"),
        ("runbook.yaml:10:15", "names no playbook `nope`"),
        ("runbook.yaml:11:18", "names no environment `stagin`"),
        (
            "runbook.yaml:13:16",
            "`Europe/Berlim` is not a known time zone",
        ),
        (
            "runbook.yaml:14:19",
            "var `list` of schedule `zoned` is not one line",
        ),
    ] {
        let found = out
            .stderr
            .split("error[")
            .any(|d| d.contains(at) && d.contains(says));
        assert!(found, "{at} {says}:\n{}", out.stderr);
    }
    assert!(
        out.stderr.contains("did you mean `staging`?"),
        "{}",
        out.stderr
    );
    // The zone is reported first; with a good zone, `L` is refused for what exports cannot say.
    let fixed = config.replace("Europe/Berlim", "Europe/Berlin");
    let dir = project(&fixed);
    let out = runbook(dir.path(), &["validate"]);
    assert!(
        out.stderr.contains("uses `L`, `W` or `#`") && out.stderr.contains("runbook.yaml:12:11"),
        "{}",
        out.stderr
    );
    // Every command refuses the config, not only validate.
    let out = runbook(dir.path(), &["schedule", "list"]);
    assert_eq!(out.code, 2, "{}", out.combined());
}

fn systemd_analyze() -> &'static str {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "systemd-analyze not found: install systemd (apt-get install systemd) — .ci/run does this"
    );
    "systemd-analyze"
}

#[test]
fn systemd_units_pass_systemd_analyze_and_elapse_when_runbook_says() {
    let tool = systemd_analyze();
    let dir = project(CONFIG);
    let out_dir = dir.path().join("units");
    let env_file = dir.path().join("runbook.env");
    std::fs::write(&env_file, "PROD_DATABASE_URL=postgres://h/db\n").unwrap();
    let out = runbook(
        dir.path(),
        &[
            "schedule",
            "export",
            "--to",
            "systemd",
            "--out",
            out_dir.to_str().unwrap(),
            "--env-file",
            env_file.to_str().unwrap(),
            "--textfile-dir",
            "/var/lib/node_exporter/textfile",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    let mut units: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    units.sort();
    assert_eq!(units.len(), 8, "{units:?}");
    let verify = Command::new(tool)
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");

    // Each timer's calendar elapses at the times `schedule list` names.
    let from = "2026-10-24T12:00:00Z";
    let list = listed(dir.path(), from, "4");
    for name in [
        "nightly-backup",
        "weekly-restore-test",
        "office-hours",
        "hourly-health",
    ] {
        let timer = std::fs::read_to_string(out_dir.join(format!("runbook-{name}.timer"))).unwrap();
        let calendar = timer
            .lines()
            .find_map(|l| l.strip_prefix("OnCalendar="))
            .unwrap();
        let shown = Command::new(tool)
            .env("TZ", "UTC")
            .args([
                "calendar",
                "--iterations=4",
                "--base-time=2026-10-24 12:00:00 UTC",
                calendar,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{calendar}: {text}");
        let elapses: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(": ")?;
                (l.contains("Next elapse") || l.contains("Iter. #")).then(|| {
                    rest.split(' ')
                        .skip(1)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
            })
            .collect();
        let expected: Vec<String> = next_of(&list, name).iter().map(|t| utc(t)).collect();
        assert_eq!(elapses, expected, "{name}: {calendar}\n{text}");
    }

    // The service runs runbook with every argument intact and the environment file.
    let service = std::fs::read_to_string(out_dir.join("runbook-nightly-backup.service")).unwrap();
    assert!(
        service.contains("\"--var\" \"label=50%% of 'it' $$HOME \\\"q\\\"\""),
        "{service}"
    );
    assert!(
        service.contains(&format!("EnvironmentFile={}", env_file.display())),
        "{service}"
    );
    assert!(
        service.contains("reads PROD_DATABASE_URL, APP_TOKEN"),
        "{service}"
    );
}

#[test]
fn crontab_lines_parse_back_to_the_schedules_and_their_commands_run() {
    let dir = project(CONFIG);
    let out = runbook(dir.path(), &["schedule", "export", "--to", "cron"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let crontab = out.stdout;
    let list = listed(dir.path(), "2026-10-24T12:00:00Z", "5");
    // Parse the crontab as cron does: `NAME=value` settings, comments, and lines of five
    // time fields and a command.
    let mut zone = None;
    let mut lines = 0;
    let mut named = "";
    for line in crontab.lines() {
        // Each schedule's line follows a comment naming it: `# NAME: description`.
        if let Some((n, _)) = line.strip_prefix("# ").and_then(|c| c.split_once(':')) {
            named = n;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(z) = line.strip_prefix("CRON_TZ=") {
            zone = Some(z.to_owned());
            continue;
        }
        lines += 1;
        let fields: Vec<&str> = line.splitn(6, ' ').collect();
        assert_eq!(fields.len(), 6, "{line}");
        let expr = fields[..5].join(" ");
        let command = fields[5];
        let name = named;
        let cadence = Cadence::parse(&expr, zone.as_deref()).unwrap();
        let from = chrono::DateTime::parse_from_rfc3339("2026-10-24T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let back: Vec<String> = cadence
            .next(from, 5)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(back, next_of(&list, name), "{name}: {line}");
        // cron turns a bare % into a newline: every % of the command is escaped.
        assert!(!command.replace("\\%", "").contains('%'), "{line}");
        if name == "weekly-restore-test" {
            // What cron hands to /bin/sh, run: the playbook runs with its var intact.
            let sh = Command::new("/bin/sh")
                .args(["-c", &command.replace("\\%", "%")])
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&sh.stderr);
            assert!(sh.status.success(), "{command}\n{said}");
            assert!(said.contains("label 50% of 'it'"), "{said}");
        }
    }
    assert_eq!(lines, 4, "{crontab}");
}

#[test]
fn cron_jobs_match_the_schema_of_batch_v1_cron_jobs() {
    let dir = project(CONFIG);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/schedule/cronjob.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let out = runbook(
        dir.path(),
        &[
            "schedule",
            "export",
            "--to",
            "kubernetes",
            "--image",
            "registry.example/ops/runbook:1.4",
            "--secret",
            "runbook-env",
            "--namespace",
            "ops",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    let docs: Vec<&str> = out
        .stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert_eq!(docs.len(), 4, "{}", out.stdout);
    for doc in &docs {
        let job: serde_json::Value = serde_saphyr::from_str(doc).unwrap();
        let errors: Vec<String> = validator.iter_errors(&job).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{doc}");
        if job["metadata"]["name"] == "runbook-nightly-backup" {
            assert_eq!(job["spec"]["schedule"], "0 2 * * *");
            assert_eq!(job["spec"]["timeZone"], "Europe/Berlin");
            let c = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                c["args"],
                serde_json::json!([
                    "run",
                    "note",
                    "--env",
                    "production",
                    "--var",
                    "keep=7",
                    "--var",
                    "label=50% of 'it' $HOME \"q\""
                ])
            );
        }
    }
    // The schema is not a formality: a name Kubernetes refuses fails it.
    let mut bad: serde_json::Value = serde_saphyr::from_str(docs[0]).unwrap();
    bad["metadata"]["name"] = "Runbook_Nightly".into();
    assert!(!validator.is_valid(&bad));
    // Without an image there is nothing to run.
    let out = runbook(dir.path(), &["schedule", "export", "--to", "kubernetes"]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(out.stderr.contains("--image"), "{}", out.stderr);
}
