//! `copy`: a real SQLite database into a real PostgreSQL through the binary. Content is checked
//! by the tests' own queries on both sides, not only by the action's checksum.

use crate::support::pg;
use crate::support::{Project, Target};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Runs `f` against a SQLite database file (created if missing).
pub(crate) fn with_sqlite<T>(
    path: &Path,
    f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> T,
) -> T {
    use sqlx::ConnectOptions;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        f(&mut conn).await
    })
}

pub(crate) async fn exec(conn: &mut sqlx::SqliteConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Five megabytes of text with every character COPY escapes, and multi-byte ones.
fn long_text() -> String {
    let unit = "Lorem ipsum ✓ 漢字 tab\there back\\slash new\nline cr\rend. ";
    let mut s = String::with_capacity(5 * 1024 * 1024 + unit.len());
    while s.len() < 5 * 1024 * 1024 {
        s.push_str(unit);
    }
    s
}

const NAME_1: &str = "😀 Ana\twith tab\nnew line\\backslash";
const NAME_2: &str = "王小明";
/// `e` followed by a combining acute accent, and a zero-width joiner sequence.
const NAME_3: &str = "Zoe\u{301} 👩\u{200d}💻";

/// email, name, isActive, score, balance, createdAt as milliseconds or as text, profile.
type UserRow = (
    &'static str,
    &'static str,
    i64,
    f64,
    Option<f64>,
    Option<i64>,
    Option<&'static str>,
    Option<&'static str>,
);

fn build_source(path: &Path) {
    with_sqlite(path, async |c| {
        exec(
            c,
            r#"
            CREATE TABLE "User" (
              "id" INTEGER PRIMARY KEY AUTOINCREMENT,
              "email" TEXT NOT NULL,
              "name" TEXT,
              "isActive" BOOLEAN NOT NULL DEFAULT true,
              "score" REAL NOT NULL DEFAULT 0,
              "balance" DECIMAL(10,2),
              "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
              "profile" JSON
            );
            CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
            CREATE TABLE "Post" (
              "id" INTEGER PRIMARY KEY AUTOINCREMENT,
              "authorId" INTEGER NOT NULL,
              "title" TEXT NOT NULL DEFAULT 'untitled',
              "body" TEXT,
              "attachment" BLOB,
              "rank" INTEGER DEFAULT (abs(random()) % 10),
              CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User" ("id")
                ON DELETE CASCADE ON UPDATE CASCADE
            );
            CREATE INDEX "Post_authorId_idx" ON "Post"("authorId");
            CREATE TABLE misc (
              k TEXT PRIMARY KEY,
              anything,
              raw,
              note TEXT,
              n NUMERIC,
              r REAL,
              UNIQUE (note, n)
            ) WITHOUT ROWID;
            CREATE VIEW active_users AS SELECT * FROM "User" WHERE "isActive";
            "#,
        )
        .await;
        let users: [UserRow; 4] = [
            (
                "ana@example.com",
                NAME_1,
                1,
                0.1,
                Some(12.5),
                Some(1_700_000_000_123),
                None,
                Some(r#"{"b": 1, "a": [1, 2.5, "x\u00e9"]}"#),
            ),
            (
                "wang@example.com",
                NAME_2,
                0,
                1e300,
                Some(29.99),
                None,
                Some("2024-02-29 12:34:56"),
                None,
            ),
            (
                "zoe@example.com",
                NAME_3,
                1,
                -1.0 / 3.0,
                None,
                None,
                None,
                Some("[]"),
            ),
            (
                "gone@example.com",
                "deleted",
                1,
                5e-324,
                None,
                Some(0),
                None,
                None,
            ),
        ];
        for (email, name, active, score, balance, ms, text_ts, profile) in users {
            let q = if ms.is_some() || text_ts.is_some() {
                r#"INSERT INTO "User" (email, name, "isActive", score, balance, "createdAt", profile)
                   VALUES (?1, ?2, ?3, ?4, ?5, coalesce(?6, ?7), ?8)"#
            } else {
                r#"INSERT INTO "User" (email, name, "isActive", score, balance, profile)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?8)"#
            };
            sqlx::query(q)
                .bind(email)
                .bind(name)
                .bind(active)
                .bind(score)
                .bind(balance)
                .bind(ms)
                .bind(text_ts)
                .bind(profile)
                .execute(&mut *c)
                .await
                .unwrap();
        }
        // AUTOINCREMENT remembers 4 although the highest id left is 3.
        exec(c, r#"DELETE FROM "User" WHERE id = 4"#).await;
        let every_byte: Vec<u8> = (0..=255).collect();
        sqlx::query(r#"INSERT INTO "Post" ("authorId", body, attachment) VALUES (1, ?1, ?2)"#)
            .bind(long_text())
            .bind(every_byte)
            .execute(&mut *c)
            .await
            .unwrap();
        exec(
            c,
            r#"
            INSERT INTO "Post" ("authorId", title, body, attachment, rank) VALUES (2, 'hello', NULL, NULL, 3);
            INSERT INTO "Post" ("authorId", title, body, attachment, rank) VALUES (1, 'empty', '', x'', 4);
            INSERT INTO misc VALUES ('a', 42, x'00ff', 'plain', 1, 1.5);
            INSERT INTO misc VALUES ('b', 2.5, 'text in raw', CAST(x'610062' AS TEXT), 2.5, 0);
            INSERT INTO misc VALUES ('c', 'hello', NULL, NULL, NULL, NULL);
            INSERT INTO misc VALUES ('d', NULL, 7, 'x', 12345678901234, -2e-10);
            "#,
        )
        .await;
    });
}

const COPY: &str = r#"
name: mig
steps:
  - id: copy
    copy: { from: "sqlite:source.db", report: out/report.json }
"#;

fn report(p: &Project) -> Json {
    let text = std::fs::read_to_string(p.path().join("out/report.json")).expect("report.json");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The PostgreSQL target's URL of a project made with `Target::postgres`.
pub(crate) fn pg_url(p: &Project) -> String {
    match &p.target {
        Target::Postgres(url) => url.clone(),
        Target::Sqlite(_) => unreachable!("a PostgreSQL project"),
    }
}

fn q(url: &str, sql: &str) -> String {
    pg::cluster().psql(url, sql)
}

fn oid(url: &str, table: &str) -> String {
    q(url, &format!("SELECT '\"{table}\"'::regclass::oid"))
}

fn status_of(report: &Json, table: &str) -> String {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} in {report:#}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A double printed by PostgreSQL, compared by value.
fn same_double(text: &str, want: f64) -> bool {
    let got = match text {
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        t => t.parse::<f64>().unwrap_or(f64::NAN),
    };
    got.to_bits() == want.to_bits()
}

#[test]
fn copy_keeps_names_types_keys_and_every_value_and_a_second_run_skips() {
    let p = Project::new(|_| Target::postgres("copy"));
    build_source(&p.path().join("source.db"));
    p.playbook("mig", COPY);
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let url = pg_url(&p);

    // Names keep their case; views are reported, not copied.
    assert_eq!(
        q(
            &url,
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class \
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        ),
        "Post,User,misc,runbook_copy_progress"
    );
    let columns = |table: &str| {
        q(
            &url,
            &format!(
                "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod) || \
                 CASE WHEN attnotnull THEN ':not null' ELSE '' END, ', ' ORDER BY attnum) \
                 FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0"
            ),
        )
    };
    assert_eq!(
        columns(r#""User""#),
        "id:bigint:not null, email:text:not null, name:text, isActive:boolean:not null, \
         score:double precision:not null, balance:numeric(10,2), \
         createdAt:timestamp with time zone:not null, profile:jsonb"
    );
    assert_eq!(
        columns(r#""Post""#),
        "id:bigint:not null, authorId:bigint:not null, title:text:not null, body:text, \
         attachment:bytea, rank:bigint"
    );
    assert_eq!(
        columns("misc"),
        "k:text:not null, anything:text, raw:bytea, note:text, n:numeric, r:double precision"
    );
    assert_eq!(
        q(
            &url,
            r#"SELECT attidentity FROM pg_attribute WHERE attrelid = '"User"'::regclass AND attname = 'id'"#
        ),
        "d"
    );
    // Defaults: literals and CURRENT_TIMESTAMP carried over; an expression reported.
    assert_eq!(
        q(
            &url,
            r#"SELECT string_agg(a.attname || '=' || pg_get_expr(d.adbin, d.adrelid), ', '
                                 ORDER BY d.adrelid::regclass::text, a.attnum)
               FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
               WHERE d.adrelid IN ('"User"'::regclass, '"Post"'::regclass)"#
        ),
        "title='untitled'::text, isActive=true, score=0, createdAt=CURRENT_TIMESTAMP"
    );
    // Keys, unique constraints, indexes, foreign keys.
    assert_eq!(
        q(
            &url,
            r#"SELECT string_agg(conrelid::regclass || ' ' || conname || ' ' || contype::text ||
                      CASE WHEN contype = 'f' THEN ' ' || confupdtype::text || confdeltype::text ELSE '' END,
                      ', ' ORDER BY conrelid::regclass::text, conname)
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                 AND conrelid <> 'runbook_copy_progress'::regclass"#
        ),
        r#""Post" Post_authorId_fkey f cc, "Post" Post_pkey p, "User" User_pkey p, misc misc_note_n_key u, misc misc_pkey p"#
    );
    assert_eq!(
        q(
            &url,
            r#"SELECT string_agg(indexrelid::regclass || CASE WHEN indisunique THEN ' unique' ELSE '' END, ', '
                      ORDER BY indexrelid::regclass::text)
               FROM pg_index WHERE indrelid IN ('"User"'::regclass, '"Post"'::regclass) AND NOT indisprimary"#
        ),
        r#""Post_authorId_idx", "User_email_key" unique"#
    );

    // Content, row by row, from the tests' own queries.
    let users = q(
        &url,
        r#"SELECT id, email, encode(convert_to(name, 'UTF8'), 'hex'), "isActive", score, balance,
                  (extract(epoch FROM "createdAt") * 1000000)::bigint, profile::text
           FROM "User" ORDER BY id"#,
    );
    let rows: Vec<Vec<&str>> = users.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 3, "{users}");
    let default_ts = with_sqlite(&p.path().join("source.db"), async |c| {
        sqlx::query_scalar::<_, String>(r#"SELECT "createdAt" FROM "User" WHERE id = 3"#)
            .fetch_one(&mut *c)
            .await
            .unwrap()
    });
    let default_micros = chrono::NaiveDateTime::parse_from_str(&default_ts, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let want: [(&str, &str, &str, f64, &str, i64); 3] = [
        (
            "ana@example.com",
            NAME_1,
            "t",
            0.1,
            "12.50",
            1_700_000_000_123_000,
        ),
        (
            "wang@example.com",
            NAME_2,
            "f",
            1e300,
            "29.99",
            1_709_210_096_000_000,
        ),
        (
            "zoe@example.com",
            NAME_3,
            "t",
            -1.0 / 3.0,
            "",
            default_micros,
        ),
    ];
    for (i, (email, name, active, score, balance, micros)) in want.into_iter().enumerate() {
        let r = &rows[i];
        assert_eq!(r[0], (i + 1).to_string());
        assert_eq!(r[1], email);
        assert_eq!(r[2], hex::encode(name), "name of row {}", i + 1);
        assert_eq!(r[3], active);
        assert!(same_double(r[4], score), "score {} vs {score}", r[4]);
        assert_eq!(r[5], balance);
        assert_eq!(r[6], micros.to_string(), "createdAt of row {}", i + 1);
    }
    let profile: Json = serde_json::from_str(rows[0][7]).unwrap();
    assert_eq!(profile, serde_json::json!({"a": [1, 2.5, "xé"], "b": 1}));
    assert_eq!(rows[1][7], "");
    assert_eq!(rows[2][7], "[]");

    let posts = q(
        &url,
        r#"SELECT id, "authorId", title, length(body), encode(sha256(convert_to(body, 'UTF8')), 'hex'),
                  encode(attachment, 'hex')
           FROM "Post" ORDER BY id"#,
    );
    let text = long_text();
    let every_byte: Vec<u8> = (0..=255).collect();
    let want_posts = [
        format!(
            "1|1|untitled|{}|{}|{}",
            text.chars().count(),
            hex::encode(Sha256::digest(text.as_bytes())),
            hex::encode(&every_byte)
        ),
        "2|2|hello|||".to_owned(),
        format!("3|1|empty|0|{}|", hex::encode(Sha256::digest(b""))),
    ];
    assert_eq!(posts.lines().collect::<Vec<_>>(), want_posts);

    // The untyped columns keep every value: as text, or as bytes when there are binary blobs.
    assert_eq!(
        q(
            &url,
            "SELECT k, anything, encode(raw, 'hex'), encode(convert_to(note, 'UTF8'), 'hex'), n, r \
             FROM misc ORDER BY k"
        )
        .lines()
        .collect::<Vec<_>>(),
        [
            "a|42|00ff|706c61696e|1|1.5",
            "b|2.5|7465787420696e20726177|6162|2.5|0",
            "c|hello||||",
            "d||37|78|12345678901234|-2e-10",
        ]
    );

    // The report: every type decision and every value not kept exactly.
    let r = report(&p);
    let decisions = r["decisions"].as_array().unwrap();
    let decision = |table: &str, column: &str| {
        decisions
            .iter()
            .find(|d| d["table"] == table && d["column"] == column && d["what"] == "type")
            .unwrap_or_else(|| panic!("no decision for {table}.{column}"))
    };
    assert_eq!(decision("User", "score")["to"], "double precision");
    assert_eq!(
        decision("User", "createdAt")["to"],
        "timestamp with time zone"
    );
    assert_eq!(decision("misc", "anything")["to"], "text");
    assert!(
        decision("misc", "anything")["reason"]
            .as_str()
            .unwrap()
            .contains("mixed")
    );
    assert_eq!(decision("misc", "raw")["to"], "bytea");
    assert!(decisions.iter().any(|d| d["table"] == "Post"
        && d["column"] == "rank"
        && d["what"] == "default"
        && d["to"] == "not carried over"));
    assert!(
        decisions
            .iter()
            .any(|d| d["what"] == "view" && d["from"] == "active_users")
    );
    let inexact: Vec<(String, String, String, u64)> = r["inexact"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["table"].as_str().unwrap().to_owned(),
                i["column"].as_str().unwrap().to_owned(),
                i["reason"].as_str().unwrap().to_owned(),
                i["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let has = |col: &str, reason: &str| {
        inexact
            .iter()
            .any(|(t, c, r, n)| t == "misc" && c == col && r.starts_with(reason) && *n == 1)
    };
    assert!(has("anything", "integer stored as text"), "{inexact:?}");
    assert!(has("anything", "real stored as text"), "{inexact:?}");
    assert!(has("raw", "text stored as its bytes"), "{inexact:?}");
    assert!(has("raw", "integer stored as the bytes"), "{inexact:?}");
    assert!(has("note", "text with NUL bytes"), "{inexact:?}");
    assert_eq!(inexact.len(), 5, "{inexact:?}");
    let note = r["inexact"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["column"] == "note")
        .unwrap();
    assert_eq!(note["values"][0]["row"], serde_json::json!({"k": "b"}));
    assert_eq!(note["values"][0]["stored"], "ab");
    for t in ["User", "Post", "misc"] {
        assert_eq!(status_of(&r, t), "copied");
    }

    // A second run skips every table: nothing is dropped and made again.
    let oids: Vec<String> = ["User", "Post", "misc"]
        .iter()
        .map(|t| oid(&url, t))
        .collect();
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let r = report(&p);
    for t in ["User", "Post", "misc"] {
        assert_eq!(status_of(&r, t), "skipped", "{r:#}");
    }
    let after: Vec<String> = ["User", "Post", "misc"]
        .iter()
        .map(|t| oid(&url, t))
        .collect();
    assert_eq!(oids, after);
    assert!(out.stderr.contains("skipped"), "{}", out.stderr);

    // AUTOINCREMENT never reuses 4, the key of the deleted row.
    assert_eq!(
        q(
            &url,
            r#"INSERT INTO "User" (email) VALUES ('new@example.com') RETURNING id"#
        ),
        "5"
    );
}

const TWO_TABLES_AND_A_BAD_ONE: &str = r#"
    CREATE TABLE alpha (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
    CREATE TABLE beta (id INTEGER PRIMARY KEY, label UNIQUE);
    CREATE TABLE gamma (id INTEGER PRIMARY KEY, alpha_id INTEGER REFERENCES alpha (id));
    INSERT INTO alpha (v) VALUES ('one'), ('two'), ('three');
    -- 1 and '1' are different values in SQLite and the same text in PostgreSQL.
    INSERT INTO beta (label) VALUES (1), ('1');
    INSERT INTO gamma (alpha_id) VALUES (1), (3);
"#;

#[test]
fn a_failed_table_is_loaded_again_without_reloading_the_others() {
    let p = Project::new(|_| Target::postgres("copy_retry"));
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| exec(c, TWO_TABLES_AND_A_BAD_ONE).await);
    p.playbook("mig", COPY);
    let url = pg_url(&p);

    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(out.stderr.contains("`beta`"), "{}", out.stderr);
    assert!(out.stderr.contains("23505"), "{}", out.stderr);
    assert_eq!(
        q(
            &url,
            "SELECT string_agg(table_name || ':' || status, ',' ORDER BY table_name) FROM runbook_copy_progress"
        ),
        "alpha:done,beta:failed,gamma:done"
    );
    assert_eq!(q(&url, "SELECT to_regclass('beta') IS NULL"), "t");
    // Foreign keys wait until every table is in.
    assert_eq!(
        q(
            &url,
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        ),
        "0"
    );
    let alpha = oid(&url, "alpha");
    let gamma = oid(&url, "gamma");

    with_sqlite(&source, async |c| {
        exec(c, "DELETE FROM beta WHERE id = 2").await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let r = report(&p);
    assert_eq!(status_of(&r, "alpha"), "skipped");
    assert_eq!(status_of(&r, "beta"), "copied");
    assert_eq!(status_of(&r, "gamma"), "skipped");
    assert_eq!(oid(&url, "alpha"), alpha);
    assert_eq!(oid(&url, "gamma"), gamma);
    assert_eq!(q(&url, "SELECT id || ':' || label FROM beta"), "1:1");
    assert_eq!(
        q(
            &url,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'beta'::regclass AND attname = 'label'"
        ),
        "bigint"
    );
    assert_eq!(
        q(
            &url,
            "SELECT conname FROM pg_constraint WHERE contype = 'f'"
        ),
        "gamma_alpha_id_fkey"
    );
    assert_eq!(
        q(&url, "SELECT string_agg(v, ',' ORDER BY id) FROM alpha"),
        "one,two,three"
    );
}

#[test]
fn copy_refuses_a_sqlite_target_and_tables_it_did_not_make_unless_told_to_replace() {
    let sqlite = Project::new(Target::sqlite);
    with_sqlite(&sqlite.path().join("source.db"), async |c| {
        exec(c, "CREATE TABLE t (id INTEGER PRIMARY KEY)").await
    });
    sqlite.playbook("mig", COPY);
    let out = sqlite.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`copy` loads a SQLite database into PostgreSQL, and the target is SQLite"),
        "{}",
        out.stderr
    );

    let p = Project::new(|_| Target::postgres("copy_refuse"));
    let url = pg_url(&p);
    with_sqlite(&p.path().join("source.db"), async |c| {
        exec(
            c,
            "CREATE TABLE alpha (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO alpha (v) VALUES ('from sqlite')",
        )
        .await
    });
    q(
        &url,
        "CREATE TABLE alpha (id int, v text); INSERT INTO alpha VALUES (7, 'keep me')",
    );
    p.playbook("mig", COPY);
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "table `alpha` exists with 1 row in the target and was not made by an earlier copy"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(q(&url, "SELECT v FROM alpha"), "keep me");

    p.playbook(
        "mig",
        r#"
name: mig
steps:
  - id: copy
    copy: { from: "source.db", replace: true, tables: [alpha] }
"#,
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(q(&url, "SELECT id || ':' || v FROM alpha"), "1:from sqlite");

    p.playbook(
        "mig",
        r#"
name: mig
steps:
  - id: copy
    copy: { from: "sqlite:source.db", tables: [alpah] }
"#,
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("the source has no table `alpah`; did you mean `alpha`?"),
        "{}",
        out.stderr
    );
}
