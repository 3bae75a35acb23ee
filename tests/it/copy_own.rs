//! `copy` into tables it creates: declared lengths and precisions kept while the values fit,
//! index predicates and expressions and CHECK constraints with the columns quoted as created,
//! date-time text read in `time_zone`, and an index PostgreSQL refuses failing the copy unless
//! `allow_skip` names it.

use crate::copy::{exec, pg_url, with_sqlite};
use crate::support::pg;
use crate::support::{Project, Target};

const SOURCE: &str = r#"
CREATE TABLE "Item" (
  id INTEGER PRIMARY KEY,
  "deletedAt" DATETIME,
  "skuCode" VARCHAR(8) NOT NULL,
  price DECIMAL(6,2),
  note VARCHAR(3),
  qty INTEGER CHECK (qty >= 0)
);
CREATE INDEX "Item_live_idx" ON "Item" (skuCode) WHERE deletedAt IS NULL;
CREATE INDEX "Item_lower_idx" ON "Item" (lower(skuCode));
INSERT INTO "Item" VALUES (1, NULL, 'AB-1', 12.5, 'abcd', 3);
INSERT INTO "Item" VALUES (2, '2024-01-01 00:00:00', 'CD-2', 1234.56, NULL, 0);
"#;

#[test]
fn own_tables_keep_limits_quote_columns_and_fail_on_what_cannot_be_translated() {
    let p = Project::new(|_| Target::postgres("copy_own"));
    let url = pg_url(&p);
    let q = |sql: &str| pg::cluster().psql(&url, sql);
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| exec(c, SOURCE).await);
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", report: out/report.json, time_zone: Europe/Berlin }\n",
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    // Date-time text without an offset is read in `time_zone`.
    assert_eq!(
        q(
            r#"SELECT to_char("deletedAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM "Item" WHERE id = 2"#
        ),
        "2023-12-31 23:00"
    );
    assert_eq!(
        q(
            r#"SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
             FROM pg_attribute WHERE attrelid = '"Item"'::regclass AND attnum > 0"#
        ),
        "id:bigint, deletedAt:timestamp with time zone, skuCode:character varying(8), \
         price:numeric(6,2), note:text, qty:bigint"
    );
    let report = std::fs::read_to_string(p.path().join("out/report.json")).unwrap();
    assert!(
        report.contains("the declared VARCHAR(3) is not kept: values do not fit it"),
        "{report}"
    );
    // The predicate and the expression name the columns as they were created.
    assert_eq!(
        q(
            r#"SELECT string_agg(pg_get_indexdef(indexrelid), E'\n' ORDER BY indexrelid::regclass::text)
             FROM pg_index WHERE indrelid = '"Item"'::regclass AND NOT indisprimary"#
        ),
        "CREATE INDEX \"Item_live_idx\" ON public.\"Item\" USING btree (\"skuCode\") WHERE (\"deletedAt\" IS NULL)\n\
         CREATE INDEX \"Item_lower_idx\" ON public.\"Item\" USING btree (lower((\"skuCode\")::text))"
    );
    assert_eq!(
        q(
            r#"SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '"Item"'::regclass AND contype = 'c'"#
        ),
        "CHECK ((qty >= 0))"
    );

    // SQLite's GLOB has no PostgreSQL counterpart: the copy fails, naming the index.
    with_sqlite(&source, async |c| {
        exec(
            c,
            r#"CREATE INDEX "Item_glob_idx" ON "Item" (skuCode) WHERE skuCode GLOB 'A*'"#,
        )
        .await
    });
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", replace: true }\n",
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("index `Item_glob_idx` cannot be created in PostgreSQL")
            && out.stderr.contains("`allow_skip: [Item_glob_idx]`"),
        "{}",
        out.stderr
    );
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", replace: true, allow_skip: [Item_glob_idx] }\n",
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr.contains("1 schema item not carried over"),
        "{}",
        out.stderr
    );
    assert_eq!(q(r#"SELECT count(*) FROM "Item""#), "2");
}

/// Numbers as the binary COPY writes them (base-10000 digits, weight, sign, scale) are what
/// PostgreSQL reads from the same decimal text: negative, fractional, zero, large, infinite.
#[test]
fn binary_numerics_are_what_postgresql_reads_from_their_text() {
    let p = Project::new(|_| Target::postgres("copy_own_numeric"));
    let url = pg_url(&p);
    let q = |sql: &str| pg::cluster().psql(&url, sql);
    let source = p.path().join("source.db");
    // `t` is the decimal text of `n` as the copy writes it (every digit, no exponent).
    let values = [
        ("0", "0"),
        ("-7", "-7"),
        ("12.5", "12.5"),
        ("-0.0001", "-0.0001"),
        ("0.00001", "0.00001"),
        ("1.5e-10", "0.00000000015"),
        ("12345.678", "12345.678"),
        ("-98765.4321", "-98765.4321"),
        ("1e20", "100000000000000000000"),
        ("-123456789.000001", "-123456789.000001"),
        ("9223372036854775807", "9223372036854775807"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("10000", "10000"),
        ("0.1", "0.1"),
        ("-0.0", "0"),
        ("9e999", "Infinity"),
        ("-9e999", "-Infinity"),
    ];
    let mut sql = "CREATE TABLE \"N\" (id INTEGER PRIMARY KEY, n NUMERIC, t TEXT);\n".to_owned();
    for (i, (n, t)) in values.iter().enumerate() {
        sql.push_str(&format!("INSERT INTO \"N\" VALUES ({i}, {n}, '{t}');\n"));
    }
    with_sqlite(&source, async |c| exec(c, &sql).await);
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\" }\n",
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(q(r#"SELECT count(*) FROM "N""#), values.len().to_string());
    assert_eq!(
        q(
            r#"SELECT coalesce(string_agg(id || ': ' || n::text || ' <> ' || t, ', '), 'none')
             FROM "N" WHERE n::text IS DISTINCT FROM t::numeric::text OR n <> t::numeric"#
        ),
        "none"
    );
}

/// Tables of very different sizes, so the two lanes run side by side: `big` (many chunks)
/// streams in one while the small ones go through the other, and `bad` fails there at its
/// unique index (1 and '1' are different values in SQLite and the same in PostgreSQL).
const LANES_SOURCE: &str = r#"
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE big (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id), at DATETIME,
                  v REAL, note TEXT);
CREATE INDEX big_parent_idx ON big (parent_id, at);
CREATE TABLE bad (id INTEGER PRIMARY KEY, label UNIQUE);
CREATE TABLE mid (id INTEGER PRIMARY KEY, body TEXT, n INTEGER CHECK (n >= 0));
CREATE TABLE tail (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200)
INSERT INTO parent SELECT x, 'parent ' || x || ' ✓' FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000)
INSERT INTO big SELECT x, 1 + x % 200, datetime(1700000000 + x * 7, 'unixepoch'), x / 7.0,
  CASE WHEN x % 9 = 0 THEN NULL ELSE 'note ' || x || char(9) || 'tab' END FROM c;
INSERT INTO bad (label) VALUES ('a'), (1), ('1'), ('b');
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)
INSERT INTO mid SELECT x, printf('%.*c', 1 + x % 300, 'm'), x % 17 FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
INSERT INTO tail SELECT x, 1 + x % 200 FROM c;
"#;

/// Each table's content in the target, as one digest.
fn content(url: &str, table: &str) -> String {
    pg::cluster().psql(
        url,
        &format!(
            "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) FROM {table} t"
        ),
    )
}

fn report_json(p: &Project) -> serde_json::Value {
    let text = std::fs::read_to_string(p.path().join("out/report.json")).expect("report.json");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The report's tables as `name:status`, in its order, and the checksums of those copied.
fn statuses(r: &serde_json::Value) -> (Vec<String>, Vec<(String, String)>) {
    let tables = r["tables"].as_array().expect("tables");
    let names = tables
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["table"].as_str().unwrap(),
                t["status"].as_str().unwrap()
            )
        })
        .collect();
    let sums = tables
        .iter()
        .filter_map(|t| {
            Some((
                t["table"].as_str()?.to_owned(),
                t["checksum"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (names, sums)
}

/// Two lanes load the tables side by side: a table failing in one stops the step with that
/// table's error, the other lane's tables are copied and recorded, the failed one is absent and
/// recorded as failed, foreign keys wait; the report keeps the source's table order; every
/// table's checksum and content are those of a copy of that table alone (one connection).
#[test]
fn two_lanes_fail_a_table_alone_and_load_what_one_connection_loads() {
    let p = Project::new(|_| Target::postgres("copy_own_lanes"));
    let url = pg_url(&p);
    let q = |sql: &str| pg::cluster().psql(&url, sql);
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| exec(c, LANES_SOURCE).await);
    let all = "copy: { from: \"sqlite:source.db\", report: out/report.json }";
    p.playbook(
        "mig",
        &format!("name: mig\nsteps:\n  - id: copy\n    {all}\n"),
    );

    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("1 of 5 tables failed (`bad`: ") && out.stderr.contains("23505"),
        "{}",
        out.stderr
    );
    let (order, _) = statuses(&report_json(&p));
    assert_eq!(
        order,
        [
            "parent:copied",
            "big:copied",
            "bad:failed",
            "mid:copied",
            "tail:copied"
        ]
    );
    assert_eq!(
        q(
            "SELECT string_agg(table_name || ':' || status, ',' ORDER BY table_name) FROM runbook_copy_progress"
        ),
        "bad:failed,big:done,mid:done,parent:done,tail:done"
    );
    assert_eq!(q("SELECT to_regclass('bad') IS NULL"), "t");
    assert_eq!(
        q("SELECT count(*) FROM pg_constraint WHERE contype = 'f'"),
        "0"
    );

    // Fixed, the step loads only `bad`, then the foreign keys.
    with_sqlite(&source, async |c| {
        exec(c, "DELETE FROM bad WHERE label = '1'").await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (order, _) = statuses(&report_json(&p));
    assert_eq!(
        order,
        [
            "parent:skipped",
            "big:skipped",
            "bad:copied",
            "mid:skipped",
            "tail:skipped"
        ]
    );
    assert_eq!(
        q(
            "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f'"
        ),
        "big_parent_id_fkey,tail_parent_id_fkey"
    );

    // Everything again with the lanes, then each table alone: the same checksums and rows.
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", report: out/report.json, replace: true }\n",
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let (order, lanes) = statuses(&report_json(&p));
    assert_eq!(
        order,
        [
            "parent:copied",
            "big:copied",
            "bad:copied",
            "mid:copied",
            "tail:copied"
        ]
    );
    let tables = ["parent", "big", "bad", "mid", "tail"];
    let rows: Vec<String> = tables.iter().map(|t| content(&url, t)).collect();
    assert_eq!(q("SELECT count(*) FROM big"), "60000");
    // `parent` alone is dropped and made again first: the keys on it go (tables copied alone
    // add their own again).
    q("ALTER TABLE big DROP CONSTRAINT big_parent_id_fkey; \
       ALTER TABLE tail DROP CONSTRAINT tail_parent_id_fkey");
    for (i, t) in tables.iter().enumerate() {
        p.playbook(
            "one",
            &format!(
                "name: one\nsteps:\n  - id: copy\n    copy: {{ from: \"sqlite:source.db\", report: out/report.json, replace: true, tables: [{t}] }}\n"
            ),
        );
        let out = p.run("one", &[]);
        assert_eq!(out.code, 0, "{}", out.combined());
        let (_, alone) = statuses(&report_json(&p));
        assert_eq!(alone, [lanes[i].clone()], "{t}");
        assert_eq!(content(&url, t), rows[i], "{t}");
    }
}

/// Foreign keys, added NOT VALID once every table is in and then validated (on both lanes at
/// once; what this pins is that they end as adding each whole left them): valid, in the
/// report in the tables' order; kept NOT VALID when existing rows break it (an orphan SQLite
/// kept with `foreign_keys` off), so new rows are still checked; and a key an earlier run
/// added but did not validate is validated by the next run.
#[test]
fn foreign_keys_end_as_their_rows_allow_and_a_key_left_unvalidated_is_validated_next_run() {
    let p = Project::new(|_| Target::postgres("copy_fks"));
    let url = pg_url(&p);
    let q = |sql: &str| pg::cluster().psql(&url, sql);
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| {
        exec(
            c,
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE a (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id) ON DELETE CASCADE);
             CREATE TABLE b (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));
             CREATE TABLE c (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO parent SELECT i, 'p' || i FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
             INSERT INTO a SELECT i, 1 + i % 3000 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO b SELECT i, 1 + i % 3000 FROM n;
             INSERT INTO b VALUES (20001, 99999);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO c SELECT i, i FROM n;",
        )
        .await
    });
    p.playbook(
        "mig",
        "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", report: out/report.json }\n",
    );
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        q(
            "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f'"
        ),
        "a_parent_id_fkey:true,b_parent_id_fkey:false,c_a_id_fkey:true"
    );
    assert_eq!(
        q("SELECT confdeltype FROM pg_constraint WHERE conname = 'a_parent_id_fkey'"),
        "c"
    );
    let r = report_json(&p);
    let keys: Vec<(String, String, String)> = r["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["what"] == "foreign_key")
        .map(|d| {
            (
                d["table"].as_str().unwrap().to_owned(),
                d["to"].as_str().unwrap().to_owned(),
                d["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let tables: Vec<&str> = keys.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(tables, ["a", "b", "c"], "{keys:?}");
    assert_eq!(
        keys[0].2,
        "added after the load (ON UPDATE NO ACTION, ON DELETE CASCADE)"
    );
    assert_eq!(keys[1].1, "\"b_parent_id_fkey\" NOT VALID");
    assert!(
        keys[1].2.starts_with("existing rows break it (")
            && keys[1]
                .2
                .contains(r#"ALTER TABLE "b" VALIDATE CONSTRAINT "b_parent_id_fkey""#),
        "{}",
        keys[1].2
    );
    // A key an earlier run added NOT VALID and did not get to validate (it stopped in
    // between) is validated by the next run, whose tables are otherwise done.
    q(r#"ALTER TABLE a DROP CONSTRAINT a_parent_id_fkey;
         ALTER TABLE a ADD CONSTRAINT a_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE NOT VALID"#);
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(
        q(
            "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f'"
        ),
        "a_parent_id_fkey:true,b_parent_id_fkey:false,c_a_id_fkey:true"
    );
    let again = report_json(&p);
    let reasons: Vec<&str> = again["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["what"] == "foreign_key")
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].starts_with(
            "added NOT VALID by an earlier run that stopped before validating it; validated now"
        ),
        "{reasons:?}"
    );
    assert_eq!(reasons[2], "already added by an earlier run", "{reasons:?}");
    // The key still checks new rows: a new orphan is refused (an accepted one raises).
    q(
        "DO $$ BEGIN INSERT INTO b VALUES (30000, 88888); RAISE EXCEPTION 'a new orphan was accepted'; \
       EXCEPTION WHEN foreign_key_violation THEN NULL; END $$",
    );
}
