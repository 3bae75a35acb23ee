//! Counts split over two connections (`src/db/health/helper.rs`): the helper counts in the
//! checks' snapshot, so both parts of the list see the database at one moment while a writer
//! commits; where no second connection can be had, the checks' own connection counts it all.

use crate::health::{Background, health_outputs, run_logged, wait_until};
use crate::support::{Project, Target};
use serde_json::Value as Json;

/// Tables counted: more than one message's worth, so the list is split with a helper.
pub(crate) const TABLES: usize = 600;

/// Creates TABLES unlogged tables `T0`.. of `rows(i)` rows each in `url`'s database.
pub(crate) fn tables(url: &str, rows: &str) {
    crate::support::pg::cluster().psql(
        url,
        &format!(
            "DO $$ BEGIN FOR i IN 0..{} LOOP
               EXECUTE format('CREATE UNLOGGED TABLE \"T%s\" (id int) WITH (autovacuum_enabled = off)', i);
               EXECUTE format('INSERT INTO \"T%s\" SELECT generate_series(1, %s)', i, {rows});
             END LOOP; END $$;",
            TABLES - 1
        ),
    );
}

/// A database of TABLES tables of `rows(i)` rows each, owned by a role that may read them and
/// is allowed two connections (the run lock's and the step's, none for a helper): its URL as
/// that role, and its name.
fn two_connections_only(prefix: &str, rows: &str) -> (String, String) {
    let cluster = crate::support::pg::cluster();
    let url = cluster.create_owned_db(prefix);
    let name = url.rsplit('/').next().unwrap().to_owned();
    tables(&name, rows);
    cluster.psql(
        &name,
        &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}_owner; ALTER ROLE {name}_owner CONNECTION LIMIT 2"),
    );
    (url, name)
}

/// Sessions the server counted for `url`'s database, once no connection but `others` is left
/// (a session is counted when it ends), asked from another database so that asking adds none.
fn sessions(url: &str, others: i64) -> i64 {
    let db = url.rsplit('/').next().unwrap();
    let began = std::time::Instant::now();
    loop {
        let row = crate::support::pg::cluster().psql(
            "postgres",
            &format!("SELECT numbackends, sessions FROM pg_stat_database WHERE datname = '{db}'"),
        );
        let (open, ended) = row.split_once('|').unwrap();
        if open.parse::<i64>().unwrap() == others {
            return ended.parse().unwrap();
        }
        assert!(
            began.elapsed().as_secs() < 20,
            "connections left open: {row}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// How many more connections `health` opened for `checks` than for the connection check
/// alone: 1 with a helper, 0 without.
fn helpers_used(p: &Project, url: &str, others: i64, checks: &str) -> i64 {
    let mut opened = Vec::new();
    for checks in [checks, "[connection]"] {
        let before = sessions(url, others);
        run_checks(p, checks);
        opened.push(sessions(url, others) - before);
    }
    opened[0] - opened[1]
}

/// Writes `p`'s playbook `checks`: one `health` step of `checks` (a YAML list).
pub(crate) fn checks_playbook(p: &Project, checks: &str) {
    p.playbook(
        "checks",
        &format!("name: checks\nsteps:\n  - id: health\n    health: {{ checks: {checks} }}\n"),
    );
}

/// The `checks` output of a run of `p` with one `health` step of `checks` (a YAML list),
/// which passes.
fn run_checks(p: &Project, checks: &str) -> Json {
    checks_playbook(p, checks);
    let out = p.run("checks", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    health_outputs(p)["checks"].clone()
}

/// The `row_counts` check's output of a run of `p` counting every table.
fn row_counts(p: &Project) -> Json {
    run_checks(p, "[row_counts]")["row_counts"].clone()
}

/// A writer adds a row to `T0` (counted first, by the checks' connection) and to `T99` (counted
/// last, by the helper) in each of its transactions, committing hundreds a second: counted in
/// one snapshot the two are equal; a helper with a snapshot of its own, taken a connection
/// later, would count more rows in `T99`.
#[test]
fn a_helper_counts_in_the_same_snapshot() {
    let p = Project::new(|_| Target::postgres("health_helper"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    tables(&url, "0");
    let _writer = Background::start(
        &url,
        // Bounded in time: killing psql does not stop the server's loop.
        "DO $$ DECLARE stop timestamptz := clock_timestamp() + interval '60 seconds';
         BEGIN WHILE clock_timestamp() < stop LOOP
           INSERT INTO \"T0\" VALUES (1); INSERT INTO \"T99\" VALUES (1); COMMIT;
         END LOOP; END $$;",
    );
    wait_until(&url, "SELECT count(*) FROM \"T99\"");
    for _ in 0..3 {
        let (printed, checks) = run_checks_logged(&p, "[row_counts]");
        // The helper counted the back of the list, `T99` (the last in name order) with it.
        assert!(
            printed.contains("the helper counted statements ")
                && printed.contains(" to 599 of 600"),
            "{printed}"
        );
        let rows = &checks["row_counts"];
        let tables = rows["tables"].as_object().unwrap();
        assert_eq!(tables.len(), TABLES, "{rows:#}");
        let (first, last) = (
            tables["T0"].as_i64().unwrap(),
            tables["T99"].as_i64().unwrap(),
        );
        assert!(first > 0, "{rows:#}");
        assert_eq!(first, last, "T0 and T99 counted at different moments");
    }
    // The list was shared: a helper counted part of it.
    assert_eq!(helpers_used(&p, &url, 1, "[row_counts]"), 1);
}

/// A role allowed two connections, the run lock's and the step's: the helper is refused, and
/// the checks' connection counts every table itself, exactly.
#[test]
fn without_a_second_connection_every_table_is_still_counted() {
    let (url, name) = two_connections_only("health_alone", "i % 5");
    let p = Project::new(|_| Target::Postgres(url.clone()));
    let rows = row_counts(&p);
    assert!(rows["errors"].as_object().unwrap().is_empty(), "{rows:#}");
    let tables = rows["tables"].as_object().unwrap();
    assert_eq!(tables.len(), TABLES, "{rows:#}");
    for i in 0..TABLES {
        assert_eq!(tables[&format!("T{i}")], i % 5, "T{i}");
    }
    // The helper was tried and refused: no session more than the connection check's.
    let admin = crate::support::pg::cluster().url(&name);
    assert_eq!(helpers_used(&p, &admin, 0, "[row_counts]"), 0);
}

/// Table sizes after counts shared with a helper: each connection sizes its part, and the list
/// is the one a single query gives, ties in size (most tables here are one page) broken by
/// name across the two parts.
#[test]
fn table_sizes_sized_in_two_parts_are_the_single_querys_list() {
    let p = Project::new(|_| Target::postgres("health_sizes"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    // Larger tables in both parts of the name order (T1.. to about T37 are the first), four
    // of two pages, T1 and T10 counted early by the checks' connection and T6 (in the helper's
    // first message from the back) and T5 later, where the list ends, the rest one page each.
    tables(
        &url,
        "CASE WHEN i IN (3, 250, 420, 7, 555, 99) THEN 2000 + i WHEN i IN (1, 10, 5, 6) THEN 300 ELSE 1 END",
    );
    let (printed, checks) = run_checks_logged(&p, "[row_counts, table_sizes]");
    assert!(
        printed.contains("table sizes measured on both connections, the helper's from public.T"),
        "{printed}"
    );
    let sizes = &checks["table_sizes"]["tables"];
    let got: Vec<String> = sizes
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}|{}|{}",
                t["table"].as_str().unwrap(),
                t["bytes"],
                t["heap_bytes"]
            )
        })
        .collect();
    let want = crate::support::pg::cluster().psql(
        &url,
        "SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition AND n.nspname = 'public' \
         ORDER BY 2 DESC, n.nspname, c.relname LIMIT 10",
    );
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(got, want, "{sizes:#}");
    // The list ends in the four tables of two pages, where only the names decide, across
    // the parts.
    assert_eq!(want.len(), 10);
    let last: Vec<&str> = want[6..]
        .iter()
        .map(|l| l.split('|').next().unwrap())
        .collect();
    assert_eq!(last, ["T1", "T10", "T5", "T6"], "{want:?}");
    assert_eq!(helpers_used(&p, &url, 0, "[row_counts, table_sizes]"), 1);
}

/// The checks' titles in the order the step printed them.
fn titles(printed: &str) -> Vec<String> {
    printed
        .lines()
        .filter_map(|l| {
            ["pass", "warn", "fail", "skip"].iter().find_map(|w| {
                let (_, rest) = l.split_once(&format!("  {w}  "))?;
                Some(rest.split_once(':')?.0.to_owned())
            })
        })
        .collect()
}

/// A run of `p` with one `health` step of `checks`, logging at debug level: its output and
/// the step's `checks` output.
fn run_checks_logged(p: &Project, checks: &str) -> (String, Json) {
    checks_playbook(p, checks);
    let printed = run_logged(p, "checks");
    (printed, health_outputs(p)["checks"].clone())
}

/// The size checks in the places `checks` lists them, with the server's figures: measured by
/// the helper while the checks' connection reads the catalog when `helped`, by the checks'
/// connection otherwise.
fn sizes_in_place(p: &Project, admin: &str, helped: bool) {
    let size = || -> i64 {
        crate::support::pg::cluster()
            .psql(admin, "SELECT pg_database_size(current_database())")
            .parse()
            .unwrap()
    };
    let before = size();
    let (printed, checks) = run_checks_logged(
        p,
        "[tablespaces, database_size, row_counts, indexes, version]",
    );
    let after = size();
    // Printed in the checks' own order, whoever measured them.
    assert_eq!(
        titles(&printed),
        [
            "Database Version",
            "Database Size",
            "Table Row Counts",
            "Database Indexes",
            "Tablespace Usage"
        ],
        "{printed}"
    );
    for check in ["database_size", "tablespaces"] {
        let line = format!("the helper measured {check} meanwhile");
        assert_eq!(printed.contains(&line), helped, "{line}:\n{printed}");
    }
    // The server's figure (a backend's relation cache file may come or go meanwhile).
    let bytes = checks["database_size"]["bytes"].as_i64().unwrap();
    let (lo, hi) = (before.min(after), before.max(after));
    assert!(
        bytes >= lo - lo / 100 && bytes <= hi + hi / 100,
        "{bytes} against {before} and {after}"
    );
    let spaces = checks["tablespaces"]["tablespaces"].as_array().unwrap();
    let default = spaces.iter().find(|t| t["name"] == "pg_default").unwrap();
    assert!(default["bytes"].as_i64().unwrap() >= lo, "{spaces:?}");
    assert_eq!(
        checks["row_counts"]["tables"].as_object().unwrap().len(),
        TABLES
    );
}

/// The size checks (the database's and the tablespaces' sizes, walks of every file) are
/// measured on the helper while the checks' connection reads the catalog, `database_size`
/// out of turn, and shown in their places with the server's figures; a role allowed no
/// helper gets the same checks in the same places from its one connection.
#[test]
fn size_checks_measured_by_the_helper_keep_their_places_and_figures() {
    let p = Project::new(|_| Target::postgres("health_side"));
    let Target::Postgres(url) = p.target.clone() else {
        unreachable!()
    };
    tables(&url, "1");
    sizes_in_place(&p, &url, true);

    let (url, name) = two_connections_only("health_side_alone", "1");
    let p = Project::new(|_| Target::Postgres(url.clone()));
    sizes_in_place(&p, &name, false);
}
