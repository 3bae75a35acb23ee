//! The guides' review checks on real PostgreSQL: tablespace usage (a tablespace of its own,
//! measured as a superuser beside the server, skipped saying why for a role that may not read
//! the data directory), settings against the guides' recommendations (as a session of the
//! role and database starts, not runbook's own per-query timeouts), and failed queries as
//! rolled-back transactions counted over a sample window, exactly.

use crate::health_server::health;
use crate::support::pg::{PgCluster, cluster};
use serde_json::Value as Json;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The names of the flagged settings.
fn flagged(settings: &Json) -> Vec<String> {
    settings["settings"]
        .as_array()
        .unwrap_or_else(|| panic!("{settings:#}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn tablespaces_are_sized_and_their_free_disk_measured_or_skipped_saying_why() {
    let server = PgCluster::own("");
    // A directory the server's OS user owns (the tests run as root or as that user).
    let dir = tempfile::Builder::new()
        .prefix("runbook-ts-")
        .tempdir()
        .unwrap();
    let location = dir.path().join("extra");
    std::fs::create_dir(&location).unwrap();
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        let chown = Command::new("chown")
            .arg("-R")
            .arg("postgres:")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
    }
    let url = server.create_db("ts");
    // Only the built-in tablespaces: sized, nothing to grade.
    let (code, o, _) = health(&url, "tablespaces", "");
    assert_eq!(code, 0);
    let ts = &o["tablespaces"];
    assert_eq!(ts["status"], "skip", "{ts:#}");
    assert!(
        ts["message"]
            .as_str()
            .unwrap()
            .starts_with("only the built-in tablespaces, in the data directory (disk_space grades its free space); sizes: pg_default "),
        "{ts:#}"
    );
    server.psql(
        "postgres",
        &format!("CREATE TABLESPACE extra LOCATION '{}'", location.display()),
    );
    server.psql(
        &url,
        "CREATE TABLE big (id int, pad text) TABLESPACE extra; \
         INSERT INTO big SELECT g, repeat('x', 500) FROM generate_series(1, 2000) g",
    );
    // Free disk depends on the machine: thresholds low, the figure still measured.
    let (code, o, metrics) = health(
        &url,
        "tablespaces",
        "      thresholds:\n        tablespaces: { warn: 0.01, fail: 0.001 }\n",
    );
    assert_eq!(code, 0, "{metrics}");
    let ts = &o["tablespaces"];
    assert_eq!(ts["status"], "pass", "{ts:#}");
    let list = ts["tablespaces"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["extra", "pg_default", "pg_global"], "{ts:#}");
    let extra = &list[0];
    assert_eq!(extra["location"], location.display().to_string());
    assert!(extra["bytes"].as_i64().unwrap() > 1_000_000, "{ts:#}");
    let free = extra["free_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&free), "{ts:#}");
    assert_eq!(ts["value"], free, "{ts:#}");
    // The built-in ones are sized; their free disk is disk_space's, not graded twice.
    assert!(list[1]["bytes"].as_i64().unwrap() > 1_000_000, "{ts:#}");
    assert_eq!(list[1]["in_data_directory"], true, "{ts:#}");
    assert!(list[1]["free_percent"].is_null(), "{ts:#}");
    assert!(
        metrics.contains("check=\"tablespaces\",unit=\"percent\",worse=\"lower\"} 0.01"),
        "{metrics}"
    );

    // A role that may not read the data directory: the sizes it may see, no free figure.
    server.psql(
        "postgres",
        &format!(
            "CREATE ROLE app LOGIN; GRANT CREATE ON TABLESPACE extra TO app; \
             ALTER DATABASE {} OWNER TO app",
            url.rsplit('/').next().unwrap()
        ),
    );
    let app_url = url.replace("postgres@", "app@");
    let (code, o, _) = health(&app_url, "tablespaces", "");
    assert_eq!(code, 0);
    let ts = &o["tablespaces"];
    assert_eq!(ts["status"], "skip", "{ts:#}");
    assert!(ts["value"].is_null(), "{ts:#}");
    let message = ts["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "free space under the tablespaces unknown: role `app` may not read the data directory"
        ),
        "{message}"
    );
    let list = ts["tablespaces"].as_array().unwrap();
    // Its database's default tablespace and the one it may create in: sized; pg_global: not.
    assert!(list[0]["bytes"].as_i64().unwrap() > 1_000_000, "{ts:#}");
    assert!(list[1]["bytes"].as_i64().is_some(), "{ts:#}");
    assert!(list[2]["bytes"].is_null(), "{ts:#}");
    assert!(list.iter().all(|t| t["free_percent"].is_null()), "{ts:#}");
    assert!(message.contains("pg_global size hidden"), "{message}");
}

#[test]
fn settings_are_reviewed_as_a_session_of_the_role_and_database_starts() {
    let url = cluster().create_db("settings");
    // The test cluster: ssl off, no slow-query or connection logging, no timeouts, 32MB of
    // shared buffers, fsync and full-page writes off (speed over durability).
    let (code, o, _) = health(&url, "settings", "");
    assert_eq!(code, 0);
    let s = &o["settings"];
    assert_eq!(s["status"], "warn", "{s:#}");
    let mut expected = vec![
        "ssl",
        "log_min_duration_statement",
        "log_connections",
        "log_disconnections",
        "statement_timeout",
        "idle_in_transaction_session_timeout",
        "shared_buffers",
        "fsync",
        "full_page_writes",
    ];
    assert_eq!(flagged(s), expected, "{s:#}");
    assert_eq!(s["value"], expected.len(), "{s:#}");
    let first = &s["settings"][0];
    assert_eq!(first["value"], "off");
    assert_eq!(first["recommended"], "on");
    assert!(first["why"].as_str().unwrap().contains("TLS"), "{s:#}");
    let buffers = s["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "shared_buffers")
        .unwrap();
    assert_eq!(buffers["value"], "32.0 MiB", "{s:#}");
    assert_eq!(buffers["source"], "configuration file", "{s:#}");
    let message = s["message"].as_str().unwrap();
    assert!(
        message.starts_with("9 settings worth reviewing: ssl = off (recommended on: "),
        "{message}"
    );
    // Settings the database gives its sessions count; runbook's own `SET LOCAL
    // statement_timeout` on each query did not hide the missing one above.
    let db = url.rsplit('/').next().unwrap();
    cluster().psql(
        "postgres",
        &format!(
            "ALTER DATABASE {db} SET statement_timeout = '60s'; \
             ALTER DATABASE {db} SET idle_in_transaction_session_timeout = '60s'; \
             ALTER DATABASE {db} SET log_min_duration_statement = 1000"
        ),
    );
    let (code, o, _) = health(
        &url,
        "settings",
        "      thresholds:\n        settings: { fail: 6 }\n",
    );
    assert_eq!(code, 1, "six settings left, failing at 6: {o:#}");
    let (code, o, _) = health(&url, "settings", "");
    assert_eq!(code, 0);
    expected.retain(|n| {
        !matches!(
            *n,
            "statement_timeout"
                | "idle_in_transaction_session_timeout"
                | "log_min_duration_statement"
        )
    });
    assert_eq!(flagged(&o["settings"]), expected, "{o:#}");
}

/// Runs `statements` failing statements, each in its own transaction, in one psql session.
fn fail_statements(url: &str, statements: usize) {
    let psql = cluster().bin_dir().join("psql");
    let mut child = Command::new(psql)
        .args(["-X", "-q", "-d", url, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let script = "SELECT 1 / 0;\n".repeat(statements);
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    child.wait().unwrap();
}

/// Once runbook has connected to the database of `url`, waits 1.5 s (its first reading is
/// taken by then) and runs 30 failing statements.
fn fail_in_window(url: &str) -> std::thread::JoinHandle<()> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let db = url.rsplit('/').next().unwrap().to_owned();
        let began = Instant::now();
        let seen = format!(
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'runbook'"
        );
        while cluster().psql("postgres", &seen) != "t" {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "runbook never connected"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1500));
        fail_statements(&url, 30);
    })
}

#[test]
fn failed_queries_are_rolled_back_transactions_counted_over_the_window() {
    let url = cluster().create_db("failed");
    // A quiet database: runbook's own health queries (each rolled back) do not count.
    let (code, o, _) = health(&url, "failed_queries", "      sample_window: 2s\n");
    assert_eq!(code, 0, "{o:#}");
    let f = &o["failed_queries"];
    assert_eq!(f["status"], "pass", "{f:#}");
    assert_eq!(f["rolled_back"], 0, "{f:#}");
    assert_eq!(f["value"], 0.0, "{f:#}");
    let window = f["window_seconds"].as_f64().unwrap();
    assert!((2.0..4.0).contains(&window), "{f:#}");

    // 30 failing statements well inside a 6 s window: counted exactly, 300 a minute.
    let background = fail_in_window(&url);
    let (code, o, metrics) = health(
        &url,
        "failed_queries",
        "      sample_window: 6s\n      thresholds:\n        failed_queries: { warn: 10, fail: 1000 }\n",
    );
    background.join().unwrap();
    assert_eq!(code, 0, "{metrics}");
    let f = &o["failed_queries"];
    assert_eq!(f["status"], "warn", "{f:#}");
    assert_eq!(f["rolled_back"], 30, "{f:#}");
    let window = f["window_seconds"].as_f64().unwrap();
    let rate = f["value"].as_f64().unwrap();
    assert!((rate - 30.0 * 60.0 / window).abs() < 0.2, "{f:#}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("30 transactions rolled back in "),
        "{f:#}"
    );
    assert!(
        metrics.contains("check=\"failed_queries\",unit=\"per_minute\",worse=\"higher\"} 10"),
        "{metrics}"
    );
    // The default fail threshold (60 a minute) fails the step on the same rate.
    let background = fail_in_window(&url);
    let (code, _, said) = health(&url, "failed_queries", "      sample_window: 5s\n");
    background.join().unwrap();
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("failed_queries fail: "), "{said}");
}
