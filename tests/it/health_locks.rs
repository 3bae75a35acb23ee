//! Counting more tables than the server's lock table holds: one snapshot over all of them,
//! each message's locks released by rolling back to its savepoint.

use crate::support::pg::PgCluster;
use crate::support::{Project, Target};

/// Tables to count: more than a transaction holding all their locks at once may take on the
/// small lock table below (asserted first, so the test shows what it claims).
const TABLES: usize = 2_000;

#[test]
fn more_tables_than_the_lock_table_holds_are_all_counted() {
    // Room for about 10 x (10 + the server's own processes) locks.
    let server = PgCluster::own("max_connections = 10\nmax_locks_per_transaction = 10\n");
    let url = server.create_db("locks");
    for from in (0..TABLES).step_by(100) {
        server.psql(
            &url,
            &format!(
                "DO $$ BEGIN FOR i IN {from}..{} LOOP
                   EXECUTE format('CREATE TABLE t%s (id int)', i);
                   EXECUTE format('INSERT INTO t%s SELECT generate_series(1, %s)', i, i % 3);
                 END LOOP; END $$;",
                from + 99
            ),
        );
    }
    let p = Project::new(|_| Target::Postgres(url.clone()));
    p.playbook(
        "health-it",
        "name: health-it\nsteps:\n  - id: health\n    health: { checks: [row_counts] }\n",
    );
    let out = p.run("health-it", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let st = p.status_json(&p.last_run().0);
    let rows = &st["steps"][0]["outputs"]["checks"]["row_counts"];
    assert!(rows["errors"].as_object().unwrap().is_empty(), "{rows:#}");
    let tables = rows["tables"].as_object().unwrap();
    assert_eq!(tables.len(), TABLES, "{rows:#}");
    for i in 0..TABLES {
        assert_eq!(tables[&format!("t{i}")], i % 3, "t{i}");
    }
    assert_eq!(rows["total"], (0..TABLES).map(|i| i % 3).sum::<usize>());
    // Not one statement ran out of locks on the way (a count that failed and counted when
    // run again alone would not show in the outputs).
    let data = server.psql(&url, "SHOW data_directory");
    let log_file = std::path::Path::new(&data).with_file_name("server.log");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(!log.contains("out of shared memory"), "{log}");
    // Every table read in one transaction, as the server logs it, runs out of locks.
    let one_transaction = std::process::Command::new(server.bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c"])
        .arg(format!(
            "DO $$ DECLARE n int8; BEGIN FOR i IN 0..{} LOOP
               EXECUTE format('SELECT count(*) FROM t%s', i) INTO n;
             END LOOP; END $$;",
            TABLES - 1
        ))
        .output()
        .expect("psql starts");
    assert!(!one_transaction.status.success());
    let stderr = String::from_utf8_lossy(&one_transaction.stderr);
    assert!(stderr.contains("out of shared memory"), "{stderr}");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("out of shared memory"), "{log}");
}
