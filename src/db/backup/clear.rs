//! What an exact PostgreSQL restore removes before it restores, in the same transaction: every
//! object of the database that a backup could hold, so that what comes back is the archive and
//! nothing else. `pg_restore --clean` drops only what the archive holds, which leaves objects
//! created after the backup behind and cannot drop a table that one of them depends on.
//!
//! Kept: PostgreSQL's own schemas, the `public` schema itself (pg_dump never creates it;
//! its contents go), extension members (they go with their extension), `plpgsql`, extensions
//! the role may not drop (kept only when the archive has them: otherwise the restore is refused
//! before anything changes), and runbook's own records (state and audit tables and the audit
//! trigger function) with the schemas that hold them.

use super::guard::guard;
use super::{STATE_TABLE_PREFIX, STATE_TABLES};
use crate::db::op::{Op, OpError};
use crate::fmt::list_some;
use sqlx::{AssertSqlSafe, Row};

/// Extensions runbook's role may not drop, and the non-`public` schemas that hold runbook's own
/// tables or a kept extension: both stay, and the archive's entries for them are left out of
/// the restore.
#[derive(Debug, Clone, Default)]
pub(super) struct Kept {
    pub(super) extensions: Vec<String>,
    pub(super) schemas: Vec<String>,
}

/// Finds what stays and refuses, before anything changes, what an exact restore cannot do: an
/// extension created after the backup that the role may not drop.
pub(super) async fn plan_clear(
    conn: &mut sqlx::PgConnection,
    archive_extensions: &[String],
    op: &Op<'_>,
) -> Result<Kept, OpError> {
    let rows = guard(
        op,
        "cannot list the extensions",
        None,
        sqlx::query(
            "SELECT e.extname::text, pg_get_userbyid(e.extowner)::text FROM pg_extension e
             WHERE e.extname <> 'plpgsql'
               AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
               AND NOT pg_has_role(e.extowner, 'USAGE')
             ORDER BY 1",
        )
        .fetch_all(&mut *conn),
    )
    .await?;
    let mut kept = Kept::default();
    let mut refused = Vec::new();
    for row in rows {
        let (name, owner): (String, String) = (row.get(0), row.get(1));
        if archive_extensions.contains(&name) {
            kept.extensions.push(name);
        } else {
            refused.push(format!("`{name}` (owner `{owner}`)"));
        }
    }
    if !refused.is_empty() {
        return Err(OpError::failed(format!(
            "refusing to restore: the archive has no extension {} and runbook's role may not drop it, so the database could not be returned to the backup; nothing was changed. Ask the extension's owner to drop it, or restore as a role that owns it",
            list_some(&refused)
        )));
    }
    let schemas = guard(
        op,
        "cannot list the schemas",
        None,
        // The condition is built from runbook's own constant table names, never from input.
        sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
            "SELECT DISTINCT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname <> 'public' AND ({}) ORDER BY 1",
            own_relation("c")
        )))
        .fetch_all(&mut *conn),
    )
    .await?;
    kept.schemas = schemas;
    // A kept extension's own schema stays too (its other contents go): dropping it would drop
    // the extension, which the role may not (e.g. a managed service's `extensions` schema).
    let ext_schemas = guard(
        op,
        "cannot list the extensions' schemas",
        None,
        sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = ANY($1) AND n.nspname <> 'public' ORDER BY 1",
        )
        .bind(&kept.extensions)
        .fetch_all(&mut *conn),
    )
    .await?;
    for s in ext_schemas {
        if !kept.schemas.contains(&s) {
            kept.schemas.push(s);
        }
    }
    Ok(kept)
}

/// The archive's table-of-contents lines that would recreate what stays, left out of the
/// restore: a kept schema, a kept extension's comment, runbook's audit function. `None` when
/// every line stays (no list file needed).
pub(super) fn filter_toc(list: &str, kept: &Kept) -> Option<String> {
    let dropped = |line: &str| -> bool {
        // `3465; 0 0 COMMENT - EXTENSION citext `, `12; 2615 16385 SCHEMA - billing app`,
        // `265; 1255 16517 FUNCTION public runbook_audit_append_only() app`.
        let Some((_, rest)) = line.split_once(' ') else {
            return false;
        };
        let mut it = rest.splitn(3, ' ');
        let (_, _, desc) = (it.next(), it.next(), it.next().unwrap_or_default());
        kept.extensions
            .iter()
            .any(|e| desc.trim_end() == format!("COMMENT - EXTENSION {e}"))
            || kept.schemas.iter().any(|s| {
                // The schema, its grants and its comment stay as they are.
                ["SCHEMA - ", "ACL - SCHEMA ", "COMMENT - SCHEMA "]
                    .iter()
                    .any(|kind| {
                        let entry = format!("{kind}{s}");
                        desc.trim_end() == entry || desc.starts_with(&format!("{entry} "))
                    })
            })
            || (desc.starts_with("FUNCTION ")
                && desc
                    .split(' ')
                    .nth(2)
                    .is_some_and(|f| f.starts_with(STATE_TABLE_PREFIX)))
    };
    let kept_lines: Vec<&str> = list
        .lines()
        .filter(|l| l.starts_with(';') || !dropped(l))
        .collect();
    (kept_lines.len() != list.lines().count()).then(|| kept_lines.join("\n") + "\n")
}

/// A SQL condition true for runbook's own tables, on the `pg_class` alias `c`.
fn own_relation(c: &str) -> String {
    let names = STATE_TABLES
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{c}.relname IN ({names}) OR {c}.relname LIKE '{}%'",
        like_prefix()
    )
}

/// `STATE_TABLE_PREFIX` as a LIKE pattern's start: `_` matches any character unless escaped.
fn like_prefix() -> String {
    STATE_TABLE_PREFIX.replace('_', "\\_")
}

/// The statement that empties the database: one `DO` block that lists every object to drop
/// before it drops any (a name looked up after a cascade could be a bare oid) and drops each
/// with `IF EXISTS ... CASCADE` (a cascade may have taken it already). Schemas other than the
/// cleared ones go whole; in the cleared ones (`public` and `kept` schemas) every object that
/// is not an extension member, an internal part of another object, or runbook's own goes.
pub(super) fn clear_sql(kept: &Kept) -> String {
    let cleared = std::iter::once("public".to_owned())
        .chain(kept.schemas.iter().cloned())
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    CLEAR_SQL
        .replace("__CLEARED__", &cleared)
        .replace("__OWN_RELATION__", &own_relation("c"))
        .replace("__OWN_PREFIX__", &like_prefix())
}

/// The template of `clear_sql`. `bound` holds objects that belong to an extension (`e`) or are
/// an internal part of another object (`i`: a table's row type, an array type, an identity
/// sequence): they go with what they belong to. Extensions go last: a cascade from a dropped
/// extension to a column of a table that is gone already does nothing.
const CLEAR_SQL: &str = r#"DO $runbook_clear$
DECLARE
  me_super boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
  stmts text[];
  stmt text;
BEGIN
  WITH cleared AS (SELECT oid FROM pg_namespace WHERE nspname IN (__CLEARED__)),
  bound AS (SELECT classid, objid FROM pg_depend WHERE deptype IN ('e', 'i')
                AND (classid, objid) <> (refclassid, refobjid)),
  drops AS (
    SELECT 1 AS ord, n.nspname::text AS name, format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) AS sql
      FROM pg_namespace n
     WHERE n.oid NOT IN (SELECT oid FROM cleared)
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
       AND (n.oid, 'pg_namespace'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 2, c.relname::text, format('DROP %s IF EXISTS %s CASCADE',
        CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                       WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, c.oid::regclass)
      FROM pg_class c
     WHERE c.relnamespace IN (SELECT oid FROM cleared) AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
       AND NOT c.relispartition AND NOT (__OWN_RELATION__)
       AND (c.oid, 'pg_class'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 3, p.proname::text, format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
      FROM pg_proc p
     WHERE p.pronamespace IN (SELECT oid FROM cleared) AND p.proname NOT LIKE '__OWN_PREFIX__%'
       AND (p.oid, 'pg_proc'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 4, t.typname::text, format('DROP %s IF EXISTS %s CASCADE',
        CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype)
      FROM pg_type t
     WHERE t.typnamespace IN (SELECT oid FROM cleared)
       AND (t.oid, 'pg_type'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 5, o.oprname::text, format('DROP OPERATOR IF EXISTS %s CASCADE', o.oid::regoperator)
      FROM pg_operator o
     WHERE o.oprnamespace IN (SELECT oid FROM cleared)
       AND (o.oid, 'pg_operator'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 6, f.opfname::text, format('DROP OPERATOR FAMILY IF EXISTS %I.%I USING %I CASCADE',
        n.nspname, f.opfname, a.amname)
      FROM pg_opfamily f JOIN pg_am a ON a.oid = f.opfmethod JOIN pg_namespace n ON n.oid = f.opfnamespace
     WHERE f.opfnamespace IN (SELECT oid FROM cleared)
       AND (f.oid, 'pg_opfamily'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 7, co.collname::text, format('DROP COLLATION IF EXISTS %I.%I CASCADE', n.nspname, co.collname)
      FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
     WHERE co.collnamespace IN (SELECT oid FROM cleared)
       AND (co.oid, 'pg_collation'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 8, cv.conname::text, format('DROP CONVERSION IF EXISTS %I.%I CASCADE', n.nspname, cv.conname)
      FROM pg_conversion cv JOIN pg_namespace n ON n.oid = cv.connamespace
     WHERE cv.connamespace IN (SELECT oid FROM cleared)
       AND (cv.oid, 'pg_conversion'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 9, cf.cfgname::text, format('DROP TEXT SEARCH CONFIGURATION IF EXISTS %I.%I CASCADE', n.nspname, cf.cfgname)
      FROM pg_ts_config cf JOIN pg_namespace n ON n.oid = cf.cfgnamespace
     WHERE cf.cfgnamespace IN (SELECT oid FROM cleared)
       AND (cf.oid, 'pg_ts_config'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 10, d.dictname::text, format('DROP TEXT SEARCH DICTIONARY IF EXISTS %I.%I CASCADE', n.nspname, d.dictname)
      FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
     WHERE d.dictnamespace IN (SELECT oid FROM cleared)
       AND (d.oid, 'pg_ts_dict'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 11, pub.pubname::text, format('DROP PUBLICATION IF EXISTS %I', pub.pubname)
      FROM pg_publication pub
    UNION ALL
    SELECT 12, s.srvname::text, format('DROP SERVER IF EXISTS %I CASCADE', s.srvname)
      FROM pg_foreign_server s
     WHERE (s.oid, 'pg_foreign_server'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 13, et.evtname::text, format('DROP EVENT TRIGGER IF EXISTS %I', et.evtname)
      FROM pg_event_trigger et
     WHERE me_super AND (et.oid, 'pg_event_trigger'::regclass) NOT IN (SELECT objid, classid FROM bound)
    UNION ALL
    SELECT 14, lpad(lo.oid::text, 10, '0'), format('SELECT pg_catalog.lo_unlink(%s)', lo.oid)
      FROM pg_largeobject_metadata lo
    UNION ALL
    SELECT 15, e.extname::text, format('DROP EXTENSION IF EXISTS %I CASCADE', e.extname)
      FROM pg_extension e
     WHERE e.extname <> 'plpgsql' AND (me_super OR pg_has_role(e.extowner, 'USAGE'))
  )
  SELECT array_agg(sql ORDER BY ord, name) INTO stmts FROM drops;
  FOREACH stmt IN ARRAY coalesce(stmts, '{}'::text[]) LOOP
    EXECUTE stmt;
  END LOOP;
END
$runbook_clear$"#;

#[cfg(test)]
mod tests {
    use super::{Kept, filter_toc};

    const TOC: &str = ";\n; Archive created at 2026-12-02\n;\n2; 3079 16398 EXTENSION - citext \n3465; 0 0 COMMENT - EXTENSION citext \n12; 2615 16385 SCHEMA - ops app\n3470; 0 0 ACL - SCHEMA ops app\n265; 1255 16517 FUNCTION public runbook_audit_append_only() app\n266; 1255 16518 FUNCTION public f1(integer) app\n216; 1259 16388 TABLE public User app\n";

    #[test]
    fn nothing_kept_needs_no_list() {
        assert_eq!(
            filter_toc(TOC.replace("runbook_audit", "x").as_str(), &Kept::default()),
            None
        );
    }

    #[test]
    fn kept_objects_leave_the_list_and_the_rest_stays() {
        let kept = Kept {
            extensions: vec!["citext".to_owned()],
            schemas: vec!["ops".to_owned()],
        };
        let list = filter_toc(TOC, &kept).unwrap();
        assert!(!list.contains("COMMENT - EXTENSION citext"), "{list}");
        assert!(!list.contains("SCHEMA - ops"), "{list}");
        assert!(!list.contains("ACL - SCHEMA ops"), "{list}");
        assert!(!list.contains("runbook_audit_append_only"), "{list}");
        assert!(list.contains("EXTENSION - citext"), "{list}");
        assert!(list.contains("f1(integer)"), "{list}");
        assert!(list.contains("TABLE public User"), "{list}");
    }
}
