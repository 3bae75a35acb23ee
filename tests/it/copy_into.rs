//! `copy` with `into: existing`: into a schema the target's migrations made. The shipped
//! `sqlite-to-postgres` playbook end to end (then deploy, verify, seed-production and the
//! application's writes on the target), and a fixture database with every conversion and the
//! bad values that must fail naming their row.

use crate::copy::{exec, pg_url, with_sqlite};
use crate::support::pg;
use crate::support::{Output, Project, Runbook, Target, copy_dir, repo};
use std::path::Path;

/// The shipped playbooks, migrations and seeds, with a SQLite `dev` and a PostgreSQL `staging`.
struct Shipped {
    dir: tempfile::TempDir,
    url: String,
}

impl Shipped {
    fn new() -> Shipped {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["playbooks", "migrations", "seeds"] {
            copy_dir(&repo().join(sub), &dir.path().join(sub));
        }
        let url = pg::cluster().create_db("copy_into_e2e");
        let backups = dir.path().join("backups");
        let env = |name: &str, target: &str, seed: &str| {
            format!(
                "  {name}:\n    target: {target}\n    vars: {{ backup_dir: \"{}/{name}\", min_free_disk_percent: 1, seed_set: {seed} }}\n    protections: {{ approvals: 1, self_approval: true }}\n",
                backups.display()
            )
        };
        let config = format!(
            "environments:\n{}{}{}secrets: [STAGING_DATABASE_URL, ADMIN_DEFAULT_PASSWORD]\n",
            env("dev", "{ sqlite: .runbook/dev.db }", "development"),
            env("staging", "{ url_env: STAGING_DATABASE_URL }", "production"),
            env(
                "production",
                "{ url_env: PRODUCTION_DATABASE_URL }",
                "production"
            ),
        );
        std::fs::write(dir.path().join("runbook.yaml"), config).unwrap();
        Shipped { dir, url }
    }

    fn runbook(&self, args: &[&str]) -> Output {
        let mut all = vec!["-C".to_owned(), self.dir.path().display().to_string()];
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        Runbook::new(&refs)
            .env("STAGING_DATABASE_URL", &self.url)
            .env("ADMIN_DEFAULT_PASSWORD", "copy-into-Admin-Password-2026")
            .run()
    }

    fn psql(&self, sql: &str) -> String {
        pg::cluster().psql(&self.url, sql)
    }
}

#[test]
fn the_shipped_dev_database_moves_into_the_migrated_schema_and_the_playbooks_work_on_it() {
    let s = Shipped::new();
    let out = s.runbook(&["run", "deploy", "--env", "dev", "--approve", "approve"]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let out = s.runbook(&[
        "run",
        "sqlite-to-postgres",
        "--env",
        "staging",
        "--approve",
        "approve",
    ]);
    assert_eq!(out.code, 0, "{}", out.combined());

    // The migrations' types hold the converted values.
    assert_eq!(
        s.psql(r#"SELECT array_to_string(specialty, '|') || '/' || available FROM "Provider""#),
        "cardiology|internal medicine/true"
    );
    assert_eq!(
        s.psql(r#"SELECT features->>0 FROM "Plan" WHERE name = 'Basic Monthly'"#),
        "Video visits"
    );
    assert_eq!(
        s.psql(
            r#"SELECT "dateOfBirth" || ' ' || to_char("scheduledAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
               FROM "Patient", "Appointment""#
        ),
        "1990-04-12 2030-01-15 09:30"
    );
    // The target's history is its own migrations', not the SQLite one copied.
    assert_eq!(
        s.psql("SELECT count(*) FROM runbook_migrations"),
        "2",
        "{}",
        out.combined()
    );
    // This run's report is kept under its run id and named in the audit record.
    let reports: Vec<_> = std::fs::read_dir(s.dir.path().join(".runbook/reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let report = reports
        .iter()
        .find(|r| r.starts_with("copy-") && r.ends_with("-copy.json"))
        .unwrap_or_else(|| panic!("{reports:?}"));
    let run = &report["copy-".len()..report.len() - "-copy.json".len()];
    let show = s.runbook(&["audit", "show", run]);
    assert!(
        show.stdout
            .contains(&format!("(report .runbook/reports/{report})")),
        "{}",
        show.combined()
    );

    for args in [
        &["run", "deploy", "--env", "staging", "--approve", "approve"][..],
        &["run", "verify", "--env", "staging"],
        &["run", "seed-production", "--env", "staging"],
    ] {
        let out = s.runbook(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.combined());
    }
    // The application's writes: ids and timestamps from the defaults.
    let ids = s.psql(
        r#"INSERT INTO "User" (email, "passwordHash") VALUES ('new@example.test', 'x');
           INSERT INTO "Appointment" ("patientId", "providerId", "scheduledAt")
             SELECT p.id, v.id, now() + interval '1 day' FROM "Patient" p, "Provider" v LIMIT 1;
           SELECT count(*) FROM "User" WHERE email = 'new@example.test' AND "createdAt" IS NOT NULL;
           SELECT count(*) FROM "Appointment""#,
    );
    assert_eq!(ids.lines().collect::<Vec<_>>(), ["1", "2"], "{ids}");
}

/// The target schema: every conversion the copy makes.
const TARGET: &str = r#"
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE "Owner" (
  id serial PRIMARY KEY,
  name varchar(10) NOT NULL CHECK (name <> 'banned'),
  "apiToken" varchar(8),
  created timestamptz NOT NULL DEFAULT now(),
  code char(4)
);
CREATE TABLE "Thing" (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  "ownerId" int NOT NULL REFERENCES "Owner" (id),
  born date,
  seen timestamp(3),
  at timestamptz,
  active boolean NOT NULL,
  meta jsonb,
  tags text[],
  scores int[],
  mood mood,
  price numeric(6,2),
  data bytea,
  extra text NOT NULL DEFAULT 'dflt'
);
"#;

/// The source: `Thing` before `Owner` (loaded after it all the same), a column the target
/// lacks, and the bookkeeping tables that are never copied.
const SOURCE: &str = r#"
CREATE TABLE "Thing" (id INTEGER PRIMARY KEY, "ownerId" INTEGER, born TEXT, seen TEXT, at DATETIME,
  active INTEGER, meta TEXT, tags TEXT, scores TEXT, mood TEXT, price REAL, data BLOB, legacy TEXT);
CREATE TABLE "Owner" (id INTEGER PRIMARY KEY, name TEXT, "apiToken" TEXT, created DATETIME, code TEXT);
CREATE TABLE runbook_migrations (version TEXT);
CREATE TABLE _prisma_migrations (id TEXT);
INSERT INTO runbook_migrations VALUES ('1');
INSERT INTO _prisma_migrations VALUES ('1');
INSERT INTO "Owner" VALUES (1, 'ana', NULL, '2024-03-31 01:30:00', 'ab');
INSERT INTO "Owner" VALUES (5, 'bo', 'tk-42', '2024-07-01T12:00:00+02:00', NULL);
INSERT INTO "Thing" VALUES (1, 5, '1990-04-12', '2024-01-01 10:00:00.123', '2024-01-15 09:30:00',
  1, '{"b": 1, "a": [1, 2]}', '["x", "y \"q\""]', '[1, 2, 3]', 'happy', 12.5, x'00ff', 'old');
INSERT INTO "Thing" VALUES (2, 1, '2000-02-29', NULL, 1700000000123, 'false', NULL, '[]', NULL,
  NULL, 1234.56, x'', NULL);
"#;

fn playbook(extra: &str) -> String {
    format!(
        "name: mig\nsteps:\n  - id: copy\n    copy: {{ from: \"sqlite:source.db\", into: existing, time_zone: Europe/Berlin{extra} }}\n"
    )
}

#[test]
fn every_conversion_lands_exactly_and_a_bad_value_fails_naming_its_row() {
    let p = Project::new(|_| Target::postgres("copy_into"));
    let url = pg_url(&p);
    let q = |sql: &str| pg::cluster().psql(&url, sql);
    q(TARGET);
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| exec(c, SOURCE).await);

    p.playbook("mig", &playbook(""));
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "the source column `Thing.legacy` has no column `legacy` in the target table `Thing`"
        ),
        "{}",
        out.stderr
    );

    p.playbook("mig", &playbook(", ignore: [Thing.legacy]"));
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        q(
            r#"SELECT id || ' ' || name || ' ' || coalesce("apiToken", '-') || ' ' ||
                    to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' ' || coalesce(code || '|', '-')
             FROM "Owner" ORDER BY id"#
        ),
        "1 ana - 2024-03-31 00:30 ab|\n5 bo tk-42 2024-07-01 10:00 -"
    );
    assert_eq!(
        q(
            r#"SELECT concat_ws(' ', id, "ownerId", born, to_char(seen, 'YYYY-MM-DD HH24:MI:SS.MS'),
                    to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), active, meta::text,
                    array_to_string(tags, '|'), array_to_string(scores, '+'), mood, price,
                    encode(data, 'hex'), extra) FROM "Thing" ORDER BY id"#
        ),
        "1 5 1990-04-12 2024-01-01 09:00:00.123 2024-01-15 08:30:00.000 t {\"a\": [1, 2], \"b\": 1} \
         x|y \"q\" 1+2+3 happy 12.50 00ff dflt\n\
         2 1 2000-02-29 2023-11-14 22:13:20.123 f  1234.56  dflt"
    );
    // `seen` (timestamp without time zone) holds UTC wall-clock time: 10:00 in Berlin is 09:00.
    // Bookkeeping tables were not copied; sequences continue after the copied keys.
    assert_eq!(q("SELECT to_regclass('_prisma_migrations') IS NULL"), "t");
    assert_eq!(
        q(r#"INSERT INTO "Owner" (name) VALUES ('new') RETURNING id"#),
        "6"
    );
    assert_eq!(
        q(r#"INSERT INTO "Thing" ("ownerId", active) VALUES (6, true) RETURNING id || extra"#),
        "3dflt"
    );
    q(r#"DELETE FROM "Thing" WHERE id = 3; DELETE FROM "Owner" WHERE id = 6"#);

    // A second run finds the same values in place and skips.
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr.contains("`Thing`: 2 rows skipped"),
        "{}",
        out.stderr
    );

    bad_values_fail_naming_their_row(&p, &source, &q);
}

/// Bad values: the copy (with `replace: true`, emptying the tables first) fails naming the
/// row, the column and the value, and the target keeps what it had.
fn bad_values_fail_naming_their_row(p: &Project, source: &Path, q: &dyn Fn(&str) -> String) {
    p.playbook("mig", &playbook(", ignore: [Thing.legacy], replace: true"));
    let bad: &[(&str, &str)] = &[
        (
            r#"at = 'yesterday'"#,
            "column `at` (timestamp with time zone): the value `yesterday` is not a date-time",
        ),
        (
            r#"at = '2024-03-31 02:30:00'"#,
            "does not exist in Europe/Berlin",
        ),
        (
            "active = 2",
            "column `active` (boolean): the value `2` is not a boolean",
        ),
        ("meta = '{bad'", "the value `{bad` is not JSON"),
        (
            "tags = 'x,y'",
            "column `tags` (text[]): the value `x,y` is not a JSON array",
        ),
        ("scores = '[1, \"two\"]'", "element 2: is not an integer"),
        (
            "mood = 'angry'",
            "is not one of the enum's values (happy, sad)",
        ),
        ("price = 12345.6", "overflows numeric(6,2)"),
        ("price = 1.005", "has more than 2 decimal places"),
        (
            "seen = '2024-01-01 00:00:00.0001'",
            "more fractional digits than the column's 3",
        ),
        (
            "born = '2024-02-30'",
            "the value `2024-02-30` is not a date",
        ),
    ];
    for (set, want) in bad {
        with_sqlite(source, async |c| {
            exec(c, &format!(r#"INSERT INTO "Thing" SELECT 7, 5, born, seen, at, active, meta, tags, scores, mood, price, data, legacy FROM "Thing" WHERE id = 1; UPDATE "Thing" SET {set} WHERE id = 7"#)).await
        });
        let out = p.run("mig", &[]);
        assert_eq!(out.code, 1, "{set}: {}", out.combined());
        assert!(
            out.stderr.contains("`Thing` row {\"id\":7}: ") && out.stderr.contains(want),
            "{set}: want {want:?} in {}",
            out.stderr
        );
        assert!(out.stderr.contains("nothing was copied"), "{}", out.stderr);
        with_sqlite(source, async |c| {
            exec(c, r#"DELETE FROM "Thing" WHERE id = 7"#).await
        });
        assert_eq!(q(r#"SELECT count(*) FROM "Thing""#), "2", "{set}");
    }
    // A row the target's CHECK refuses: PostgreSQL's reason and where, never the row's values.
    with_sqlite(source, async |c| {
        exec(c, r#"UPDATE "Owner" SET name = 'banned' WHERE id = 5"#).await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("violates check constraint")
            && out.stderr.contains("COPY Owner, line 2"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("tk-42"), "{}", out.stderr);
    with_sqlite(source, async |c| {
        exec(c, r#"UPDATE "Owner" SET name = 'bo' WHERE id = 5"#).await
    });
    // A secret column's value is never shown.
    with_sqlite(source, async |c| {
        exec(
            c,
            r#"UPDATE "Owner" SET "apiToken" = 'supersecret-1' WHERE id = 1"#,
        )
        .await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`Owner` row {\"id\":1}: column `apiToken` (character varying(8)): the value `***` is longer"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("supersecret"), "{}", out.stderr);
}

/// Integer date-times: milliseconds unless `epoch` says otherwise, and one that could be
/// either fails rather than be guessed.
#[test]
fn integer_date_times_are_read_in_the_unit_epoch_names() {
    let p = Project::new(|_| Target::postgres("copy_epoch"));
    let Target::Postgres(url) = &p.target else {
        unreachable!()
    };
    let q = |sql: &str| pg::cluster().psql(url, sql);
    q(r#"CREATE TABLE "Ev" (id integer PRIMARY KEY, at timestamptz(3) NOT NULL, day date)"#);
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| {
        exec(
            c,
            r#"CREATE TABLE "Ev" (id INTEGER PRIMARY KEY, at DATETIME NOT NULL, day DATE);
               INSERT INTO "Ev" VALUES (1, 1700000000, 1699920000), (2, 1700000001, NULL);"#,
        )
        .await
    });
    let run = |extra: &str| {
        p.playbook(
            "ev",
            &format!(
                "name: ev\nsteps:\n  - id: copy\n    copy: {{ from: \"sqlite:source.db\", into: existing, replace: true{extra} }}\n"
            ),
        );
        p.run("ev", &[])
    };
    let rows = || {
        q(
            r#"SELECT string_agg(id || ' ' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' ' || coalesce(day::text, '-'), ', ' ORDER BY id) FROM "Ev""#,
        )
    };

    // Not said: seconds of 2023 would be January 1970 as milliseconds, so it fails.
    let out = run("");
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("`Ev` row {\"id\":1}: column `at`")
            && out
                .stderr
                .contains("could be seconds or milliseconds since 1970")
            && out.stderr.contains("`epoch: seconds`"),
        "{}",
        out.stderr
    );
    assert_eq!(q(r#"SELECT count(*) FROM "Ev""#), "0");

    let out = run(", epoch: seconds");
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        rows(),
        "1 2023-11-14 22:13:20.000 2023-11-14, 2 2023-11-14 22:13:21.000 -"
    );

    // Said to be milliseconds: taken as such (a date column wants whole days, which 1699920000
    // milliseconds is not).
    with_sqlite(&source, async |c| {
        exec(c, r#"UPDATE "Ev" SET day = NULL"#).await
    });
    let out = run(", epoch: milliseconds");
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        rows(),
        "1 1970-01-20 16:13:20.000 -, 2 1970-01-20 16:13:20.001 -"
    );

    // Own tables decide per column from the values; `epoch` is refused there.
    p.playbook(
        "own",
        "name: own\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", epoch: seconds }\n",
    );
    let out = p.run("own", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("`epoch` applies to `into: existing`"),
        "{}",
        out.stderr
    );
}

/// Two tables whose keys reference each other and are not deferrable: the copy loads both,
/// the keys hold afterwards as they were declared, and a row that breaks one fails the copy
/// naming the key, leaving the target as it was.
#[test]
fn a_cycle_of_keys_that_are_not_deferrable_loads_and_the_keys_hold() {
    let p = Project::new(|_| Target::postgres("copy_cycle"));
    let Target::Postgres(url) = &p.target else {
        unreachable!()
    };
    let q = |sql: &str| pg::cluster().psql(url, sql);
    q(
        r#"CREATE TABLE "Team" (id integer PRIMARY KEY, "captainId" integer);
         CREATE TABLE "Player" (id integer PRIMARY KEY,
           "teamId" integer NOT NULL CONSTRAINT "Player_teamId_fkey" REFERENCES "Team" (id) ON DELETE CASCADE);
         ALTER TABLE "Team" ADD CONSTRAINT "Team_captainId_fkey" FOREIGN KEY ("captainId")
           REFERENCES "Player" (id) ON DELETE SET NULL;"#,
    );
    let keys = || {
        q(
            "SELECT string_agg(conname || ' ' || condeferrable || ' ' || convalidated || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname) \
           FROM pg_constraint WHERE contype = 'f'",
        )
    };
    let declared = keys();
    assert_eq!(
        declared,
        "Player_teamId_fkey false true FOREIGN KEY (\"teamId\") REFERENCES \"Team\"(id) ON DELETE CASCADE; \
         Team_captainId_fkey false true FOREIGN KEY (\"captainId\") REFERENCES \"Player\"(id) ON DELETE SET NULL"
    );
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| {
        exec(
            c,
            r#"CREATE TABLE "Team" (id INTEGER PRIMARY KEY, "captainId" INTEGER);
               CREATE TABLE "Player" (id INTEGER PRIMARY KEY, "teamId" INTEGER NOT NULL);
               INSERT INTO "Team" VALUES (1, 10), (2, 20);
               INSERT INTO "Player" VALUES (10, 1), (11, 1), (20, 2);"#,
        )
        .await
    });
    p.playbook(
        "cycle",
        "name: cycle\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", into: existing, replace: true }\n",
    );
    let out = p.run("cycle", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("foreign keys checked over the loaded tables"),
        "{}",
        out.stderr
    );
    assert_eq!(keys(), declared);
    assert_eq!(
        q(
            r#"SELECT string_agg(t.id || '<' || p.id, ' ' ORDER BY p.id) FROM "Player" p JOIN "Team" t ON t.id = p."teamId""#
        ),
        "1<10 1<11 2<20"
    );
    // The keys are enforced again.
    let refused = std::process::Command::new(pg::cluster().bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c"])
        .arg(r#"INSERT INTO "Player" VALUES (30, 99)"#)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Player_teamId_fkey"),
        "{refused:?}"
    );

    // A player of a team the source lacks: the copy fails naming the key and the value, and
    // the target keeps its rows and its keys.
    with_sqlite(&source, async |c| {
        exec(c, r#"INSERT INTO "Player" VALUES (21, 99)"#).await
    });
    let out = p.run("cycle", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("`Player`: foreign key `Player_teamId_fkey` does not hold after the load")
            && out.stderr.contains("Key (teamId)=(99) is not present")
            && out.stderr.contains("nothing was copied"),
        "{}",
        out.stderr
    );
    assert_eq!(keys(), declared);
    assert_eq!(q(r#"SELECT count(*) FROM "Player""#), "3");
}
