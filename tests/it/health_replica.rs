//! Replication lag on a real streaming standby: a primary of the test's own (so no other
//! test sees a replica), a standby made from it with `pg_basebackup -R`, replay paused on the
//! standby while the primary writes, and the lag seen from both ends, graded, then gone once
//! replay resumes.

use crate::health_server::health;
use crate::support::pg::PgCluster;
use std::time::{Duration, Instant};

/// Waits until `sql` on `db` of `cluster` returns `t`.
fn wait_for(cluster: &PgCluster, db: &str, sql: &str, what: &str) {
    let began = Instant::now();
    while cluster.psql(db, sql) != "t" {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {sql}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CAUGHT_UP: &str = "SELECT count(*) = 1 FROM pg_stat_replication \
     WHERE state = 'streaming' AND replay_lsn = pg_current_wal_lsn()";

#[test]
fn replication_lag_is_seen_from_the_primary_and_the_standby() {
    let primary = PgCluster::own("");
    let url = primary.create_db("repl");
    let db = url.rsplit('/').next().unwrap().to_owned();
    primary.psql(&url, "CREATE TABLE t (id int)");

    // A primary without replicas: skipped, saying why.
    let (code, o, _) = health(&url, "replication_lag", "");
    assert_eq!(code, 0);
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "skip", "{lag:#}");
    assert!(
        lag["message"].as_str().unwrap().starts_with("no replicas"),
        "{lag:#}"
    );

    // A slot no replica reads: the WAL it keeps is named, a warning.
    primary.psql(
        "postgres",
        "SELECT pg_create_physical_replication_slot('gone', true)",
    );
    let (code, o, _) = health(&url, "replication_lag", "");
    assert_eq!(code, 0);
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "warn", "{lag:#}");
    assert!(lag["value"].is_null(), "{lag:#}");
    assert_eq!(lag["inactive_slots"][0]["name"], "gone", "{lag:#}");
    assert_eq!(lag["inactive_slots"][0]["type"], "physical", "{lag:#}");
    assert!(
        lag["message"].as_str().unwrap().starts_with(
            "no replica connected; 1 replication slot no replica reads: `gone` (physical) keeps "
        ),
        "{lag:#}"
    );
    primary.psql("postgres", "SELECT pg_drop_replication_slot('gone')");

    let standby = primary.standby("runbook_standby");
    let standby_url = standby.url(&db);
    // A transaction the standby replays: until it has replayed one, a standby cannot say how
    // old what it replayed is.
    // Until the standby itself gives the commit time of a transaction it replayed, a row more
    // each time: a CI run once saw the standby caught up with the first row and still without
    // one (`pg_last_xact_replay_timestamp()` null), so its lag later read as unknown.
    let began = Instant::now();
    loop {
        primary.psql(&url, "INSERT INTO t VALUES (0)");
        wait_for(&primary, "postgres", CAUGHT_UP, "the standby to catch up");
        if standby.psql(
            "postgres",
            "SELECT pg_last_xact_replay_timestamp() IS NOT NULL",
        ) == "t"
        {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the standby never gave the time of a transaction it replayed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Caught up: both ends pass, the primary naming the standby.
    let (code, o, metrics) = health(&url, "replication_lag", "");
    assert_eq!(code, 0, "{metrics}");
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "pass", "{lag:#}");
    assert_eq!(lag["role"], "primary");
    let replica = &lag["replicas"][0];
    assert_eq!(replica["name"], "runbook_standby", "{lag:#}");
    assert_eq!(replica["address"], "127.0.0.1", "{lag:#}");
    assert_eq!(replica["state"], "streaming", "{lag:#}");
    assert!(lag["value"].as_f64().unwrap() < 5.0, "{lag:#}");
    assert!(
        metrics.contains(
            "runbook_health_check_warn_threshold{environment=\"dev\",check=\"replication_lag\",unit=\"seconds\",worse=\"higher\"} 5"
        ),
        "{metrics}"
    );
    let (code, o, _) = health(&standby_url, "replication_lag", "");
    assert_eq!(code, 0);
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "pass", "{lag:#}");
    assert_eq!(lag["role"], "standby");
    assert_eq!(lag["receiver_status"], "streaming");
    assert_eq!(lag["replay_paused"], false);

    // Replay paused on the standby while the primary keeps writing: the standby receives the
    // WAL and reports, but replays nothing, so the lag grows at both ends.
    standby.psql("postgres", "SELECT pg_wal_replay_pause()");
    wait_for(
        &standby,
        "postgres",
        "SELECT pg_get_wal_replay_pause_state() = 'paused'",
        "replay to pause",
    );
    let began = Instant::now();
    loop {
        primary.psql(&url, "INSERT INTO t VALUES (1)");
        let seen = primary.psql(
            "postgres",
            "SELECT coalesce(extract(epoch FROM replay_lag) >= 7, false) FROM pg_stat_replication",
        );
        if seen == "t" {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the primary never saw the lag grow"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    primary.psql(&url, "INSERT INTO t VALUES (2)");

    // Default thresholds (warn 5 s, fail 30 s): a warning, with the bytes not yet replayed.
    let (code, o, metrics) = health(&url, "replication_lag", "");
    assert_eq!(code, 0, "{metrics}");
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "warn", "{lag:#}");
    let secs = lag["value"].as_f64().unwrap();
    assert!((7.0..30.0).contains(&secs), "{lag:#}");
    let replica = &lag["replicas"][0];
    assert!(replica["replay_lag_bytes"].as_i64().unwrap() > 0, "{lag:#}");
    assert!(
        lag["message"]
            .as_str()
            .unwrap()
            .contains("worst replay lag"),
        "{lag:#}"
    );
    assert!(
        metrics.contains("runbook_health_check_status{environment=\"dev\",check=\"replication_lag\",status=\"warn\"} 1"),
        "{metrics}"
    );
    // With `fail: 5` the same lag fails the step.
    let (code, _, said) = health(
        &url,
        "replication_lag",
        "      thresholds:\n        replication_lag: { warn: 2, fail: 5 }\n",
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("replication_lag fail: "), "{said}");

    // On the standby: WAL received and not replayed, and the age of the last transaction it
    // replayed.
    let (code, o, _) = health(&standby_url, "replication_lag", "");
    assert_eq!(code, 0);
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "warn", "{lag:#}");
    assert_eq!(lag["replay_paused"], true, "{lag:#}");
    assert!(
        lag["receive_replay_gap_bytes"].as_i64().unwrap() > 0,
        "{lag:#}"
    );
    assert!(lag["value"].as_f64().is_some_and(|v| v >= 7.0), "{lag:#}");
    assert!(
        lag["message"].as_str().unwrap().contains("replay paused"),
        "{lag:#}"
    );

    // Replay resumed: the standby catches up and both ends pass again.
    standby.psql("postgres", "SELECT pg_wal_replay_resume()");
    // The primary forgets the lag it measured once the standby reports twice that it
    // replayed everything.
    wait_for(
        &primary,
        "postgres",
        "SELECT count(*) = 1 FROM pg_stat_replication WHERE replay_lag IS NULL",
        "the standby to catch up again",
    );
    wait_for(
        &standby,
        "postgres",
        "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()",
        "the standby to replay what it received",
    );
    let (code, o, _) = health(&standby_url, "replication_lag", "");
    assert_eq!(code, 0);
    assert_eq!(o["replication_lag"]["status"], "pass", "{o:#}");
    assert_eq!(o["replication_lag"]["value"], 0.0, "{o:#}");
    let (code, o, _) = health(&url, "replication_lag", "");
    assert_eq!(code, 0);
    let lag = &o["replication_lag"];
    assert_eq!(lag["status"], "pass", "{lag:#}");
}
