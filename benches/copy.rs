//! SQLite to PostgreSQL throughput, four sides on the same generated database of 1.1 million
//! rows in four tables and the same throwaway PostgreSQL cluster, each into a fresh database:
//!
//! - runbook, own tables (`copy` without `into`: it creates the tables, keys and indexes);
//! - runbook, into schema (`into: existing`: the tables made first by DDL equivalent to a Prisma
//!   migration, with non-deferrable foreign keys, as the application's migrations make them);
//! - pgloader with its defaults;
//! - the raw COPY limit: `sqlite3 -csv | psql \copy`, one pipe per table, all four in
//!   parallel, into bare tables made first (no keys, no indexes, no verification).
//!
//! The sides run alternately (each round in a rotated order) and the medians and spreads are
//! printed, with the ratios and the peak memory (maximum RSS) of runbook. Every result is
//! checked: row counts on every table, and exact values of sample rows against the SQLite source
//! (pgloader's differences are noted, not failed). Goals (issues 17 and 20): own tables at least
//! 3x pgloader's rows/s, into schema at least 2x, own tables at most 1.3x the raw COPY limit's
//! time.
//!
//! Run with `cargo build --release && cargo bench --bench copy` (`COPY_BENCH_ROUNDS=N`, default
//! 3; `RUNBOOK=path` times another binary; `COPY_BENCH_SIDES=own,raw` runs only those sides, of
//! own, into, pgloader and raw; `COPY_BENCH_NOTES=1` prints runbook's notes of each run: the
//! phases of each table; `COPY_BENCH_KEEP=1` keeps the folder with the source and the
//! playbooks and prints its path). Needs the PostgreSQL server binaries (as the tests
//! do), sqlite3 and pgloader (`apt-get install -y pgloader sqlite3`).
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

/// The target schema of the into-schema side, as a Prisma migration makes it: `SERIAL` keys,
/// `TIMESTAMP(3)`, `DOUBLE PRECISION`, `BOOLEAN`, and foreign keys that are not deferrable.
const INTO_DDL: &str = r#"
CREATE TABLE "User" ("id" SERIAL NOT NULL, "email" TEXT NOT NULL, "name" TEXT NOT NULL,
  "role" TEXT NOT NULL DEFAULT 'PATIENT', "isActive" BOOLEAN NOT NULL DEFAULT true,
  "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, CONSTRAINT "User_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
CREATE TABLE "Patient" ("id" SERIAL NOT NULL, "userId" INTEGER NOT NULL, "mrn" TEXT NOT NULL,
  "birthWeight" DOUBLE PRECISION, "admittedAt" TIMESTAMP(3) NOT NULL, CONSTRAINT "Patient_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "Patient_mrn_key" ON "Patient"("mrn");
CREATE TABLE "Vital" ("id" SERIAL NOT NULL, "patientId" INTEGER NOT NULL, "recordedAt" TIMESTAMP(3) NOT NULL,
  "heartRate" INTEGER NOT NULL, "spo2" DOUBLE PRECISION NOT NULL, "temperature" DOUBLE PRECISION,
  "respRate" INTEGER, CONSTRAINT "Vital_pkey" PRIMARY KEY ("id"));
CREATE INDEX "Vital_patientId_recordedAt_idx" ON "Vital"("patientId", "recordedAt");
CREATE TABLE "Alarm" ("id" SERIAL NOT NULL, "patientId" INTEGER NOT NULL, "triggeredAt" TIMESTAMP(3) NOT NULL,
  "status" TEXT NOT NULL DEFAULT 'active', "message" TEXT, CONSTRAINT "Alarm_pkey" PRIMARY KEY ("id"));
ALTER TABLE "Patient" ADD CONSTRAINT "Patient_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Vital" ADD CONSTRAINT "Vital_patientId_fkey" FOREIGN KEY ("patientId") REFERENCES "Patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "Alarm" ADD CONSTRAINT "Alarm_patientId_fkey" FOREIGN KEY ("patientId") REFERENCES "Patient"("id") ON DELETE CASCADE ON UPDATE CASCADE;
"#;

/// The raw limit's tables: the same columns and types, nothing else.
const RAW_DDL: &str = r#"
CREATE TABLE "User" ("id" INTEGER, "email" TEXT, "name" TEXT, "role" TEXT, "isActive" BOOLEAN, "createdAt" TIMESTAMP(3));
CREATE TABLE "Patient" ("id" INTEGER, "userId" INTEGER, "mrn" TEXT, "birthWeight" DOUBLE PRECISION, "admittedAt" TIMESTAMP(3));
CREATE TABLE "Vital" ("id" INTEGER, "patientId" INTEGER, "recordedAt" TIMESTAMP(3), "heartRate" INTEGER,
  "spo2" DOUBLE PRECISION, "temperature" DOUBLE PRECISION, "respRate" INTEGER);
CREATE TABLE "Alarm" ("id" INTEGER, "patientId" INTEGER, "triggeredAt" TIMESTAMP(3), "status" TEXT, "message" TEXT);
"#;

/// The four sides, in the order of the first round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Own,
    Into,
    Pgloader,
    Raw,
}

const SIDES: [Side; 4] = [Side::Own, Side::Into, Side::Pgloader, Side::Raw];

impl Side {
    fn key(self) -> &'static str {
        match self {
            Side::Own => "own",
            Side::Into => "into",
            Side::Pgloader => "pgloader",
            Side::Raw => "raw",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Own => "runbook own tables",
            Side::Into => "runbook into schema",
            Side::Pgloader => "pgloader",
            Side::Raw => "raw COPY limit",
        }
    }
}

/// One timed run: wall time and, for runbook, its peak RSS in kB; what it printed, and how
/// busy the machine's cores were while it ran (percent of all of them).
struct Timed {
    time: Duration,
    max_rss_kb: Option<u64>,
    log: String,
    busy_percent: Option<f64>,
}

struct Bench<'a> {
    cluster: &'a pg::PgCluster,
    dir: PathBuf,
    db: PathBuf,
    bin: PathBuf,
    pgloader: PathBuf,
    sqlite3: PathBuf,
    source: Source,
}

fn main() {
    let bin = std::env::var_os("RUNBOOK")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
                .join("release/runbook")
        });
    assert!(
        bin.is_file(),
        "build the release binary first: cargo build --release ({} is missing)",
        bin.display()
    );
    let pgloader =
        which("pgloader").expect("pgloader is not installed: apt-get install -y pgloader");
    let sqlite3 = which("sqlite3").expect("sqlite3 is not installed: apt-get install -y sqlite3");
    let rounds: usize = std::env::var("COPY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let total = make_source(&rt, &db);
    std::fs::create_dir(dir.path().join("playbooks")).expect("playbooks");
    std::fs::write(
        dir.path().join("playbooks/own.yaml"),
        "name: own\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:bench.db\", report: own.json }\n",
    )
    .expect("playbook");
    std::fs::write(
        dir.path().join("playbooks/into.yaml"),
        "name: into\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:bench.db\", into: existing, report: into.json }\n",
    )
    .expect("playbook");
    let bench = Bench {
        cluster: pg::cluster(),
        dir: dir.path().to_owned(),
        source: rt.block_on(samples_from_sqlite(&db)),
        db,
        bin,
        pgloader,
        sqlite3,
    };
    let sides = chosen_sides();
    let mut times: Vec<(Side, Timed)> = Vec::new();
    for round in 0..rounds {
        for k in 0..sides.len() {
            let side = sides[(k + round) % sides.len()];
            let t = bench.run(side, round == 0);
            println!(
                "round {}: {:<20} {:>6.2}s{}",
                round + 1,
                side.label(),
                t.time.as_secs_f64(),
                t.max_rss_kb
                    .map(|kb| format!("  peak RSS {:.1} MB", kb as f64 / 1024.0))
                    .unwrap_or_default()
            );
            times.push((side, t));
        }
    }
    summary(&times, total, rounds);
    if std::env::var_os("COPY_BENCH_KEEP").is_some() {
        // The source and playbooks stay, to run a side again by hand.
        println!("kept: {}", dir.keep().display());
    }
}

/// The sides `COPY_BENCH_SIDES` names (all four without it), in the usual order.
fn chosen_sides() -> Vec<Side> {
    let Ok(names) = std::env::var("COPY_BENCH_SIDES") else {
        return SIDES.to_vec();
    };
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    let keys: Vec<&str> = SIDES.iter().map(|s| s.key()).collect();
    for n in &names {
        assert!(
            keys.contains(n),
            "COPY_BENCH_SIDES: `{n}` is none of {}",
            keys.join(", ")
        );
    }
    SIDES
        .into_iter()
        .filter(|s| names.contains(&s.key()))
        .collect()
}

/// Makes the SQLite source; returns its row count.
fn make_source(rt: &tokio::runtime::Runtime, db: &Path) -> u64 {
    let started = Instant::now();
    let counts = TABLES.map(|(_, n)| n);
    rt.block_on(async {
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
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
    let size = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
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
    total
}

impl Bench<'_> {
    /// One side into a fresh database, checked, then dropped.
    fn run(&self, side: Side, first: bool) -> Timed {
        let url = self.cluster.create_db("bench_copy");
        match side {
            Side::Into => self.cluster.psql(&url, INTO_DDL),
            Side::Raw => self.cluster.psql(&url, RAW_DDL),
            _ => String::new(),
        };
        let timed = match side {
            Side::Own | Side::Into => {
                let name = if side == Side::Own { "own" } else { "into" };
                let notes = std::env::var_os("COPY_BENCH_NOTES").is_some();
                let mut cmd = Command::new(&self.bin);
                if !notes {
                    cmd.arg("-q");
                }
                cmd.args(["run", name, "--target", &url])
                    .current_dir(&self.dir);
                let t = measured(cmd, side.label());
                if notes {
                    for line in t
                        .log
                        .lines()
                        .filter(|l| l.contains("s (") || l.contains("key"))
                    {
                        println!("    {line}");
                    }
                    if let Some(b) = t.busy_percent {
                        // How much of the cores the work left idle.
                        println!("    machine busy {b:.0}% of its cores while it ran");
                    }
                }
                t
            }
            Side::Pgloader => {
                let mut cmd = Command::new(&self.pgloader);
                cmd.arg(format!("sqlite://{}", self.db.display()))
                    .arg(&url)
                    .current_dir(&self.dir);
                let mut t = measured(cmd, side.label());
                t.max_rss_kb = None;
                t
            }
            Side::Raw => self.raw(&url),
        };
        self.check(side, &url, first);
        let name = url.rsplit('/').next().expect("a database name");
        self.cluster
            .psql("postgres", &format!("DROP DATABASE {name}"));
        timed
    }

    /// `sqlite3 -csv | psql \copy`, one pipe per table, all at once.
    fn raw(&self, url: &str) -> Timed {
        let psql = self.cluster.bin_dir().join("psql");
        let start = Instant::now();
        let children: Vec<_> = TABLES
            .iter()
            .map(|(t, _)| {
                let script = format!(
                    "'{}' -csv '{}' 'SELECT * FROM \"{t}\"' | '{}' -X -q -v ON_ERROR_STOP=1 -d '{url}' \
                     -c '\\copy \"{t}\" FROM STDIN WITH (FORMAT csv)'",
                    self.sqlite3.display(),
                    self.db.display(),
                    psql.display()
                );
                Command::new("bash")
                    .args(["-o", "pipefail", "-c", &script])
                    .spawn()
                    .expect("sh runs")
            })
            .collect();
        for mut c in children {
            assert!(c.wait().expect("wait").success(), "the raw COPY failed");
        }
        Timed {
            time: start.elapsed(),
            max_rss_kb: None,
            log: String::new(),
            busy_percent: None,
        }
    }

    /// Row counts of every table, and sample values against the source.
    fn check(&self, side: Side, url: &str, first: bool) {
        let cluster = self.cluster;
        for (table, n) in TABLES {
            let name = relation(cluster, url, table);
            let got = cluster.psql(url, &format!("SELECT count(*) FROM {name}"));
            assert_eq!(got, n.to_string(), "{}: rows of {table}", side.label());
        }
        let vital = relation(cluster, url, "Vital");
        let user = relation(cluster, url, "User");
        let col = |c: &str| column(cluster, url, &vital, c);
        let ucol = |c: &str| column(cluster, url, &user, c);
        let sql = format!(
            "SET TIME ZONE 'UTC'; SET extra_float_digits = 1; \
             SELECT {id}, {hr}, {spo2}::float8, {t}::float8, to_char({at}::timestamp, 'YYYY-MM-DD HH24:MI:SS') \
             FROM {vital} WHERE {id} IN ({ids}) ORDER BY {id}",
            id = col("id"),
            hr = col("heartRate"),
            spo2 = col("spo2"),
            t = col("temperature"),
            at = col("recordedAt"),
            ids = SAMPLE_IDS.map(|i| i.to_string()).join(", ")
        );
        let got: Vec<String> = cluster.psql(url, &sql).lines().map(str::to_owned).collect();
        let names = cluster.psql(
            url,
            &format!(
                "SELECT {} FROM {user} WHERE {} = 7",
                ucol("name"),
                ucol("id")
            ),
        );
        let source = &self.source;
        let exact = got.len() == source.vitals.len()
            && names == source.name_7
            && got.iter().zip(&source.vitals).all(|(g, s)| same_row(g, s));
        // pgloader stores REAL as float4; sqlite3 -csv prints 15 significant digits: both
        // anchors lose float digits, which is noted, not failed.
        if matches!(side, Side::Pgloader | Side::Raw) {
            if !exact && first {
                println!(
                    "  {}: sample values differ from the source: {got:?} vs {:?}",
                    side.label(),
                    source.vitals
                );
            }
        } else {
            assert!(
                exact,
                "{}: sample values differ: {got:?} vs {:?}",
                side.label(),
                source.vitals
            );
        }
        if first && side != Side::Raw {
            let types = cluster.psql(
                url,
                &format!(
                    "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
                     FROM pg_attribute WHERE attrelid = '{vital}'::regclass AND attnum > 0 AND NOT attisdropped"
                ),
            );
            println!("  {:<20} {vital}: {types}", side.label());
        }
    }
}

/// Runs `cmd` to its end; the wall time and the child's peak RSS (wait4's rusage).
fn measured(mut cmd: Command, label: &str) -> Timed {
    let log = tempfile::tempfile().expect("log file");
    cmd.stdout(log.try_clone().expect("log"))
        .stderr(log.try_clone().expect("log"));
    let cpu_before = cpu_ticks();
    let start = Instant::now();
    // Reaped by wait4 below (which also gives its rusage), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("the command starts");
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes it and the status of our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let time = start.elapsed();
    let cpu_after = cpu_ticks();
    assert_eq!(r, pid, "wait4");
    use std::io::{Read, Seek};
    let mut log = log;
    let mut out = String::new();
    let _ = log.seek(std::io::SeekFrom::Start(0));
    let _ = log.read_to_string(&mut out);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        panic!("{label} failed:\n{out}");
    }
    let (busy, all) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    Timed {
        time,
        max_rss_kb: u64::try_from(usage.ru_maxrss).ok(),
        log: out,
        busy_percent: (all > 0).then(|| busy as f64 * 100.0 / all as f64),
    }
}

/// Busy and all ticks of every core so far, from /proc/stat (zeros where it cannot be read).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let all: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all - idle, all)
}

/// The median and the spread (min-max) of each side, the rates and the ratios.
fn summary(times: &[(Side, Timed)], total: u64, rounds: usize) {
    let secs = |side: Side| -> Vec<f64> {
        let mut v: Vec<f64> = times
            .iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, t)| t.time.as_secs_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let median = |v: &[f64]| {
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    // A side's median; `None` when COPY_BENCH_SIDES left it out.
    let med = |side: Side| {
        let v = secs(side);
        (!v.is_empty()).then(|| median(&v))
    };
    let rss: Vec<f64> = {
        let mut v: Vec<f64> = times
            .iter()
            .filter_map(|(_, t)| t.max_rss_kb.map(|kb| kb as f64 / 1024.0))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    println!();
    println!("medians of {rounds} rounds, sides alternating; {total} rows");
    println!(
        "{:<20} {:>8} {:>17} {:>11} {:>12} {:>10}",
        "side", "median", "spread", "rows/s", "x pgloader", "x raw time"
    );
    let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}x"));
    for side in SIDES {
        let Some(m) = med(side) else {
            continue;
        };
        let v = secs(side);
        println!(
            "{:<20} {:>7.2}s {:>7.2}s-{:>6.2}s {:>11.0} {:>12} {:>10}",
            side.label(),
            m,
            v[0],
            v[v.len() - 1],
            total as f64 / m,
            ratio(med(Side::Pgloader).map(|p| p / m)),
            ratio(med(Side::Raw).map(|r| m / r))
        );
    }
    if !rss.is_empty() {
        println!(
            "runbook peak RSS: median {:.1} MB (min {:.1}, max {:.1})",
            median(&rss),
            rss[0],
            rss[rss.len() - 1]
        );
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    if let (Some(pgloader), Some(own)) = (med(Side::Pgloader), med(Side::Own)) {
        let own = pgloader / own;
        println!(
            "goal own tables >= 3x pgloader: {own:.2}x -> {}",
            met(own >= 3.0)
        );
    }
    if let (Some(pgloader), Some(into)) = (med(Side::Pgloader), med(Side::Into)) {
        let into = pgloader / into;
        println!(
            "goal into schema >= 2x pgloader: {into:.2}x -> {}",
            met(into >= 2.0)
        );
    }
    if let (Some(own), Some(raw)) = (med(Side::Own), med(Side::Raw)) {
        let raw = own / raw;
        println!(
            "goal own tables <= 1.3x raw COPY time: {raw:.2}x -> {}",
            met(raw <= 1.3)
        );
    }
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
