//! `copy` into tables it creates: declared lengths and precisions kept while the values fit,
//! index predicates and expressions and CHECK constraints with the columns quoted as created,
//! date-time text read in `time_zone`, and an index PostgreSQL refuses failing the copy unless
//! `allow_skip` names it.

use crate::copy::{exec, with_sqlite};
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
    let url = match &p.target {
        Target::Postgres(url) => url.clone(),
        Target::Sqlite(_) => unreachable!(),
    };
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
    let url = match &p.target {
        Target::Postgres(url) => url.clone(),
        Target::Sqlite(_) => unreachable!(),
    };
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
