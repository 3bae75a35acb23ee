//! `copy` with `into: existing` and the target's indexes and keys: plain indexes are dropped
//! for the load and created again with their own definitions (a duplicate then fails at its
//! unique index, naming it, and the target keeps its indexes and rows); a role that does not
//! own the tables keeps indexes and keys in place and loads parents first.

use crate::copy::{exec, with_sqlite};
use crate::support::pg;
use crate::support::{Project, Target};

const TARGET: &str = r#"
CREATE TABLE "Team" (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE "Member" (
  id integer PRIMARY KEY,
  "teamId" integer NOT NULL CONSTRAINT "Member_teamId_fkey" REFERENCES "Team" (id),
  email text NOT NULL,
  score integer
);
CREATE UNIQUE INDEX "Member_email_key" ON "Member" (email);
CREATE INDEX "Member_score_idx" ON "Member" (score DESC) WHERE score > 0;
CREATE INDEX "Member_lower_idx" ON "Member" (lower(email)) WITH (fillfactor = 70);
"#;

/// The source lists the child before its parent.
const SOURCE: &str = r#"
CREATE TABLE "Member" (id INTEGER PRIMARY KEY, "teamId" INTEGER, email TEXT, score INTEGER);
CREATE TABLE "Team" (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO "Team" VALUES (1, 'red'), (2, 'blue');
INSERT INTO "Member" VALUES (1, 1, 'a@x', 3), (2, 1, 'b@x', -1), (3, 2, 'c@x', NULL);
"#;

const PLAYBOOK: &str = "name: mig\nsteps:\n  - id: copy\n    copy: { from: \"sqlite:source.db\", into: existing, replace: true }\n";

/// The loaded tables' indexes: name, definition, validity.
const INDEXES: &str = r#"SELECT string_agg(c.relname || ' ' || pg_get_indexdef(i.indexrelid) || ' ' || i.indisvalid, E'\n' ORDER BY c.relname)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid IN ('"Member"'::regclass, '"Team"'::regclass)"#;

#[test]
fn plain_indexes_are_built_again_and_a_duplicate_fails_at_its_unique_index() {
    let p = Project::new(|_| Target::postgres("copy_into_idx"));
    let Target::Postgres(url) = &p.target else {
        unreachable!()
    };
    let q = |sql: &str| pg::cluster().psql(url, sql);
    q(TARGET);
    let declared = q(INDEXES);
    assert!(declared.contains("Member_lower_idx"), "{declared}");
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| exec(c, SOURCE).await);
    p.playbook("mig", PLAYBOOK);
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert_eq!(q(INDEXES), declared);
    assert_eq!(
        q(
            r#"SELECT string_agg(id || ':' || email, ' ' ORDER BY id) FROM "Member" WHERE score > 0 OR score IS NULL"#
        ),
        "1:a@x 3:c@x"
    );
    // The indexes are used and enforced again.
    let refused = std::process::Command::new(pg::cluster().bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c"])
        .arg(r#"INSERT INTO "Member" VALUES (9, 1, 'a@x', 1)"#)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Member_email_key"),
        "{refused:?}"
    );

    // A duplicate email: the copy fails naming the unique index, and the target keeps its
    // indexes and its rows.
    with_sqlite(&source, async |c| {
        exec(c, r#"INSERT INTO "Member" VALUES (4, 2, 'b@x', 7)"#).await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "`Member`: index `Member_email_key` could not be created again after the load"
        ) && out.stderr.contains("Key (email)=(b@x) is duplicated")
            && out.stderr.contains("nothing was copied"),
        "{}",
        out.stderr
    );
    assert_eq!(q(INDEXES), declared);
    assert_eq!(q(r#"SELECT count(*) FROM "Member""#), "3");
}

#[test]
fn a_role_that_does_not_own_the_tables_keeps_their_keys_and_loads_parents_first() {
    let owned = pg::cluster().create_owned_db("copy_into_notown");
    let name = owned.rsplit('/').next().unwrap().to_owned();
    let role = format!("{name}_owner");
    let p = Project::new(|_| Target::Postgres(owned.clone()));
    // The tables belong to the superuser; the copying role may only read, insert and empty.
    let admin = pg::cluster().url(&name);
    let q = |sql: &str| pg::cluster().psql(&admin, sql);
    q(TARGET);
    q(&format!(
        r#"GRANT SELECT, INSERT, TRUNCATE ON "Team", "Member" TO {role}"#
    ));
    let declared = q(INDEXES);
    let oids = r#"SELECT string_agg(indexrelid::text, ' ' ORDER BY indexrelid)
        FROM pg_index WHERE indrelid IN ('"Member"'::regclass, '"Team"'::regclass)"#;
    let before = q(oids);
    let source = p.path().join("source.db");
    with_sqlite(&source, async |c| exec(c, SOURCE).await);
    p.playbook("mig", PLAYBOOK);
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    assert!(
        out.stderr
            .contains("foreign keys and indexes stay in place during the load"),
        "{}",
        out.stderr
    );
    // The very same indexes (not dropped and created again) and the key as declared.
    assert_eq!(q(oids), before);
    assert_eq!(q(INDEXES), declared);
    assert_eq!(
        q(r#"SELECT conname || ' ' || convalidated FROM pg_constraint WHERE contype = 'f'"#),
        "Member_teamId_fkey true"
    );
    assert_eq!(
        q(
            r#"SELECT string_agg(m.id || '<' || t.name, ' ' ORDER BY m.id) FROM "Member" m JOIN "Team" t ON t.id = m."teamId""#
        ),
        "1<red 2<red 3<blue"
    );
    // A duplicate fails at the row, by the index kept in place.
    with_sqlite(&source, async |c| {
        exec(c, r#"INSERT INTO "Member" VALUES (4, 2, 'b@x', 7)"#).await
    });
    let out = p.run("mig", &[]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("Member_email_key") && out.stderr.contains("nothing was copied"),
        "{}",
        out.stderr
    );
    assert_eq!(q(r#"SELECT count(*) FROM "Member""#), "3");
}
