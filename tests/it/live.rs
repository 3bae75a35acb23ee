//! The connected dry-run: `runbook plan` without `--offline` reads the target through a
//! read-only connection and shows pending migrations, lint findings with live row estimates,
//! the current values behind condition gates, and with `--rehearse` the locks migrations take.

use crate::support::pg;
use crate::support::{Project, Target};

fn project() -> Project {
    let p = Project::new(|_| Target::postgres("live"));
    std::fs::create_dir_all(p.path().join("migrations/postgres")).unwrap();
    std::fs::write(
        p.path().join("migrations/postgres/001_orders.sql"),
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        p.path()
            .join("migrations/postgres/002_orders_total_idx.sql"),
        "CREATE INDEX orders_total_idx ON orders (total);\n",
    )
    .unwrap();
    p.playbook(
        "ship",
        r#"
name: ship
steps:
  - id: orders
    sql: { query: "SELECT count(*) FROM orders" }
  - id: enough
    gate:
      condition:
        expr: steps.orders.outputs.scalar > 1000
        message: "too few orders"
  - id: migrate
    migrate: { action: apply }
"#,
    );
    p
}

#[test]
fn a_connected_plan_shows_pending_migrations_lint_with_row_estimates_and_gate_values() {
    let p = project();
    let url = match &p.target {
        Target::Postgres(u) => u.clone(),
        Target::Sqlite(_) => unreachable!(),
    };
    // The table exists and is populated (made by hand, as in a database adopted mid-life).
    pg::cluster().psql(&url, "CREATE TABLE IF NOT EXISTS orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL); INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 50000) g; ANALYZE orders");
    let t = p.target.arg();
    let out = p.cmd(&["plan", "ship", "--env", "dev", "--target", &t]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stdout.contains("connected read-only to"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("pending migrations: 2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("require-concurrent-index-creation"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("~50000 rows"),
        "the finding carries the live row estimate: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("`steps.orders.outputs.scalar > 1000` is currently true (true)"),
        "{}",
        out.stdout
    );
    let json = p.cmd(&[
        "plan", "ship", "--env", "dev", "--target", &t, "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["live"]["condition_gates"][0]["holds"], true);
    assert_eq!(
        v["live"]["migrations"]["pending"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn a_connected_plan_cannot_write() {
    let p = project();
    let url = match &p.target {
        Target::Postgres(u) => u.clone(),
        Target::Sqlite(_) => unreachable!(),
    };
    pg::cluster().psql(
        &url,
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, total INTEGER NOT NULL)",
    );
    // A query that writes, hidden behind WITH: the read-only session refuses it.
    p.playbook(
        "sneaky",
        r#"
name: sneaky
steps:
  - id: orders
    sql: { query: "WITH x AS (INSERT INTO orders VALUES (1, 1) RETURNING 1) SELECT count(*) FROM x" }
  - id: check
    gate: { condition: { expr: steps.orders.outputs.scalar >= 0, message: "never" } }
"#,
    );
    let t = p.target.arg();
    let out = p.cmd(&["plan", "sneaky", "--env", "dev", "--target", &t]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stdout.contains("read-only transaction"),
        "the write attempt failed: {}",
        out.stdout
    );
    assert_eq!(pg::cluster().psql(&url, "SELECT count(*) FROM orders"), "0");
}

#[test]
fn plan_rehearse_reports_locks_and_changes_nothing() {
    let p = project();
    let url = match &p.target {
        Target::Postgres(u) => u.clone(),
        Target::Sqlite(_) => unreachable!(),
    };
    let t = p.target.arg();
    let out = p.cmd(&["plan", "ship", "--env", "dev", "--target", &t, "--rehearse"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stdout.contains("rehearsal (rolled back)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("AccessExclusiveLock"), "{}", out.stdout);
    assert_eq!(
        pg::cluster().psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"
        ),
        "0",
        "the schema is unchanged"
    );
}

/// CI lints migrations without a database: `runbook plan --offline` lints every PostgreSQL
/// migration file against an empty schema (squawk needs no server), in text and JSON; a
/// playbook that migrates nothing gets no lint.
#[test]
fn an_offline_plan_lints_the_migrations_against_an_empty_schema() {
    let p = project();
    std::fs::write(
        p.path().join("migrations/postgres/003_bad.sql"),
        "UPDATE orders SET total = 1, total = 2;\n",
    )
    .unwrap();
    let text = p.cmd(&["plan", "ship", "--env", "dev", "--offline"]);
    assert_eq!(text.code, 0, "{}", text.combined());
    let out = &text.stdout;
    assert!(
        out.contains("lint (offline, against an empty schema): 3 files in `migrations/postgres`"),
        "{out}"
    );
    // An index on a table created by an earlier file: empty, a brief lock, a warning.
    assert!(
        out.contains("002_orders_total_idx.sql:1:1 warning require-concurrent-index-creation"),
        "{out}"
    );
    assert!(out.contains("judged against an empty schema"), "{out}");
    // What cannot run as written stays an error, database or not.
    assert!(
        out.contains("003_bad.sql:1:") && out.contains("error ban-duplicate-column-assignments"),
        "{out}"
    );
    let json = p.cmd(&[
        "plan",
        "ship",
        "--env",
        "dev",
        "--offline",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["live"]["connected"], false, "{}", json.stdout);
    let rules: Vec<&str> = v["live"]["lint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"require-concurrent-index-creation"),
        "{rules:?}"
    );
    // No migrate step: nothing to lint.
    p.playbook(
        "count",
        "name: count\nsteps:\n  - id: c\n    sql: { query: \"SELECT 1\" }\n",
    );
    let none = p.cmd(&["plan", "count", "--env", "dev", "--offline"]);
    assert!(!none.stdout.contains("lint (offline"), "{}", none.stdout);
}
