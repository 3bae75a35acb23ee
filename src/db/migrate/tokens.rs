//! What a migration file needs of its transaction, read from its tokens alone when they settle
//! it: the common file (DDL and data statements, nothing about transactions) is classified by
//! squawk's lexer, several times cheaper than its parser, which builds and validates a tree of
//! the whole file. Everything else is left to the parse (`script::tx_needs_in`).
//!
//! The tokens settle it when no word among them could make the parse find anything: no word
//! that starts or ends a transaction (`BEGIN`, `START`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`),
//! none of a statement PostgreSQL refuses inside one (`CONCURRENTLY`, `VACUUM`, `DATABASE`,
//! `TABLESPACE`, `SYSTEM`, `REFRESH`), none that nests statements (`ATOMIC`, `RULE`) or brings
//! data after a statement (`STDIN`); quoted identifiers, strings and comments are not words.
//! No token may be left open (a string, a comment, a quoted identifier) or unknown, and every
//! parenthesis must close, with no `;` inside one. The file then has no transaction control and
//! no statement refused in a transaction, and its statements are what its top-level semicolons
//! separate, as psql splits a file: the count the parse gives where it parses cleanly (pinned by
//! `a_files_tokens_agree_with_its_parse`). Where squawk's parser finds a syntax error the server
//! may still accept, the count is the tokens', which is the server's.

use super::script::{TxNeeds, is_no_transaction};
use squawk_lexer::{LiteralKind, TokenKind};

/// Words that send a file to the parse (compared without regard to ASCII case).
const PARSE_WORDS: [&str; 15] = [
    "abort",
    "atomic",
    "begin",
    "commit",
    "concurrently",
    "database",
    "end",
    "refresh",
    "rollback",
    "rule",
    "start",
    "stdin",
    "system",
    "tablespace",
    "vacuum",
];

/// What `sql` needs of its transaction, when its tokens settle it (see the module); `None`:
/// only the parse can tell.
pub(super) fn tx_needs_from_tokens(sql: &str) -> Option<TxNeeds> {
    let mut at = 0;
    let mut depth = 0usize;
    let mut statements = 0;
    // Whether the statement being read has a token that is not whitespace or a comment.
    let mut open = false;
    for token in squawk_lexer::tokenize(sql) {
        let text = sql.get(at..at + token.len as usize)?;
        at += token.len as usize;
        match token.kind {
            TokenKind::Whitespace | TokenKind::LineComment => continue,
            TokenKind::BlockComment { terminated } if terminated => continue,
            TokenKind::Semi if depth == 0 => {
                statements += usize::from(open);
                open = false;
                continue;
            }
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen => depth = depth.checked_sub(1)?,
            TokenKind::Ident if PARSE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(text)) => {
                return None;
            }
            TokenKind::Literal { kind } if !closed(kind) => return None,
            TokenKind::QuotedIdent { terminated, .. } if !terminated => return None,
            TokenKind::Unknown
            | TokenKind::Semi
            | TokenKind::BlockComment { .. }
            | TokenKind::OpenCurly
            | TokenKind::CloseCurly => return None,
            TokenKind::Eof => break,
            _ => {}
        }
        open = true;
    }
    if depth != 0 {
        return None;
    }
    statements += usize::from(open);
    Some(TxNeeds {
        own_transaction: None,
        refused_inside: None,
        outside: is_no_transaction(sql),
        statements: (statements > 0).then_some(statements),
    })
}

/// Whether a literal is closed (a string's quote, a dollar quote's tag).
fn closed(kind: LiteralKind) -> bool {
    match kind {
        LiteralKind::Str { terminated }
        | LiteralKind::NationalStr { terminated }
        | LiteralKind::ByteStr { terminated }
        | LiteralKind::BitStr { terminated }
        | LiteralKind::DollarQuotedString { terminated }
        | LiteralKind::UnicodeEscStr { terminated }
        | LiteralKind::EscStr { terminated } => terminated,
        LiteralKind::Int { .. } | LiteralKind::Numeric { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::tx_needs_from_tokens;
    use crate::db::migrate::script::{Parsed, tx_needs_in};

    /// Statements and pieces of statements a migration file is made of, the awkward ones among
    /// them: words of transaction control in strings, comments, quoted identifiers and
    /// function bodies; semicolons in strings, dollar quotes, comments and parentheses; empty
    /// statements; a statement with no semicolon; text left open; a syntax error.
    const PIECES: [&str; 40] = [
        "CREATE TABLE \"T\" (\"id\" TEXT NOT NULL, CONSTRAINT \"T_pkey\" PRIMARY KEY (\"id\"))",
        "CREATE UNIQUE INDEX \"T_name_key\" ON \"T\"(\"name\")",
        "ALTER TABLE \"T\" ADD COLUMN \"c\" INTEGER NOT NULL DEFAULT 0",
        "ALTER TYPE \"Status\" ADD VALUE 'V2'",
        "UPDATE t SET v = CASE WHEN v > 1 THEN 2 ELSE 3 END",
        "INSERT INTO t (v) VALUES ('a;b'), ('BEGIN'), (E'it\\'s;')",
        "SELECT $$;$$, $tag$ COMMIT; $tag$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$",
        "CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM 1; END $$",
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)",
        "SELECT \"begin\", \"commit\" FROM \"end\"",
        "COMMENT ON TABLE t IS 'ROLLBACK; START TRANSACTION'",
        "-- COMMIT;\nSELECT 1",
        "/* BEGIN; */ SELECT 2",
        "/* nested /* COMMIT; */ still */ SELECT 3",
        "BEGIN",
        "COMMIT",
        "START TRANSACTION",
        "END",
        "ROLLBACK",
        "CREATE INDEX CONCURRENTLY i ON t (v)",
        "VACUUM t",
        "ALTER SEQUENCE s START WITH 10",
        "SAVEPOINT a",
        "SELECT (1",
        "SELECT 1)",
        "SELECT 'open",
        "SELECT \"open",
        "/* open",
        "SELECT $$ open",
        "SELEC 1 FROM",
        "DO $$ BEGIN RAISE NOTICE 'x;'; END $$",
        "GRANT SELECT ON t TO r",
        "COPY t FROM STDIN",
        "SELECT U&'\\0041', B'101', X'1F', N'n'",
        "SELECT ARRAY[1, 2][1], '{a}'::text[]",
        "CREATE TABLE \"Ünï\" (\"ñ\" int)",
        "",
        "\u{feff}SELECT 4",
    ];

    /// Wherever the tokens settle a file and squawk parses it cleanly, the two agree on every
    /// field; the files are every ordered pair and triple of the pieces, with and without
    /// semicolons, line breaks and the no-transaction marker.
    #[test]
    fn a_files_tokens_agree_with_its_parse() {
        let mut settled = 0;
        let mut compared = 0;
        let seps = [";\n", ";", "\n", ";;\n", " ; -- x\n"];
        for (i, a) in PIECES.iter().enumerate() {
            for (j, b) in PIECES.iter().enumerate() {
                for (k, sep) in seps.iter().enumerate() {
                    let mut files = vec![format!("{a}{sep}{b}"), format!("{a}{sep}{b}{sep}")];
                    if (i + j + k) % 3 == 0 {
                        let c = PIECES[(i * 7 + j) % PIECES.len()];
                        files.push(format!("-- runbook:no-transaction\n{a}{sep}{b}{sep}{c};"));
                    }
                    for sql in files {
                        let Some(quick) = tx_needs_from_tokens(&sql) else {
                            continue;
                        };
                        settled += 1;
                        let parse = Parsed::of(&sql);
                        if parse.as_ref().is_some_and(|p| p.errors.is_empty()) {
                            compared += 1;
                            assert_eq!(quick, tx_needs_in(&sql, parse.as_ref()), "{sql:?}");
                        }
                    }
                }
            }
        }
        // Most files go the quick way, and most of those parse cleanly.
        assert!(settled > 4_000 && compared > 3_000, "{settled} {compared}");
    }

    #[test]
    fn words_and_open_text_leave_a_file_to_the_parse() {
        for sql in [
            "BEGIN;\nCREATE TYPE s AS ENUM ('a');\nCOMMIT;\n",
            "CREATE INDEX CONCURRENTLY i ON t (v);",
            "UPDATE t SET v = CASE WHEN v THEN 1 END;",
            "SELECT 'open",
            "SELECT (1;",
            "SELECT 1);",
            "COPY t FROM stdin;\n1\n\\.\n",
        ] {
            assert_eq!(tx_needs_from_tokens(sql), None, "{sql:?}");
        }
        let prisma = "-- CreateTable\nCREATE TABLE \"T\" (\n    \"id\" TEXT NOT NULL,\n    CONSTRAINT \"T_pkey\" PRIMARY KEY (\"id\")\n);\n\n-- CreateIndex\nCREATE UNIQUE INDEX \"T_id_key\" ON \"T\"(\"id\");\n";
        let needs = tx_needs_from_tokens(prisma).expect("a plain Prisma file is settled");
        assert_eq!(needs.statements, Some(2));
        assert!(!needs.outside);
        let marked = tx_needs_from_tokens("-- runbook:no-transaction\nCREATE INDEX i ON t (v);")
            .expect("settled");
        assert!(marked.outside);
        assert_eq!(
            tx_needs_from_tokens("-- nothing\n").unwrap().statements,
            None
        );
    }
}
