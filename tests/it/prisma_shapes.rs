//! The held-out kind of check: a Prisma migrations folder shaped like real projects' (an enum
//! change in its own `BEGIN`/`COMMIT`, a data-only folder, a file without a trailing semicolon
//! or newline, a `CREATE INDEX CONCURRENTLY` alone in its file, `ALTER TYPE ... ADD VALUE`, a
//! `DROP INDEX`), kept in `tests/fixtures/prisma-realworld`. runbook applies it as is, lints it
//! on a fresh database without a false error, and gives the schema and data psql gives.

use crate::support::cli::repo;
use crate::support::pg;
use crate::support::{Project, Target, copy_dir};

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

/// A restore returns both migration histories with the schema: runbook's and Prisma's rows are
/// those of the backup, so the migration applied after it is pending again, for runbook and for
/// Prisma alike.
#[test]
fn a_restore_leaves_both_histories_consistent_with_the_schema() {
    let p = Project::new(|_| Target::postgres("shapes_restore"));
    let mig = p.path().join("prisma/migrations");
    let write = |name: &str, sql: &str| {
        std::fs::create_dir_all(mig.join(name)).unwrap();
        std::fs::write(mig.join(name).join("migration.sql"), sql).unwrap();
    };
    write(
        "20240101000000_init",
        "CREATE TABLE \"User\" (\"id\" TEXT NOT NULL, CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\"));\n",
    );
    std::fs::write(
        mig.join("migration_lock.toml"),
        "provider = \"postgresql\"\n",
    )
    .unwrap();
    // Prisma applied `init` before runbook came: its history table and row.
    p.target.query(
        "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY, checksum VARCHAR(64) NOT NULL, \
         finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, \
         started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0)",
    );
    p.target.query("CREATE TABLE \"User\" (\"id\" TEXT NOT NULL, CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\"))");
    let init_sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(mig.join("20240101000000_init/migration.sql")).unwrap(),
        ))
    };
    p.target.query(&format!(
        "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count) \
         VALUES ('00000000-0000-4000-8000-000000000001', '{init_sum}', now(), '20240101000000_init', 1)"
    ));
    p.playbook(
        "steps",
        "name: steps\nparams:\n  what: { type: string }\nsteps:\n  - id: apply\n    when: params.what == 'apply'\n    migrate: { action: apply, dir: prisma/migrations }\n  - id: backup\n    when: params.what == 'backup'\n    backup: { dir: backups, verify: true }\n  - id: status\n    when: params.what == 'status'\n    migrate: { action: status, dir: prisma/migrations }\n",
    );
    p.playbook(
        "back",
        "name: back\nparams:\n  from: { type: string }\nsteps:\n  - id: restore\n    restore: { from: \"{{ params.from }}\", pre_backup: false }\n",
    );
    let run = |args: &[&str]| {
        let out = p.run(args[0], &args[1..]);
        assert_eq!(out.code, 0, "{args:?}: {}", out.combined());
        out
    };
    // runbook takes over the history (it records what Prisma applied), then backs up.
    run(&["steps", "--var", "what=apply"]);
    run(&["steps", "--var", "what=backup"]);
    let backup = std::fs::read_dir(p.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.to_string_lossy().ends_with(".manifest.json"))
        .unwrap();
    let prisma_rows = || {
        p.target.query("SELECT migration_name || ':' || (finished_at IS NOT NULL) FROM _prisma_migrations ORDER BY 1")
    };
    let runbook_rows = || {
        p.target
            .query("SELECT coalesce(string_agg(version || ':' || kind, ',' ORDER BY version), '') FROM runbook_migrations")
    };
    let before = (prisma_rows(), runbook_rows());
    write(
        "20240102000000_posts",
        "CREATE TABLE \"Post\" (\"id\" SERIAL NOT NULL, CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\"));\n",
    );
    run(&["steps", "--var", "what=apply"]);
    assert_ne!(
        (prisma_rows(), runbook_rows()),
        before,
        "apply changed the histories"
    );
    run(&["back", "--var", &format!("from={}", backup.display())]);
    assert_eq!((prisma_rows(), runbook_rows()), before);
    assert_eq!(
        p.target
            .query("SELECT count(*) FROM pg_tables WHERE tablename = 'Post'"),
        ["0"]
    );
    // Both histories say `posts` is pending again, as the schema does.
    run(&["steps", "--var", "what=status"]);
    let (id, _) = p.last_run();
    let status = p.status_json(&id);
    let step = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "status")
        .unwrap()
        .clone();
    let pending: Vec<&str> = step["outputs"]["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(pending, ["20240102000000"], "{step}");
}
