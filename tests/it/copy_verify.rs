//! `copy`'s verification catches what the server stored differently from what was sent: a
//! trigger on the target changes one value of one row (or drops a row) while the rows stream
//! in, and the copy fails on that table, leaving it out (a dropped row is caught by COPY's own
//! count); without the trigger the same source
//! copies. Each change is one a weak checksum would miss: a NULL double stored as 0.0 (whose
//! hash may be the NULL's), two columns' values swapped, a timestamp one microsecond off, a
//! boolean flipped.

use crate::copy::{exec, pg_url, with_sqlite};
use crate::support::pg;
use crate::support::{Project, Target};

const SOURCE: &str = r#"
CREATE TABLE "T" (
  id INTEGER PRIMARY KEY,
  a REAL,
  b REAL,
  name VARCHAR(20) NOT NULL,
  code VARCHAR(2),
  note TEXT,
  at DATETIME NOT NULL,
  day DATE,
  flag BOOLEAN NOT NULL,
  blob BLOB
);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
INSERT INTO "T" SELECT x, CASE WHEN x % 7 = 0 THEN NULL ELSE x / 8.0 END, -x * 1.5,
  'name ' || x || ' é', substr('αβγ', 1 + x % 3, 2), CASE WHEN x % 3 = 0 THEN NULL ELSE 'a longer note, over twelve bytes: ' || x END,
  datetime(1700000000 + x * 61, 'unixepoch'), date(19000 + x, 'unixepoch'), x % 2,
  CASE WHEN x % 5 = 0 THEN NULL ELSE randomblob(x % 17) END FROM c;
INSERT INTO "T" VALUES (9223372036854775807, 0.0, -0.0, 'edge', NULL, '', '1969-07-20 20:17:40',
  '1850-01-01', 0, x'');
INSERT INTO "T" VALUES (-9223372036854775808, 1e308, 5e-324, 'abcdefgh', '', 'abcdefghijklm',
  '2262-01-01 00:00:00', '2999-12-31', 1, x'00');
"#;

/// The tampering trigger's body for each case: it changes `NEW` (or drops it) for one row.
const CASES: [(&str, &str); 5] = [
    (
        "a NULL double stored as 0",
        "IF NEW.id = 14 THEN NEW.a := 0; END IF;",
    ),
    (
        "two columns swapped",
        "IF NEW.id = 10 THEN NEW.a := NEW.b; NEW.b := 1.25; END IF;",
    ),
    (
        "a timestamp a microsecond off",
        "IF NEW.id = 2000 THEN NEW.at := NEW.at + interval '1 microsecond'; END IF;",
    ),
    (
        "a boolean flipped",
        "IF NEW.id = 7 THEN NEW.flag := NOT NEW.flag; END IF;",
    ),
    (
        "one character changed",
        "IF NEW.id = 2999 THEN NEW.note := replace(NEW.note, 'twelve', 'twelvf'); END IF;",
    ),
];

#[test]
fn verification_fails_a_table_whose_stored_rows_differ_from_the_sent_ones() {
    let p = Project::new(|_| Target::postgres("copy_verify"));
    let url = pg_url(&p);
    let q = |sql: &str| pg::cluster().psql(&url, sql);
    with_sqlite(&p.path().join("source.db"), async |c| exec(c, SOURCE).await);
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\" }\n",
    );
    // An event trigger puts the tampering trigger on the table as the copy creates it.
    q(
        r#"CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE FUNCTION add_tamper() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public."T"') THEN
             CREATE TRIGGER tamper BEFORE INSERT ON "T" FOR EACH ROW EXECUTE FUNCTION tamper();
           END IF;
         END $$;
         CREATE EVENT TRIGGER add_tamper ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
           EXECUTE FUNCTION add_tamper();"#,
    );
    for (case, body) in CASES {
        q(&format!(
            "CREATE OR REPLACE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
        ));
        failed(&p, case, "verification failed");
    }
    // A row dropped: COPY's own count says so before any checksum.
    q(
        "CREATE OR REPLACE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = 1500 THEN RETURN NULL; END IF; RETURN NEW; END $$",
    );
    failed(&p, "a row dropped", "COPY stored 3001 rows of 3002");
    // The trigger changing nothing: the copy goes through, every row in, verified by the
    // server's sum of PostgreSQL's own row hashes (computed here for the rows sent: text of
    // every length around lookup3's 12-byte blocks, extreme integers, zeros, dates before
    // 2000). A table with a numeric column (hashed in its internal form) is read back.
    q(
        "CREATE OR REPLACE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    );
    with_sqlite(&p.path().join("source.db"), async |c| {
        exec(
            c,
            r#"CREATE TABLE "N" (id INTEGER PRIMARY KEY, amount DECIMAL(8,2));
               INSERT INTO "N" VALUES (1, 2.5), (2, NULL);"#,
        )
        .await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        q(r#"SELECT count(*), count(a), count(note), count(blob) FROM "T""#),
        "3002|2574|2002|2402"
    );
    // `code` is kept as varchar(2): the probe row's text is cut to it, as the cast to the
    // table's type cuts it, and `T` is still verified on the server.
    assert_eq!(
        q(
            r#"SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '"T"'::regclass AND attname = 'code'"#
        ),
        "character varying(2)"
    );
    for (table, how) in [("T", "by the server's hash sum"), ("N", "read back")] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(&format!("`{table}`: "))
                    && l.ends_with(&format!("checksum verified {how}"))),
            "{table}: {}",
            out.stderr
        );
    }
}

/// Runs the copy, which must fail on `T` with `message` and leave no table `T`.
fn failed(p: &Project, case: &str, message: &str) {
    let url = pg_url(p);
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{case}: {}", out.combined());
    assert!(out.stderr.contains(message), "{case}: {}", out.stderr);
    assert_eq!(
        pg::cluster().psql(&url, r#"SELECT to_regclass('"T"') IS NULL"#),
        "t",
        "{case}: the table was left"
    );
}
