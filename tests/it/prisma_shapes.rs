//! The held-out kind of check: a Prisma migrations folder shaped like real projects' (an enum
//! change in its own `BEGIN`/`COMMIT`, a data-only folder, a file without a trailing semicolon
//! or newline, a `CREATE INDEX CONCURRENTLY` alone in its file, `ALTER TYPE ... ADD VALUE`, a
//! `DROP INDEX`), kept in `tests/fixtures/prisma-realworld`. runbook applies it as is, lints it
//! on a fresh database without a false error, and gives the schema and data psql gives.

use crate::support::cli::repo;
use crate::support::pg;
use crate::support::{Project, Target};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// What a schema is, in one comparable text: tables and columns with types and defaults,
/// constraints, indexes, enums with their values in order, and the data of the two tables.
const DESCRIBE: &str = "
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(udt_name, '')
         || ' null=' || is_nullable || ' default=' || coalesce(column_default, '') AS line
    FROM information_schema.columns WHERE table_schema = 'public'
     AND table_name NOT LIKE 'runbook%' AND table_name <> '_prisma_migrations'
  UNION ALL
  SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
     AND conrelid::regclass::text NOT LIKE '%runbook%' AND conrelid::regclass::text <> '_prisma_migrations'
  UNION ALL
  SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
     AND tablename NOT LIKE 'runbook%' AND tablename <> '_prisma_migrations'
  UNION ALL
  SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname
  UNION ALL
  SELECT 'user ' || \"id\" || ' ' || \"email\" || ' ' || \"role\" FROM \"User\"
  UNION ALL
  SELECT 'post ' || \"title\" || ' ' || \"authorId\" || ' ' || array_to_string(\"tags\", ',') FROM \"Post\"
) d";

#[test]
fn a_real_world_shaped_prisma_folder_applies_as_psql_applies_it() {
    let p = Project::new(|_| Target::postgres("shapes"));
    let fixture = repo().join("tests/fixtures/prisma-realworld/migrations");
    copy_dir(&fixture, &p.path().join("prisma/migrations"));
    // On a fresh database, lint finds no error: every lock is on a table an earlier file
    // creates empty, and nothing is refused that psql runs.
    p.playbook(
        "ship",
        "name: ship\nsteps:\n  - id: lint\n    migrate: { action: lint, dir: prisma/migrations, lock_timeout: 5s, statement_timeout: 1m }\n  - id: apply\n    migrate: { action: apply, dir: prisma/migrations, lock_timeout: 5s, statement_timeout: 1m }\n",
    );
    let out = p.run("ship", &[]);
    assert_eq!(out.code, 0, "{}", out.combined());
    let err = out.stderr.as_str();
    assert!(
        err.contains("skipped `prisma/migrations/20240104000000_backfill_slugs`"),
        "{err}"
    );
    assert!(
        err.contains("20240103000000_role_enum_change/migration.sql` in")
            && err.contains("its own transaction, from line 8"),
        "{err}"
    );
    assert!(
        err.contains("20240106000000_post_slug_index/migration.sql` in")
            && err.contains("(outside a transaction)"),
        "{err}"
    );
    let Target::Postgres(url) = &p.target else {
        unreachable!()
    };
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM runbook_migrations WHERE success"),
        ["7"]
    );
    // psql, file by file, in order (the data-only folder has no SQL to run).
    let by_psql = pg::cluster().create_db("shapes_psql");
    let mut folders: Vec<_> = std::fs::read_dir(&fixture)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("migration.sql").is_file())
        .collect();
    folders.sort();
    for f in &folders {
        assert!(
            pg::cluster().psql_file(&by_psql, &f.join("migration.sql")),
            "psql failed on {}",
            f.display()
        );
    }
    let ours = pg::cluster().psql(url, DESCRIBE);
    let theirs = pg::cluster().psql(&by_psql, DESCRIBE);
    assert!(
        ours.contains("enum Role USER,ADMIN,OWNER,MODERATOR"),
        "{ours}"
    );
    assert!(ours.contains("Post_authorId_published_idx"), "{ours}");
    assert!(!ours.contains("Post_authorId_idx "), "{ours}");
    assert_eq!(ours, theirs);
}
