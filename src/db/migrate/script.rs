//! A migration's SQL as text: the no-transaction marker, squawk's parse, splitting into
//! statements, and what a file needs of its transaction (`tx_needs`).

use squawk_syntax::ast::{self, AstNode};

/// A migration whose first line is this runs outside a transaction.
pub const NO_TRANSACTION: &str = "-- runbook:no-transaction";

/// Whether the (normalised) SQL opts out of the transaction on its first line.
pub fn is_no_transaction(sql: &str) -> bool {
    sql.trim_start_matches('\u{feff}')
        .lines()
        .next()
        .is_some_and(|first| first.trim_end() == NO_TRANSACTION)
}

/// squawk's parse of a text; `None` if the parser panicked (it must never take the run down).
pub(super) fn parse_sql(sql: &str) -> Option<squawk_syntax::Parse<squawk_syntax::SourceFile>> {
    std::panic::catch_unwind(|| squawk_syntax::SourceFile::parse(sql)).ok()
}

/// The 1-based line of a byte offset.
pub(super) fn line_of(text: &str, byte: usize) -> usize {
    text.get(..byte.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// The 1-based column (in characters) of a byte offset.
pub(super) fn column_of(text: &str, byte: usize) -> usize {
    let before = text.get(..byte.min(text.len())).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    before[line_start..].chars().count() + 1
}

/// One statement of a file (or the whole file when it is not split).
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece<'a> {
    /// Byte offset in the file.
    pub offset: usize,
    pub text: &'a str,
    /// The line the statement starts on, when known.
    pub line: Option<usize>,
}

/// A file as the pieces it runs in: on PostgreSQL one statement at a time (split by squawk's
/// parser), so every error names its statement's line and a no-transaction file never sends
/// several statements at once (the server would run them as one implicit transaction, where
/// `CREATE INDEX CONCURRENTLY` fails). SQLite, and SQL squawk cannot parse cleanly, run whole;
/// the server judges them.
pub(super) fn pieces(on_postgres: bool, sql: &str) -> Vec<Piece<'_>> {
    let whole = vec![Piece {
        offset: 0,
        text: sql,
        line: None,
    }];
    if !on_postgres {
        return whole;
    }
    split_statements(sql).unwrap_or(whole)
}

fn split_statements(sql: &str) -> Option<Vec<Piece<'_>>> {
    let parse = parse_sql(sql)?;
    if !parse.errors().is_empty() {
        return None;
    }
    let mut out: Vec<Piece<'_>> = Vec::new();
    let mut start = 0;
    for stmt in parse.tree().stmts() {
        let end = usize::from(stmt.syntax().text_range().end());
        if is_empty(&stmt) {
            // Not a statement the server runs or counts: it goes with the one before it.
            if let Some(last) = out.last_mut()
                && let Some(joined) = sql.get(last.offset..end)
            {
                last.text = joined;
                start = end;
            }
            continue;
        }
        let mut token = stmt.syntax().first_token();
        while let Some(t) = token.as_ref().filter(|t| t.kind().is_trivia()) {
            token = t.next_token();
        }
        let line = token.map(|t| line_of(sql, usize::from(t.text_range().start())));
        if end > start
            && let Some(text) = sql.get(start..end)
        {
            out.push(Piece {
                offset: start,
                text,
                line,
            });
            start = end;
        }
    }
    // Comments after the last statement go with it.
    if let Some(last) = out.last_mut()
        && start < sql.len()
        && let Some(joined) = sql.get(last.offset..)
    {
        last.text = joined;
    }
    (!out.is_empty()).then_some(out)
}

/// A statement with nothing but a semicolon (`;;`): the server skips it, and counts it in no
/// reply.
fn is_empty(stmt: &ast::Stmt) -> bool {
    stmt.syntax()
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .all(|t| t.kind().is_trivia() || t.kind() == squawk_syntax::SyntaxKind::SEMICOLON)
}

/// What a file's SQL says of the transaction runbook would run it in, read in one parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxNeeds {
    /// The line of its first statement of transaction control (`BEGIN`, `START TRANSACTION`,
    /// `COMMIT`, `END`, `ROLLBACK`; not savepoints or prepared transactions): such a file (real
    /// Prisma projects have them, for enum changes) runs as psql runs it, statement by statement,
    /// its own `BEGIN`/`COMMIT` deciding what is atomic.
    pub own_transaction: Option<usize>,
    /// The line of its first statement PostgreSQL refuses inside a transaction block (`CREATE
    /// INDEX CONCURRENTLY` and the other `CONCURRENTLY` forms but `REFRESH MATERIALIZED VIEW`,
    /// `VACUUM`, `CREATE`/`DROP DATABASE` and `TABLESPACE`, `ALTER SYSTEM`): real projects keep
    /// such a statement alone in a file with no marker, and psql and Prisma run it so.
    pub refused_inside: Option<usize>,
    /// It runs outside runbook's transaction: for either reason above, or because its first
    /// line is the no-transaction marker.
    pub outside: bool,
    /// How many statements it has, when it parses cleanly (the pieces `pieces` splits it in):
    /// as the server counts them, an empty one (`;;`) not counted.
    pub statements: Option<usize>,
}

/// squawk's parse of a migration file and its syntax errors, kept with it when it is discovered
/// for linting (`discover_parsed`): the linter reads the tree and errors `tx_needs` read instead
/// of parsing the file again. The errors are worked out once: squawk's `Parse::errors` walks the
/// whole tree again at every call.
#[derive(Clone)]
pub struct Parsed {
    pub(super) tree: squawk_syntax::Parse<squawk_syntax::SourceFile>,
    pub(super) errors: Vec<squawk_syntax::syntax_error::SyntaxError>,
}

impl Parsed {
    /// Parses `sql` and reads its syntax errors (`None`: the parser panicked).
    pub(super) fn of(sql: &str) -> Option<Parsed> {
        let tree = parse_sql(sql)?;
        let errors = std::panic::catch_unwind(|| tree.errors()).ok()?;
        Some(Parsed { tree, errors })
    }
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parsed({} syntax errors)", self.errors.len())
    }
}

/// Reads what a file needs of its transaction (`TxNeeds`): from its tokens when they settle
/// it, else parsing it once.
pub fn tx_needs(sql: &str) -> TxNeeds {
    super::tokens::tx_needs_from_tokens(sql)
        .unwrap_or_else(|| tx_needs_in(sql, Parsed::of(sql).as_ref()))
}

/// Reads what a file needs of its transaction from squawk's parse of it (`None`: the parser
/// panicked).
pub(super) fn tx_needs_in(sql: &str, parse: Option<&Parsed>) -> TxNeeds {
    let mut needs = TxNeeds::default();
    if let Some(parse) = parse {
        let clean = parse.errors.is_empty();
        let mut statements = 0;
        for stmt in parse.tree.tree().stmts() {
            statements += usize::from(!is_empty(&stmt));
            let line = || line_of(sql, usize::from(stmt.syntax().text_range().start()));
            if needs.own_transaction.is_none() && controls_transaction(&stmt) {
                needs.own_transaction = Some(line());
            }
            if needs.refused_inside.is_none() && refused_in_transaction(&stmt) {
                needs.refused_inside = Some(line());
            }
        }
        needs.statements = (clean && statements > 0).then_some(statements);
    }
    needs.outside =
        is_no_transaction(sql) || needs.own_transaction.is_some() || needs.refused_inside.is_some();
    needs
}

/// `BEGIN`, `START TRANSACTION`, `COMMIT`, `END` or `ROLLBACK` (of the transaction itself).
fn controls_transaction(stmt: &ast::Stmt) -> bool {
    matches!(
        stmt,
        ast::Stmt::Begin(_)
            | ast::Stmt::Commit(ast::Commit::CommitTransaction(_))
            | ast::Stmt::Rollback(ast::Rollback::RollbackTransaction(_))
    )
}

/// A statement PostgreSQL refuses inside a transaction block.
fn refused_in_transaction(stmt: &ast::Stmt) -> bool {
    match stmt {
        ast::Stmt::Vacuum(_)
        | ast::Stmt::CreateDatabase(_)
        | ast::Stmt::DropDatabase(_)
        | ast::Stmt::CreateTablespace(_)
        | ast::Stmt::DropTablespace(_)
        | ast::Stmt::AlterSystem(_) => true,
        ast::Stmt::Refresh(_) => false,
        other => other
            .syntax()
            .descendants_with_tokens()
            .any(|t| t.kind() == squawk_syntax::SyntaxKind::CONCURRENTLY_KW),
    }
}

#[cfg(test)]
mod tests {
    use super::{split_statements, tx_needs};

    fn own_transaction(sql: &str) -> Option<usize> {
        tx_needs(sql).own_transaction
    }

    fn outside_transaction_only(sql: &str) -> Option<usize> {
        tx_needs(sql).refused_inside
    }

    #[test]
    fn statements_refused_in_a_transaction_are_found_by_parsing() {
        let idx =
            "-- CreateIndex\nCREATE INDEX CONCURRENTLY \"Post_slug_idx\" ON \"Post\"(\"slug\");\n";
        assert_eq!(outside_transaction_only(idx), Some(2));
        assert_eq!(
            outside_transaction_only("DROP INDEX CONCURRENTLY a;"),
            Some(1)
        );
        assert_eq!(outside_transaction_only("SELECT 1;\nVACUUM t;\n"), Some(2));
        // Allowed in a transaction: no reason to leave it.
        assert_eq!(
            outside_transaction_only("REFRESH MATERIALIZED VIEW CONCURRENTLY v;"),
            None
        );
        assert_eq!(
            outside_transaction_only("CREATE INDEX a ON t (x); -- CONCURRENTLY\n"),
            None
        );
        assert_eq!(outside_transaction_only("SELECT 'CONCURRENTLY';"), None);
    }

    #[test]
    fn transaction_control_is_found_by_parsing_not_by_text() {
        let enum_change =
            "-- rallly-style enum change\nBEGIN;\nCREATE TYPE s AS ENUM ('a');\nCOMMIT;\n";
        assert_eq!(own_transaction(enum_change), Some(2));
        assert_eq!(
            own_transaction("START TRANSACTION;\nSELECT 1;\nEND;\n"),
            Some(1)
        );
        // In a function body, a comment or a string, BEGIN and COMMIT are not the file's.
        let body = "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; END $$;\n-- COMMIT;\nSELECT 'BEGIN;';\n";
        assert_eq!(own_transaction(body), None);
        assert_eq!(
            own_transaction("SAVEPOINT a;\nROLLBACK TO SAVEPOINT a;\n"),
            None
        );
    }

    #[test]
    fn statements_split_on_squawk_boundaries() {
        let sql = "-- runbook:no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);\nCREATE INDEX CONCURRENTLY b ON t ($$;$$);\n-- end\n";
        let pieces = split_statements(sql).unwrap();
        assert_eq!(pieces.len(), 2, "{pieces:?}");
        assert!(pieces[0].text.contains("INDEX CONCURRENTLY a"));
        assert_eq!((pieces[0].line, pieces[1].line), (Some(2), Some(3)));
        assert!(pieces[1].text.contains("$$;$$") && pieces[1].text.ends_with("-- end\n"));
        assert_eq!(pieces.iter().map(|p| p.text).collect::<String>(), sql);
        assert_eq!(tx_needs(sql).statements, Some(pieces.len()));
        assert_eq!(tx_needs("-- only a comment\n").statements, None);
        assert_eq!(tx_needs("SELECT 1;\n/* open\n").statements, None);
    }
}
