//! SQLite SQL carried into PostgreSQL as text (the expressions and predicates of indexes,
//! CHECK constraints): column names quoted as the columns were created, since PostgreSQL
//! folds unquoted names to lower case and SQLite does not; and the CHECK expressions of a
//! `CREATE TABLE`.

use crate::fmt::quote_ident;

/// `sql` with every bare word that names one of `columns` (case-insensitively, as SQLite
/// resolves it) and is not a function call quoted with the column's exact name. String
/// literals and quoted identifiers are left as they are.
pub(super) fn quote_columns(sql: &str, columns: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i = (i + 1).min(chars.len());
                let quoted: String = chars[start..i].iter().collect();
                // SQLite's `name` and [name] become PostgreSQL's "name".
                if c == '`' || c == '[' {
                    out.push_str(&quote_ident(&quoted[1..quoted.len().saturating_sub(1)]));
                } else {
                    out.push_str(&quoted);
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let after_dot = start > 0 && chars[start - 1] == '.';
                match columns.iter().find(|col| col.eq_ignore_ascii_case(&word)) {
                    Some(col) if next != Some(&'(') && !after_dot => {
                        out.push_str(&quote_ident(col))
                    }
                    _ => out.push_str(&word),
                }
            }
            c if c.is_ascii_digit() => {
                // A number (with any letters in it, `1e5`, `0x1F`) is not a name.
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The expressions of the CHECK constraints in a `CREATE TABLE` statement, column and table
/// constraints alike, in order.
pub(super) fn check_exprs(create: &str) -> Vec<String> {
    let chars: Vec<char> = create.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '\'' | '"' | '`' | '[') {
            let close = if c == '[' { ']' } else { c };
            i += 1;
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            i += 1;
            continue;
        }
        let word_start = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        let is_check = word_start
            && chars.len() >= i + 5
            && chars[i..i + 5]
                .iter()
                .collect::<String>()
                .eq_ignore_ascii_case("CHECK")
            && chars
                .get(i + 5)
                .is_none_or(|c| !(c.is_alphanumeric() || *c == '_'));
        if !is_check {
            i += 1;
            continue;
        }
        i += 5;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if chars.get(i) != Some(&'(') {
            continue;
        }
        let (start, mut depth) = (i + 1, 0);
        while i < chars.len() {
            match chars[i] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                q @ ('\'' | '"') => {
                    i += 1;
                    while i < chars.len() && chars[i] != q {
                        i += 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        out.push(chars[start..i.min(chars.len())].iter().collect());
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{check_exprs, quote_columns};

    #[test]
    fn column_names_are_quoted_as_created() {
        let cols = ["deletedAt", "email", "lower"];
        assert_eq!(
            quote_columns(
                "(lower(Email)) WHERE deletedat IS NULL AND x.email = 'deletedAt'",
                &cols
            ),
            r#"(lower("email")) WHERE "deletedAt" IS NULL AND x.email = 'deletedAt'"#
        );
        assert_eq!(quote_columns("[email] > 1e5", &cols), r#""email" > 1e5"#);
    }

    #[test]
    fn check_expressions_are_found() {
        let sql = r#"CREATE TABLE t ("role" TEXT CHECK ("role" IN ('A', 'B(')), n INT,
                     CONSTRAINT pos CHECK (n >= 0 AND (n < 10)), "checked" INT)"#;
        assert_eq!(
            check_exprs(sql),
            [r#""role" IN ('A', 'B(')"#, "n >= 0 AND (n < 10)"]
        );
    }
}
