//! A restore returns a PostgreSQL database to exactly its backup, for every kind of migration a
//! team ships, as a superuser and as a database owner that is not one (the managed PostgreSQL
//! case): after a `restore` step and after deploy's automatic rollback, `pg_dump --schema-only`
//! and the content of every table equal what they were when the backup was taken, and the next
//! deploy of the fixed migration succeeds. The same for a first deploy (a backup of an empty
//! database).

use crate::support::pg;
use crate::support::{Output, Project, Target};

/// What every database starts with: two tables, one referencing the other, and some rows.
const BASE: &str = r#"CREATE TABLE "User" (id SERIAL PRIMARY KEY, email TEXT NOT NULL UNIQUE);
CREATE TABLE "Note" (id SERIAL PRIMARY KEY, user_id INT NOT NULL REFERENCES "User"(id), body TEXT);
INSERT INTO "User" (email) VALUES ('a@example.test'), ('b@example.test');
INSERT INTO "Note" (user_id, body) VALUES (1, 'First'), (1, 'Second'), (2, 'Third');
"#;

/// The migration kinds of the issue, each as it would be shipped.
const KINDS: &[(&str, &str)] = &[
    (
        "fk_table",
        r#"CREATE TABLE "Invoice" (id SERIAL PRIMARY KEY, user_id INT NOT NULL REFERENCES "User"(id), amount INT NOT NULL);
INSERT INTO "Invoice" (user_id, amount) VALUES (1, 10);"#,
    ),
    (
        "schema",
        "CREATE SCHEMA billing;\nCREATE TABLE billing.ledger (id INT PRIMARY KEY, note_id INT REFERENCES \"Note\"(id));",
    ),
    (
        "enum",
        r#"CREATE TYPE "Status" AS ENUM ('active', 'closed');
ALTER TABLE "User" ADD COLUMN status "Status" NOT NULL DEFAULT 'active';"#,
    ),
    (
        "trigger",
        r#"CREATE FUNCTION lower_body() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.body := lower(NEW.body); RETURN NEW; END $$;
CREATE TRIGGER note_lower BEFORE INSERT OR UPDATE ON "Note" FOR EACH ROW EXECUTE FUNCTION lower_body();
UPDATE "Note" SET body = body;"#,
    ),
    (
        "extension",
        r#"CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE "User" ALTER COLUMN email TYPE citext;
CREATE INDEX note_body_trgm ON "Note" USING gin (body gin_trgm_ops);"#,
    ),
    ("drop_column", r#"ALTER TABLE "Note" DROP COLUMN body;"#),
    ("delete_rows", r#"DELETE FROM "Note" WHERE id > 1;"#),
];

const BACKUP: &str = "name: bk\nsteps:\n  - id: backup\n    backup: { dir: backups }\n";

const MIGRATE: &str = "name: mg\nsteps:\n  - id: migrate\n    migrate: { action: apply }\n";

const RESTORE: &str = r#"name: rs
params:
  from: { type: string, required: true }
steps:
  - id: restore
    restore: { from: "{{ params.from }}" }
"#;

/// Deploy's shape: a backup whose compensation restores it, the migrations, then a check that
/// fails when `fail` is set, so that the rollback runs after the migrations committed.
const DEPLOY: &str = r#"name: dp
params:
  fail: { type: boolean, default: false }
steps:
  - id: backup
    backup: { dir: backups }
    rollback:
      - restore: { from: "{{ steps.backup.outputs.path }}" }
  - id: migrate
    migrate: { action: apply }
  - id: check
    when: params.fail
    sql: { query: "SELECT 1 / 0" }
"#;

/// Who runs runbook against the database.
#[derive(Clone, Copy, Debug)]
enum Role {
    Superuser,
    Owner,
}

/// A project whose target is a fresh database, reached as `role`.
fn project(role: Role) -> Project {
    let p = Project::new(|_| {
        Target::Postgres(match role {
            Role::Superuser => pg::cluster().create_db("rx"),
            Role::Owner => pg::cluster().create_owned_db("rx"),
        })
    });
    std::fs::create_dir_all(p.path().join("migrations/postgres")).unwrap();
    for (name, text) in [
        ("bk", BACKUP),
        ("mg", MIGRATE),
        ("rs", RESTORE),
        ("dp", DEPLOY),
    ] {
        p.playbook(name, text);
    }
    p
}

fn url(p: &Project) -> String {
    p.target.arg()
}

fn migration(p: &Project, version: &str, name: &str, sql: &str) {
    std::fs::write(
        p.path()
            .join(format!("migrations/postgres/{version}_{name}.sql")),
        sql,
    )
    .unwrap();
}

fn remove_migration(p: &Project, version: &str, name: &str) {
    std::fs::remove_file(
        p.path()
            .join(format!("migrations/postgres/{version}_{name}.sql")),
    )
    .unwrap();
}

fn ok(out: &Output, what: &str) {
    assert_eq!(out.code, 0, "{what} failed:\n{}", out.combined());
}

/// The database as a whole: its schema as pg_dump writes it, and a checksum of every row of
/// every table (in a stable order), outside PostgreSQL's own schemas; read as the superuser,
/// who may read what any role made.
fn state(p: &Project) -> (String, Vec<String>) {
    let cluster = pg::cluster();
    let url = cluster.url(url(p).rsplit('/').next().unwrap());
    let tables = cluster.psql(
        &url,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    let sums = tables
        .lines()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let sum = cluster.psql(
                &url,
                &format!(
                    "SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '') FROM {t} r"
                ),
            );
            format!("{t} {sum}")
        })
        .collect();
    (cluster.schema_dump(&url), sums)
}

/// The newest backup's manifest in `backups/`.
fn newest_manifest(p: &Project) -> String {
    let mut found: Vec<_> = std::fs::read_dir(p.path().join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    found.sort();
    found.last().expect("a backup").display().to_string()
}

fn assert_same(p: &Project, at_backup: &(String, Vec<String>), how: &str) {
    let now = state(p);
    assert_eq!(
        now.1, at_backup.1,
        "{how}: table contents differ from the backup"
    );
    assert!(
        now.0 == at_backup.0,
        "{how}: the schema differs from the backup:\n{}",
        diff(&at_backup.0, &now.0)
    );
}

/// The lines only in one of two texts, marked `-` (backup) and `+` (now).
fn diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out: Vec<String> = la
        .iter()
        .filter(|l| !lb.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        lb.iter()
            .filter(|l| !la.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out.join("\n")
}

/// Back up, apply the migration, restore with a `restore` step: the database is the backup;
/// then the same through deploy's rollback; then the fixed migration deploys.
fn round_trip(role: Role, kind: &str, sql: &str) {
    let p = project(role);
    migration(&p, "001", "base", BASE);
    ok(&p.run("mg", &[]), "the base migration");

    ok(&p.run("bk", &[]), "the backup");
    let at_backup = state(&p);
    let manifest = newest_manifest(&p);
    migration(&p, "002", kind, sql);
    ok(&p.run("mg", &[]), "the migration");
    assert_ne!(
        state(&p),
        at_backup,
        "{kind}: the migration changed nothing"
    );
    let out = p.run("rs", &["--var", &format!("from={manifest}")]);
    ok(&out, "the restore");
    assert_same(&p, &at_backup, &format!("{kind} ({role:?}), restore step"));

    // Deploy's rollback: the migration commits, a later step fails, the backup comes back.
    let out = p.run("dp", &["--var", "fail=true"]);
    assert_eq!(
        out.code,
        1,
        "{kind}: the deploy should fail:\n{}",
        out.combined()
    );
    assert!(
        out.stderr.contains("backup.rollback-1 (restore)"),
        "{kind}: the rollback ran:\n{}",
        out.combined()
    );
    assert_same(
        &p,
        &at_backup,
        &format!("{kind} ({role:?}), deploy's rollback"),
    );

    // The fixed migration (a changed file under the same version: the history forgot the
    // first one) deploys on the restored database.
    remove_migration(&p, "002", kind);
    migration(&p, "002", kind, &format!("-- fixed after review\n{sql}"));
    let out = p.run("dp", &[]);
    ok(&out, &format!("{kind}: the next deploy"));
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM runbook_migrations WHERE version = '002'"),
        ["1"]
    );
}

macro_rules! kind_tests {
    ($($name:ident => $index:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (kind, sql) = KINDS[$index];
                round_trip(Role::Superuser, kind, sql);
                round_trip(Role::Owner, kind, sql);
            }
        )*
    };
}

kind_tests! {
    a_new_table_with_a_foreign_key_is_gone_after_a_restore => 0,
    a_new_schema_is_gone_after_a_restore => 1,
    a_new_enum_and_its_column_are_gone_after_a_restore => 2,
    a_function_and_trigger_are_gone_after_a_restore => 3,
    extensions_and_what_uses_them_are_gone_after_a_restore => 4,
    a_dropped_column_is_back_after_a_restore => 5,
    deleted_rows_are_back_after_a_restore => 6,
}

/// A first deploy: the backup is of an empty database; its rollback leaves an empty database
/// (no table, no history), and the fixed deploy then succeeds.
#[test]
fn rolling_back_a_first_deploy_leaves_the_database_empty() {
    for role in [Role::Superuser, Role::Owner] {
        let p = project(role);
        let empty = state(&p);
        migration(&p, "001", "base", BASE);
        migration(&p, "002", "fk_table", KINDS[0].1);
        migration(&p, "003", "extension", KINDS[4].1);
        let out = p.run("dp", &["--var", "fail=true"]);
        assert_eq!(out.code, 1, "{}", out.combined());
        assert_same(&p, &empty, &format!("first deploy ({role:?})"));
        ok(&p.run("dp", &[]), "the fixed first deploy");
        assert_eq!(
            p.target.query("SELECT count(*) FROM runbook_migrations"),
            ["3"]
        );
    }
}

/// An extension created after the backup by another role, which the owner may not drop: the
/// restore is refused before anything changes, and says why.
#[test]
fn an_extension_the_owner_may_not_drop_is_refused_before_anything_changes() {
    let p = project(Role::Owner);
    migration(&p, "001", "base", BASE);
    ok(&p.run("mg", &[]), "the base migration");
    ok(&p.run("bk", &[]), "the backup");
    let manifest = newest_manifest(&p);
    let db = url(&p).rsplit('/').next().unwrap().to_owned();
    // A superuser installs an extension that is not trusted, as a managed service might.
    pg::cluster().psql(&db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    p.target
        .query(r#"INSERT INTO "User" (email) VALUES ('late@example.test')"#);
    let before = state(&p);
    let out = p.run("rs", &["--var", &format!("from={manifest}")]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains("the archive has no extension `pg_stat_statements`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert_same(&p, &before, "refused restore");
}

/// A schema another role created after the backup cannot be dropped by the owner: the restore
/// fails in its transaction and the database is as it was, rows written since included. (In
/// `public` the owner may drop any table: since PostgreSQL 15 the database owner owns
/// `public` through `pg_database_owner`.)
#[test]
fn an_object_the_owner_may_not_drop_fails_the_restore_and_changes_nothing() {
    let p = project(Role::Owner);
    migration(&p, "001", "base", BASE);
    ok(&p.run("mg", &[]), "the base migration");
    ok(&p.run("bk", &[]), "the backup");
    let manifest = newest_manifest(&p);
    let db = url(&p).rsplit('/').next().unwrap().to_owned();
    // Another team's schema, which the owner may read (so the pre-restore backup works) but
    // not drop.
    let owner = url(&p)
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    pg::cluster().psql(
        &db,
        &format!(
            "CREATE SCHEMA ops; CREATE TABLE ops.audit_trail (id INT);
             GRANT USAGE ON SCHEMA ops TO {owner}; GRANT SELECT ON ops.audit_trail TO {owner}"
        ),
    );
    p.target.query(r#"DELETE FROM "Note""#);
    let before = state(&p);
    let out = p.run("rs", &["--var", &format!("from={manifest}")]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains(
            "cannot remove what the archive does not hold: `DROP SCHEMA IF EXISTS ops CASCADE` failed (must be owner of schema ops)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the database was left as it was (one transaction)"),
        "{}",
        out.stderr
    );
    assert_same(&p, &before, "failed restore");
}

/// A pg_restore that dies half-way through its script (here: a wrapper that passes on the first
/// part of the real script and exits 1) must not leave half a database: psql gets no `COMMIT`,
/// and the database is as it was before the restore, objects made since the backup included.
#[test]
fn a_pg_restore_that_fails_half_way_commits_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let p = project(Role::Owner);
    migration(&p, "001", "base", BASE);
    ok(&p.run("mg", &[]), "the base migration");
    ok(&p.run("bk", &[]), "the backup");
    let manifest = newest_manifest(&p);
    migration(&p, "002", "fk_table", KINDS[0].1);
    ok(&p.run("mg", &[]), "the migration");
    let before = state(&p);
    let real = pg::cluster().bin_dir().to_path_buf();
    let bin = tempfile::tempdir().unwrap();
    for tool in ["pg_dump", "psql"] {
        std::os::unix::fs::symlink(real.join(tool), bin.path().join(tool)).unwrap();
    }
    let wrapper = bin.path().join("pg_restore");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *--file=-*) '{real}/pg_restore' \"$@\" | head -c 1500; exit 1 ;;\n  *) exec '{real}/pg_restore' \"$@\" ;;\nesac\n",
            real = real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = p.path().display().to_string();
    let target = p.target.arg();
    let from = format!("from={manifest}");
    let out = crate::support::Runbook::new(&[
        "-C", &dir, "run", "rs", "--target", &target, "--var", &from,
    ])
    .env("RUNBOOK_PG_BIN", &bin.path().display().to_string())
    .run();
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr.contains("`pg_restore` exited with code 1")
            && out
                .stderr
                .contains("the database was left as it was (one transaction)"),
        "{}",
        out.stderr
    );
    assert_same(&p, &before, "half a pg_restore");
}

/// pg_restore writes an archive's large objects inside a `BEGIN`/`COMMIT` of their own unless
/// told the script is one transaction; that inner `COMMIT` would commit the clearing and half
/// the restore. A statement failing after the large objects (a grant to a role dropped since
/// the backup) must leave the database as it was.
#[test]
fn a_restore_with_large_objects_that_fails_late_commits_nothing() {
    let p = project(Role::Superuser);
    migration(&p, "001", "base", BASE);
    ok(&p.run("mg", &[]), "the base migration");
    let db = url(&p).rsplit('/').next().unwrap().to_owned();
    let role = format!("{db}_reader");
    pg::cluster().psql(
        &db,
        &format!(
            "SELECT lo_from_bytea(0, 'a large object'::bytea); CREATE ROLE {role}; GRANT SELECT ON \"Note\" TO {role}"
        ),
    );
    ok(&p.run("bk", &[]), "the backup");
    let manifest = newest_manifest(&p);
    pg::cluster().psql(
        &db,
        &format!("REVOKE SELECT ON \"Note\" FROM {role}; DROP ROLE {role}; DELETE FROM \"Note\""),
    );
    migration(&p, "002", "fk_table", KINDS[0].1);
    ok(&p.run("mg", &[]), "the migration");
    let before = state(&p);
    let out = p.run("rs", &["--var", &format!("from={manifest}")]);
    assert_eq!(out.code, 1, "{}", out.combined());
    assert!(
        out.stderr
            .contains(&format!("role \"{role}\" does not exist")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the database was left as it was (one transaction)"),
        "{}",
        out.stderr
    );
    assert_same(&p, &before, "a late failure after large objects");
}

/// The managed-service layout: a superuser put extensions in a schema of their own before the
/// backup (owner and grants theirs). The owner's restore keeps that schema and its extension,
/// removes everything made after the backup, and returns the database to the backup.
#[test]
fn an_extensions_schema_the_owner_may_not_drop_stays_and_the_rest_is_restored() {
    let p = project(Role::Owner);
    let db = url(&p).rsplit('/').next().unwrap().to_owned();
    let owner = url(&p)
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    pg::cluster().psql(
        &db,
        &format!(
            "CREATE SCHEMA extensions; CREATE EXTENSION pg_stat_statements SCHEMA extensions;
             GRANT USAGE ON SCHEMA extensions TO {owner}"
        ),
    );
    migration(&p, "001", "base", BASE);
    ok(&p.run("mg", &[]), "the base migration");
    ok(&p.run("bk", &[]), "the backup");
    let at_backup = state(&p);
    let manifest = newest_manifest(&p);
    migration(&p, "002", "fk_table", KINDS[0].1);
    ok(&p.run("mg", &[]), "the migration");
    let out = p.run("rs", &["--var", &format!("from={manifest}")]);
    ok(&out, "the restore");
    assert_same(&p, &at_backup, "a kept extensions schema");
}
