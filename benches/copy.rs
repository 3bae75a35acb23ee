//! SQLite to PostgreSQL throughput: `runbook` (the `copy` action) against pgloader with its
//! defaults, on the same generated database of 1.1 million rows in four tables and the same
//! throwaway PostgreSQL cluster, each into a fresh database. Both results are checked: row
//! counts on every table, and exact values of sample rows against the SQLite source. Goal
//! (issue 8): at least twice pgloader's rows per second.
//!
//! Run with `cargo build --release && cargo bench --bench copy`. Needs the PostgreSQL server
//! binaries (as the tests do) and pgloader (`apt-get install -y pgloader`).

use sqlx::{ConnectOptions, Row};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// The tests' throwaway cluster: started on first use, stopped and deleted when this exits.
#[allow(dead_code)]
#[path = "../tests/it/support/pg.rs"]
mod pg;

/// Tables and their row counts.
const TABLES: [(&str, u64); 4] = [
    ("User", 50_000),
    ("Patient", 50_000),
    ("Vital", 800_000),
    ("Alarm", 200_000),
];

const SCHEMA: &str = r#"
CREATE TABLE "User" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "email" TEXT NOT NULL,
  "name" TEXT NOT NULL,
  "role" TEXT NOT NULL DEFAULT 'PATIENT',
  "isActive" BOOLEAN NOT NULL DEFAULT true,
  "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
CREATE TABLE "Patient" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "userId" INTEGER NOT NULL REFERENCES "User" ("id") ON DELETE CASCADE,
  "mrn" TEXT NOT NULL,
  "birthWeight" REAL,
  "admittedAt" DATETIME NOT NULL
);
CREATE UNIQUE INDEX "Patient_mrn_key" ON "Patient"("mrn");
CREATE TABLE "Vital" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "patientId" INTEGER NOT NULL REFERENCES "Patient" ("id") ON DELETE CASCADE,
  "recordedAt" DATETIME NOT NULL,
  "heartRate" INTEGER NOT NULL,
  "spo2" REAL NOT NULL,
  "temperature" REAL,
  "respRate" INTEGER
);
CREATE INDEX "Vital_patientId_recordedAt_idx" ON "Vital"("patientId", "recordedAt");
CREATE TABLE "Alarm" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "patientId" INTEGER NOT NULL REFERENCES "Patient" ("id") ON DELETE CASCADE,
  "triggeredAt" DATETIME NOT NULL,
  "status" TEXT NOT NULL DEFAULT 'active',
  "message" TEXT
);
"#;

fn fill(n: &[u64; 4]) -> String {
    format!(
        r#"
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {u})
INSERT INTO "User" (email, name, role, "isActive", "createdAt")
SELECT 'user' || x || '@example.com', 'Nurse ' || x || ' ✓ 看護師', CASE x % 3 WHEN 0 THEN 'ADMIN' ELSE 'PATIENT' END,
       x % 2, datetime(1600000000 + x * 61, 'unixepoch') FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {p})
INSERT INTO "Patient" ("userId", mrn, "birthWeight", "admittedAt")
SELECT x, 'MRN-' || printf('%08d', x), 0.5 + (x % 4000) / 1000.0, datetime(1650000000 + x * 97, 'unixepoch') FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {v})
INSERT INTO "Vital" ("patientId", "recordedAt", "heartRate", spo2, temperature, "respRate")
SELECT 1 + x % {p}, datetime(1700000000 + x * 5, 'unixepoch'), 100 + (x * 7) % 80, 85.0 + (x % 150) / 10.0,
       CASE WHEN x % 10 = 0 THEN NULL ELSE 36.0 + (x % 30) / 17.0 END, 30 + x % 40 FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {a})
INSERT INTO "Alarm" ("patientId", "triggeredAt", status, message)
SELECT 1 + (x * 13) % {p}, datetime(1700000000 + x * 17, 'unixepoch'),
       CASE x % 4 WHEN 0 THEN 'resolved' ELSE 'active' END,
       'SpO2 below threshold' || char(9) || 'bed ' || (x % 40) || CASE WHEN x % 5 = 0 THEN char(10) || 'escalated' ELSE '' END
FROM c;
"#,
        u = n[0],
        p = n[1],
        v = n[2],
        a = n[3]
    )
}

fn main() {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/runbook");
    assert!(
        bin.is_file(),
        "build the release binary first: cargo build --release"
    );
    let pgloader =
        which("pgloader").expect("pgloader is not installed: apt-get install -y pgloader");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let started = Instant::now();
    let counts = TABLES.map(|(_, n)| n);
    rt.block_on(async {
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .connect()
            .await
            .expect("create the SQLite database");
        let sql = format!(
            "PRAGMA synchronous = OFF; BEGIN; {SCHEMA} {} COMMIT;",
            fill(&counts)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .expect("fill the SQLite database");
    });
    let total: u64 = counts.iter().sum();
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "source: {total} rows in {} tables ({}), {:.1} MB SQLite, made in {:.1}s",
        TABLES.len(),
        TABLES
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let cluster = pg::cluster();
    let ours = cluster.create_db("bench_runbook");
    let theirs = cluster.create_db("bench_pgloader");

    // runbook: the release binary, a project with one `copy` step.
    std::fs::create_dir(dir.path().join("playbooks")).expect("playbooks");
    std::fs::write(
        dir.path().join("playbooks/copy.yaml"),
        "name: copy\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:bench.db\", report: report.json }\n",
    )
    .expect("playbook");
    let start = Instant::now();
    let out = Command::new(&bin)
        .args(["-q", "run", "copy", "--target", &ours])
        .current_dir(dir.path())
        .output()
        .expect("runbook runs");
    let runbook_time = start.elapsed();
    assert!(
        out.status.success(),
        "runbook failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.json")).expect("report.json"),
    )
    .expect("report JSON");

    // pgloader with its defaults into a fresh database of the same cluster.
    let start = Instant::now();
    let out = Command::new(&pgloader)
        .arg(format!("sqlite://{}", db.display()))
        .arg(&theirs)
        .current_dir(dir.path())
        .output()
        .expect("pgloader runs");
    let pgloader_time = start.elapsed();
    assert!(
        out.status.success(),
        "pgloader failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Both results: every table's row count, and sample values against the source.
    let source = rt.block_on(samples_from_sqlite(&db));
    let mut pgloader_notes = Vec::new();
    for (label, url) in [("runbook", &ours), ("pgloader", &theirs)] {
        for (table, n) in TABLES {
            let name = relation(cluster, url, table);
            let got = cluster.psql(url, &format!("SELECT count(*) FROM {name}"));
            assert_eq!(got, n.to_string(), "{label}: rows of {table}");
        }
        let vital = relation(cluster, url, "Vital");
        let user = relation(cluster, url, "User");
        let col = |c: &str| column(cluster, url, &vital, c);
        let ucol = |c: &str| column(cluster, url, &user, c);
        let sql = format!(
            "SELECT {id}, {hr}, {spo2}::float8, {t}::float8, to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
             FROM {vital} WHERE {id} IN ({ids}) ORDER BY {id}",
            id = col("id"),
            hr = col("heartRate"),
            spo2 = col("spo2"),
            t = col("temperature"),
            at = col("recordedAt"),
            ids = SAMPLE_IDS.map(|i| i.to_string()).join(", ")
        );
        let got: Vec<String> = cluster
            .psql(url, &format!("SET extra_float_digits = 1; {sql}"))
            .lines()
            .map(str::to_owned)
            .collect();
        let names = cluster.psql(
            url,
            &format!(
                "SELECT {} FROM {user} WHERE {} = 7",
                ucol("name"),
                ucol("id")
            ),
        );
        let mut exact = got.len() == source.vitals.len() && names == source.name_7;
        for (g, s) in got.iter().zip(&source.vitals) {
            if !same_row(g, s) {
                exact = false;
                if label == "pgloader" && pgloader_notes.len() < 3 {
                    pgloader_notes.push(format!("source {s:?}, pgloader {g:?}"));
                }
            }
        }
        if label == "runbook" {
            assert!(
                exact,
                "runbook: sample values differ: {got:?} vs {:?}",
                source.vitals
            );
        } else if !exact {
            pgloader_notes.insert(
                0,
                "pgloader: sample values differ from the source".to_owned(),
            );
        }
        println!(
            "{label:<9} tables: {}",
            TABLES
                .iter()
                .map(|(t, _)| relation(cluster, url, t))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let types = cluster.psql(
            url,
            &format!(
                "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                 FROM pg_attribute WHERE attrelid = '{vital}'::regclass AND attnum > 0"
            ),
        );
        println!("{label:<9} {vital}: {types}");
    }
    for n in &pgloader_notes {
        println!("  {n}");
    }

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    let ours_rate = rate(runbook_time);
    let theirs_rate = rate(pgloader_time);
    println!(
        "runbook   {:>6.2}s  {:>9.0} rows/s  (the action itself: {} rows/s, verified)",
        runbook_time.as_secs_f64(),
        ours_rate,
        report["rows_per_second"]
    );
    println!(
        "pgloader  {:>6.2}s  {:>9.0} rows/s",
        pgloader_time.as_secs_f64(),
        theirs_rate
    );
    let ratio = ours_rate / theirs_rate;
    println!(
        "runbook / pgloader: {ratio:.2}x (goal: at least 2x) -> {}",
        if ratio >= 2.0 { "met" } else { "NOT met" }
    );
}

/// Rows of `Vital` whose values the check compares.
const SAMPLE_IDS: [u64; 4] = [1, 3, 400_001, 799_999];

struct Source {
    /// `id|heartRate|spo2|temperature|recordedAt` per sample row.
    vitals: Vec<String>,
    name_7: String,
}

async fn samples_from_sqlite(db: &Path) -> Source {
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .expect("open the SQLite database");
    let ids = SAMPLE_IDS.map(|i| i.to_string()).join(", ");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        r#"SELECT id, "heartRate", spo2, temperature, "recordedAt" FROM "Vital" WHERE id IN ({ids}) ORDER BY id"#
    )))
    .fetch_all(&mut c)
    .await
    .expect("sample rows");
    let vitals = rows
        .iter()
        .map(|r| {
            let t: Option<f64> = r.get(3);
            format!(
                "{}|{}|{}|{}|{}",
                r.get::<i64, _>(0),
                r.get::<i64, _>(1),
                r.get::<f64, _>(2),
                t.map(|t| t.to_string()).unwrap_or_default(),
                r.get::<String, _>(4)
            )
        })
        .collect();
    let name_7: String = sqlx::query_scalar(r#"SELECT name FROM "User" WHERE id = 7"#)
        .fetch_one(&mut c)
        .await
        .expect("a name");
    Source { vitals, name_7 }
}

/// Rows equal field by field, floats by value.
fn same_row(got: &str, want: &str) -> bool {
    let g: Vec<&str> = got.split('|').collect();
    let w: Vec<&str> = want.split('|').collect();
    g.len() == w.len()
        && g.iter().zip(&w).all(|(a, b)| {
            a == b
                || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if x.to_bits() == y.to_bits())
        })
}

/// The table as each tool named it (pgloader folds names to lower case), quoted.
fn relation(cluster: &pg::PgCluster, url: &str, table: &str) -> String {
    let name = cluster.psql(
        url,
        &format!(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE lower(c.relname) = lower('{table}') AND c.relkind = 'r' \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ),
    );
    assert!(!name.is_empty(), "no table {table} in {url}");
    name
}

fn column(cluster: &pg::PgCluster, url: &str, relation: &str, column: &str) -> String {
    cluster.psql(
        url,
        &format!(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = '{relation}'::regclass \
             AND lower(attname) = lower('{column}')"
        ),
    )
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
