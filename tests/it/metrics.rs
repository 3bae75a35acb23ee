//! Health results and run outcomes as Prometheus metrics, checked by `promtool check metrics`
//! (Prometheus's own linter of the text format and its naming conventions): a health step's
//! `metrics_file` (written passing or failing), `runbook run --textfile`, and
//! `runbook status RUN --format prometheus`.

use crate::support::{Project, Target};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// `promtool check metrics` on `text`: what it said, and whether it accepted it.
fn promtool(text: &str) -> (bool, String) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = child.unwrap_or_else(|e| {
        panic!("promtool not found ({e}): install prometheus (apt-get install prometheus) — .ci/run does this")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

fn accepted(text: &str) {
    let (ok, said) = promtool(text);
    assert!(ok, "promtool: {said}\n{text}");
}

/// The value of the sample whose line starts with `series` (name and labels as written).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn promtool_rejects_what_breaks_the_conventions() {
    // The check is not a formality: a counter without `_total` and a malformed line fail it.
    let (ok, said) = promtool("# HELP x_count things\n# TYPE x_count counter\nx_count 1\n");
    assert!(!ok, "{said}");
    let (ok, said) = promtool("runbook_x{a=\"b} 1\n");
    assert!(!ok, "{said}");
}

#[test]
fn a_health_step_writes_its_results_for_the_textfile_collector_passing_or_failing() {
    let p = Project::new(|_| Target::postgres("metrics"));
    let health = |thresholds: &str| {
        format!(
            "name: h\nsteps:\n  - id: health\n    health:\n      checks: [connection, version, database_size, connections, cache_hit_ratio, disk_space]\n      metrics_file: textfile/runbook-health.prom\n      thresholds:\n        cache_hit_ratio: {{ warn: 1, fail: 0.5 }}\n        disk_space: {{ warn: 0.01, fail: 0.001 }}\n{thresholds}"
        )
    };
    std::fs::create_dir(p.path().join("textfile")).unwrap();
    p.playbook("h", &health(""));
    let out = p.run("h", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let file = p.path().join("textfile/runbook-health.prom");
    let text = std::fs::read_to_string(&file).unwrap();
    accepted(&text);
    assert_eq!(
        sample(
            &text,
            "runbook_health_check_status{environment=\"dev\",check=\"connection\",status=\"pass\"}"
        ),
        1.0
    );
    // The figure the thresholds grade, with the thresholds beside it in the same unit.
    let used = "{environment=\"dev\",check=\"connections\",unit=\"percent\",worse=\"higher\"}";
    let v = sample(&text, &format!("runbook_health_check_value{used}"));
    assert!(v > 0.0 && v < 80.0, "{v}");
    assert_eq!(
        sample(&text, &format!("runbook_health_check_warn_threshold{used}")),
        80.0
    );
    assert_eq!(
        sample(&text, &format!("runbook_health_check_fail_threshold{used}")),
        95.0
    );
    assert_eq!(
        sample(
            &text,
            "runbook_health_checks{environment=\"dev\",status=\"fail\"}"
        ),
        0.0
    );

    // A failing check fails the step, and the file says so: it is written before the verdict.
    p.playbook("h", &health("        connections: { warn: 0, fail: 0 }\n"));
    let out = p.run("h", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let text = std::fs::read_to_string(&file).unwrap();
    accepted(&text);
    assert_eq!(
        sample(
            &text,
            "runbook_health_check_status{environment=\"dev\",check=\"connections\",status=\"fail\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "runbook_health_checks{environment=\"dev\",status=\"fail\"}"
        ),
        1.0
    );
    // Only the file is left in the folder: no temporary file beside it.
    assert_eq!(
        std::fs::read_dir(p.path().join("textfile"))
            .unwrap()
            .count(),
        1
    );
}

fn run_textfile(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    accepted(&text);
    text
}

#[test]
fn a_run_writes_its_outcome_and_status_shows_it_as_metrics() {
    let p = Project::new(Target::sqlite);
    p.playbook(
        "ok",
        "name: ok\nsteps:\n  - id: health\n    health: { checks: [connection, database_size] }\n",
    );
    p.playbook(
        "bad",
        "name: bad\nsteps:\n  - id: boom\n    sql: { query: \"SELECT * FROM missing_table\" }\n",
    );
    let file = p.path().join("runbook-run.prom");
    let f = file.to_str().unwrap();
    let out = p.run("ok", &["--textfile", f]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let text = run_textfile(&file);
    let labels = "{playbook=\"ok\",environment=\"dev\"";
    assert_eq!(
        sample(&text, &format!("runbook_run_last_success{labels}}}")),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("runbook_run_last_outcome{labels},outcome=\"succeeded\"}}")
        ),
        1.0
    );
    let took = sample(
        &text,
        &format!("runbook_run_last_duration_seconds{labels}}}"),
    );
    assert!((0.0..60.0).contains(&took), "{took}");

    let (id, _) = p.last_run();
    let shown = p.cmd(&["status", &id, "--format", "prometheus"]);
    assert_eq!(shown.code, 0, "{}", shown.combined());
    accepted(&shown.stdout);
    assert_eq!(
        sample(
            &shown.stdout,
            "runbook_health_check_status{environment=\"dev\",check=\"connection\",status=\"pass\"}"
        ),
        1.0
    );

    let out = p.run("bad", &["--textfile", f]);
    assert_eq!(out.code, 1, "{}", out.combined());
    let text = run_textfile(&file);
    let labels = "{playbook=\"bad\",environment=\"dev\"";
    assert_eq!(
        sample(&text, &format!("runbook_run_last_exit_code{labels}}}")),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("runbook_run_last_outcome{labels},outcome=\"failed\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("runbook_run_last_success{labels}}}")),
        0.0
    );
    // The previous run's series are gone: the file is replaced, not appended to.
    assert!(!text.contains("playbook=\"ok\""), "{text}");
}
