//! The maintenance actions on real PostgreSQL: `vacuum` (named tables, every table, `full`
//! only after a gate) and `reindex` (concurrently, named indexes and tables, every table),
//! their outputs, and what they refuse.

use crate::support::{Output, Project, Target};
use serde_json::Value as Json;

fn postgres() -> Project {
    let p = Project::new(|_| Target::postgres("maint"));
    p.target.query(
        "CREATE TABLE orders (id int PRIMARY KEY, note text);
         CREATE INDEX orders_note ON orders (note);
         CREATE SCHEMA sales;
         CREATE TABLE sales.\"Lines\" (id int PRIMARY KEY);
         INSERT INTO orders SELECT g, 'n' || g FROM generate_series(1, 2000) g;
         DELETE FROM orders WHERE id % 2 = 0;",
    );
    p
}

/// Runs a playbook of the given steps; returns the output and the outputs of step `m`.
fn run(p: &Project, steps: &str, extra: &[&str]) -> (Output, Json) {
    p.playbook("maint", &format!("name: maint\nsteps:\n{steps}"));
    let out = p.run("maint", extra);
    let (run, _) = p.last_run();
    let status = p.status_json(&run);
    let step = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "m")
        .cloned()
        .unwrap_or(Json::Null);
    (out, step["outputs"].clone())
}

fn names(list: &Json) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn filenode(p: &Project, rel: &str) -> String {
    p.target
        .query(&format!("SELECT pg_relation_filenode('{rel}')"))[0]
        .clone()
}

#[test]
fn vacuum_analyzes_named_tables_or_every_table() {
    let p = postgres();
    let (out, o) = run(
        &p,
        "  - id: m\n    vacuum: { tables: [orders, 'sales.\"Lines\"'] }\n",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(names(&o["tables"]), ["orders", "sales.\"Lines\""]);
    assert_eq!(o["count"], 2);
    assert!(o["tables"][0]["size_before"].as_i64().unwrap() > 0, "{o}");
    assert!(
        out.stderr.contains("vacuumed 2 tables and analyzed them"),
        "{}",
        out.stderr
    );
    // The server says both ran on `orders`.
    assert_eq!(
        p.target.query(
            "SELECT (last_vacuum IS NOT NULL)::text || (last_analyze IS NOT NULL)::text \
             FROM pg_stat_user_tables WHERE relname = 'orders'"
        ),
        ["truetrue"]
    );

    let (out, o) = run(&p, "  - id: m\n    vacuum: { analyze: false }\n", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(names(&o["tables"]), ["orders", "sales.\"Lines\""]);
    assert!(
        out.stderr.contains("vacuumed 2 tables in"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_full_vacuum_needs_a_gate_in_every_environment() {
    let p = postgres();
    p.playbook(
        "maint",
        "name: maint\nsteps:\n  - id: m\n    vacuum: { tables: [orders], full: true }\n",
    );
    let out = p.run("maint", &[]);
    assert_eq!(out.code, 2, "{}", out.combined());
    assert!(
        out.stderr.contains("unguarded-full-vacuum"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("without a gate before it"),
        "{}",
        out.stderr
    );

    let db = p.target.query("SELECT current_database()")[0].clone();
    let before = filenode(&p, "orders");
    let steps = "  - id: ok\n    gate: { confirm: { message: rewrite orders } }\n  - id: m\n    vacuum: { tables: [orders], full: true }\n";
    let (out, o) = run(&p, steps, &["--confirm", &db]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(names(&o["tables"]), ["orders"]);
    // VACUUM FULL rewrote the table into a new file, half of its rows gone.
    assert_ne!(filenode(&p, "orders"), before);
    let t = &o["tables"][0];
    assert!(t["size_after"].as_i64() < t["size_before"].as_i64(), "{o}");
    assert!(
        out.stderr.contains("VACUUM FULL orders in"),
        "{}",
        out.stderr
    );
}

/// The gate a full vacuum needs is one that passed earlier in this run: a gate that was
/// skipped (validation sees only that one comes before) does not count, nor one further on.
#[test]
fn a_full_vacuum_runs_only_after_a_gate_that_passed() {
    let p = postgres();
    let db = p.target.query("SELECT current_database()")[0].clone();
    let before = filenode(&p, "orders");
    let skipped = "  - id: skipped\n    when: \"false\"\n    gate: { confirm: { message: rewrite orders } }\n";
    let steps = format!("{skipped}  - id: m\n    vacuum: {{ tables: [orders], full: true }}\n");
    let (out, _) = run(&p, &steps, &["--confirm", &db]);
    assert_ne!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("it runs only after a `confirm` or `approval` gate earlier in the run"),
        "{}",
        out.stderr
    );
    assert_eq!(filenode(&p, "orders"), before, "the table was rewritten");

    // Before the gate that passes: refused; after it: run.
    let steps = format!(
        "{skipped}  - id: early\n    continue_on_error: true\n    vacuum: {{ tables: [orders], full: true }}\n  - id: ok\n    gate: {{ confirm: {{ message: rewrite orders }} }}\n  - id: m\n    vacuum: {{ tables: [orders], full: true }}\n"
    );
    let (out, o) = run(&p, &steps, &["--confirm", &db]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("it runs only after a `confirm` or `approval` gate earlier in the run"),
        "early was not refused: {}",
        out.stderr
    );
    assert_eq!(names(&o["tables"]), ["orders"]);
    assert_ne!(filenode(&p, "orders"), before);
}

#[test]
fn reindex_rebuilds_concurrently_what_it_is_given() {
    let p = postgres();
    let note = filenode(&p, "orders_note");
    let pkey = filenode(&p, "orders_pkey");
    let (out, o) = run(
        &p,
        "  - id: m\n    reindex: { indexes: [orders_note] }\n",
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(names(&o["indexes"]), ["orders_note"]);
    assert!(
        out.stderr
            .contains("REINDEX INDEX CONCURRENTLY orders_note in"),
        "{}",
        out.stderr
    );
    assert_ne!(filenode(&p, "orders_note"), note);
    assert_eq!(filenode(&p, "orders_pkey"), pkey);

    let (out, o) = run(&p, "  - id: m\n    reindex: {}\n", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(names(&o["tables"]), ["orders", "sales.\"Lines\""]);
    assert_ne!(filenode(&p, "orders_pkey"), pkey);
    // Nothing invalid is left behind.
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
        ["0"]
    );

    let (out, _) = run(
        &p,
        "  - id: m\n    reindex: { tables: [orders_note] }\n",
        &[],
    );
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`orders_note` under `tables` is not a table"),
        "{}",
        out.stderr
    );
    let (out, _) = run(&p, "  - id: m\n    vacuum: { tables: [nope] }\n", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("no table or index `nope`"),
        "{}",
        out.stderr
    );
}

#[test]
fn locking_maintenance_needs_a_gate_in_a_protected_environment() {
    let p = postgres();
    std::fs::write(
        p.path().join("runbook.yaml"),
        "environments:\n  production:\n    target: { url_env: PROD_URL }\n    protections: { protected: true }\n",
    )
    .unwrap();
    p.playbook(
        "maint",
        "name: maint\nsteps:\n  - id: m\n    reindex: { tables: [orders], concurrently: false }\n  - id: v\n    vacuum: {}\n  - id: g\n    migrate: { action: apply, on_blocked: { blocker: terminate, after: 5s } }\n",
    );
    let out = p.cmd(&["validate", "maint"]);
    assert_eq!(out.code, 2, "{}", out.combined());
    for needle in [
        "`reindex` without `concurrently` blocks writes while it rebuilds in protected environment",
        "`on_blocked` cancels or terminates other sessions in protected environment",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    // A plain vacuum takes no lock that blocks reads or writes: no gate needed.
    assert!(!out.stderr.contains("steps.1"), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("unguarded-destructive").count(),
        2,
        "{}",
        out.stderr
    );
}

#[test]
fn a_rebuild_shows_its_phases_while_it_waits_for_a_writer() {
    let p = postgres();
    let session = crate::support::pg::cluster().hold(
        &p.target.arg(),
        "BEGIN;\nINSERT INTO orders VALUES (5001, 'w');",
    );
    // Released 2.5 s after the rebuild is seen waiting for it (not after a fixed time from
    // here: a loaded machine can take longer than that to start the run).
    let target = p.target.arg();
    let release = std::thread::spawn(move || {
        let began = std::time::Instant::now();
        while began.elapsed().as_secs() < 60
            && crate::support::pg::cluster().psql(
                &target,
                "SELECT count(*) FROM pg_stat_progress_create_index WHERE phase LIKE 'waiting for writers%'",
            ) != "1"
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(2500));
        session.release();
    });
    let (out, o) = run(
        &p,
        "  - id: m\n    reindex: { indexes: [orders_note] }\n",
        &[],
    );
    release.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("REINDEX INDEX CONCURRENTLY orders_note: waiting for writers before build"),
        "{}",
        out.stderr
    );
    assert!(
        o["indexes"][0]["duration_ms"].as_u64().unwrap() >= 2000,
        "{o}"
    );
}

#[test]
fn a_timed_out_rebuild_is_cancelled_and_names_the_invalid_index_it_left() {
    let p = postgres();
    let session = crate::support::pg::cluster().hold(
        &p.target.arg(),
        "BEGIN;\nINSERT INTO orders VALUES (5001, 'w');",
    );
    let steps = "  - id: m\n    timeout: 2s\n    reindex: { indexes: [orders_note] }\n";
    let (out, _) = run(&p, steps, &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    for needle in [
        "timed out after 2s",
        "the interrupted rebuild left INVALID index behind: orders_note_ccnew",
        "DROP INDEX CONCURRENTLY",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    // The statement was cancelled on the server, not left waiting for the writer (which
    // still holds its transaction open): it ends within moments of the cancel.
    let active = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                  AND query LIKE 'REINDEX%' AND state = 'active'";
    let began = std::time::Instant::now();
    while p.target.query(active) != ["0"] {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(10),
            "the rebuild is still running after its cancel"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(session);
}
