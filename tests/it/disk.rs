//! Free disk that runbook cannot measure, through the binary on real PostgreSQL as a database
//! owner that is not a superuser (the role of a managed server): unconfigured, the disk check
//! is unknown with its reason and the shipped pre-migration playbook stops saying so; with the
//! environment's `disk_limit` or `disk_command` the figure comes from there; a command that
//! fails or prints garbage is a clear error.

use crate::support::cli::{Output, Runbook};
use crate::support::pg;
use serde_json::Value as Json;
use std::path::Path;

/// A project with the shipped pre-migration playbook and an environment `t` whose target is
/// a database owned by a role without superuser rights.
struct Managed {
    dir: tempfile::TempDir,
    url: String,
}

impl Managed {
    /// `vars` is added to the environment's vars (YAML flow entries, such as
    /// `disk_limit: 1GB`). With `whole` false the playbook keeps the shipped steps up to the
    /// disk gate (the backup and lint after it are other tests' subject).
    fn new(vars: &str, whole: bool) -> Managed {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("playbooks")).unwrap();
        std::fs::create_dir_all(root.join("migrations/postgres")).unwrap();
        std::fs::write(root.join("migrations/postgres/001_init.sql"), "SELECT 1;").unwrap();
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/pre-migration.yaml"),
        )
        .unwrap();
        let text = if whole {
            shipped
        } else {
            let end = shipped.find("  - id: pending").expect("a pending step");
            shipped[..end].to_owned()
        };
        std::fs::write(root.join("playbooks/pre-migration.yaml"), text).unwrap();
        std::fs::write(
            root.join("runbook.yaml"),
            format!(
                "environments:\n  t:\n    target: {{ url_env: T_DATABASE_URL }}\n    vars: {{ backup_dir: \"{}\", min_free_disk_percent: 30, seed_set: production{vars} }}\nsecrets: [T_DATABASE_URL]\n",
                root.join("backups").display()
            ),
        )
        .unwrap();
        let url = pg::cluster().create_owned_db("disk");
        Managed { dir, url }
    }

    fn run(&self) -> Output {
        self.run_playbook("pre-migration")
    }

    fn run_playbook(&self, name: &str) -> Output {
        let root = self.dir.path().display().to_string();
        Runbook::new(&["-C", &root, "run", name, "--env", "t"])
            .env("T_DATABASE_URL", &self.url)
            .run()
    }

    /// Copies a shipped playbook into the project.
    fn ship(&self, name: &str) {
        let file = format!("playbooks/{name}.yaml");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(&file),
            self.dir.path().join(&file),
        )
        .unwrap();
    }

    /// The newest run's `health` step: its status and outputs.
    fn health_step(&self) -> Json {
        let root = self.dir.path().display().to_string();
        let runs = Runbook::new(&["-C", &root, "runs", "--format", "json"]).run();
        let runs: Json = serde_json::from_str(&runs.stdout).unwrap();
        let id = runs["runs"][0]["run_id"].as_str().unwrap().to_owned();
        let st = Runbook::new(&["-C", &root, "status", &id, "--format", "json"]).run();
        let st: Json = serde_json::from_str(&st.stdout).unwrap();
        st["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "health")
            .cloned()
            .unwrap_or_else(|| panic!("no health step in {st:#}"))
    }

    fn disk(&self) -> Json {
        self.health_step()["outputs"]["checks"]["disk_space"].clone()
    }

    fn size(&self) -> u64 {
        pg::cluster()
            .psql(&self.url, "SELECT pg_database_size(current_database())")
            .parse()
            .unwrap()
    }
}

#[test]
fn unconfigured_the_pre_migration_playbook_stops_saying_free_disk_is_unknown_and_why() {
    let m = Managed::new("", true);
    let out = m.run();
    assert_ne!(out.code, 0, "{}", out.combined());
    let role = format!("{}_owner", m.url.rsplit('/').next().unwrap());
    for want in [
        "warn  Disk Space: free disk unknown: role `",
        &format!("role `{role}` may not read the data directory"),
        "may not read the data directory (it needs pg_read_all_settings or superuser); say where",
        "disk_space warn: free disk unknown",
        "`disk_limit` (the database's storage limit",
        "`disk_command` (a command that prints the free percent",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in\n{}",
            out.stderr
        );
    }
    // The old message compared null with 30 and printed the comparison: "less than 30% disk
    // free ... value false".
    assert!(!out.combined().contains("false"), "{}", out.combined());
    assert!(!out.combined().contains("less than"), "{}", out.combined());
    assert_eq!(m.health_step()["status"], "failed", "{:#}", m.health_step());
}

#[test]
fn unconfigured_the_deploy_preflight_stops_before_the_approval_saying_free_disk_is_unknown() {
    let m = Managed::new("", false);
    m.ship("deploy");
    let out = m.run_playbook("deploy");
    assert_ne!(out.code, 0, "{}", out.combined());
    for want in [
        "failed preflight (health)",
        "disk_space warn: free disk unknown: role `",
        "`disk_limit`",
        "`disk_command`",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("start  approve"), "{}", out.stderr);
    // No `false` leaks into a message (a skipped step's line quotes its `when`, which may).
    assert!(
        !out.combined()
            .lines()
            .any(|l| l.contains("false") && !l.contains(" skipped ")),
        "{}",
        out.combined()
    );

    // Configured, the preflight passes on the figure the environment gives.
    let m = Managed::new(", disk_command: \"echo 80%\"", false);
    m.ship("deploy");
    let out = m.run_playbook("deploy");
    assert!(
        out.stderr
            .contains("pass  Disk Space: 80% free, from `disk_command` `echo 80%`")
            && out.stderr.contains("ok     preflight (health)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_disk_limit_gives_the_figure_from_the_database_size() {
    // A limit of twice the database's size leaves half of it free.
    let probe = Managed::new("", false);
    let limit = probe.size() * 2;
    let m = Managed::new(&format!(", disk_limit: {limit}"), false);
    let out = m.run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let disk = m.disk();
    assert_eq!(disk["status"], "pass", "{disk:#}");
    assert_eq!(disk["source"], "disk_limit", "{disk:#}");
    assert_eq!(disk["total_bytes"], limit, "{disk:#}");
    let used = m.size();
    let want = ((limit - used) as f64 * 1000.0 / limit as f64).round() / 10.0;
    let free = disk["free_percent"].as_f64().unwrap();
    assert!((free - want).abs() <= 0.2, "{free} vs {want}: {disk:#}");
    assert!(
        out.stderr.contains("% free (") && out.stderr.contains("limit; the database uses"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("from `disk_limit`"), "{}", out.stderr);

    // A limit the database has nearly filled fails the health step with the figure.
    let tight = Managed::new(
        &format!(", disk_limit: \"{} KB\"", m.size() / 1024 + 1),
        false,
    );
    let out = tight.run();
    assert_ne!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr.contains("disk_space fail: 0% free (")
            || out.stderr.contains("disk_space fail: 0.1% free ("),
        "{}",
        out.stderr
    );
}

#[test]
fn a_disk_command_gives_the_figure_and_the_gate_names_its_source() {
    let m = Managed::new(", disk_command: \"echo 42%\"", false);
    let out = m.run();
    assert_eq!(out.code, 0, "{}", out.combined());
    let disk = m.disk();
    assert_eq!(disk["status"], "pass", "{disk:#}");
    assert_eq!(disk["source"], "disk_command", "{disk:#}");
    assert_eq!(disk["free_percent"], 42.0, "{disk:#}");
    assert!(
        out.stderr
            .contains("42% free, from `disk_command` `echo 42%`"),
        "{}",
        out.stderr
    );

    // A real command: df's free and total bytes of the project's filesystem.
    let m = Managed::new(
        ", disk_command: \"df --output=avail,size -B1 . | tail -1\"",
        false,
    );
    let out = m.run();
    // This machine's free disk decides whether the step passes; the figure is df's either way.
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("Disk Space: "))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(line.contains("from `disk_command` `df"), "{line}");
    let shown: f64 = line
        .split("Disk Space: ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let df = std::process::Command::new("sh")
        .args(["-c", "df --output=avail,size -B1 . | tail -1"])
        .current_dir(m.dir.path())
        .output()
        .unwrap();
    let nums: Vec<f64> = String::from_utf8_lossy(&df.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let want = nums[0] * 100.0 / nums[1];
    assert!((shown - want).abs() < 0.5, "{shown} vs {want}: {line}");

    // Free and total bytes: 25% passes the health check's thresholds but not the playbook's
    // 30%, and the gate says the figure and where it came from.
    let m = Managed::new(", disk_command: \"echo 1000 4000\"", false);
    let out = m.run();
    assert_ne!(out.code, 0, "{}", out.combined());
    assert_eq!(m.disk()["free_percent"], 25.0, "{:#}", m.disk());
    assert!(
        out.stderr
            .contains("25.0% disk free on the database server (from disk_command), less than 30%"),
        "{}",
        out.stderr
    );
    // The refusal says the condition does not hold, not "is false; value false".
    assert!(
        out.stderr
            .contains(">= vars.min_free_disk_percent` does not hold)")
            && !out.stderr.contains("value false"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_disk_command_that_fails_or_prints_garbage_is_a_clear_error() {
    for (command, want) in [
        (
            "echo no such volume >&2; exit 3",
            "`disk_command` `echo no such volume >&2; exit 3` exited with code 3: no such volume",
        ),
        (
            "echo plenty",
            "`disk_command` `echo plenty` printed \"plenty\", not a free percent (such as `42%`) or free and total bytes",
        ),
        ("echo 250%", "printed 250%, which is not between 0 and 100"),
    ] {
        let m = Managed::new(&format!(", disk_command: {command:?}"), false);
        let out = m.run();
        assert_ne!(out.code, 0, "{}", out.combined());
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in\n{}",
            out.stderr
        );
        assert_eq!(m.health_step()["status"], "failed");
    }
    let m = Managed::new(", disk_limit: lots", false);
    let out = m.run();
    assert_ne!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`disk_limit` in the vars of environment `t`: `lots` is not a size"),
        "{}",
        out.stderr
    );
}
