//! Declared lengths and precisions kept in own-tables mode: `VARCHAR(n)` becomes
//! `varchar(n)` and `NUMERIC(p,s)` / `DECIMAL(p,s)` become `numeric(p,s)`, as long as every
//! value fits. SQLite enforces neither, so a value that does not fit is a misfit: the table's
//! values are then inspected and it is loaded without the limit, which the report says.

use super::encode::{norm_decimal, real_text};
use super::scan::Val;
use super::types::Kind;

/// A declared limit on a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// `varchar(n)`: at most n characters.
    Chars(u32),
    /// `numeric(p,s)`: p digits, s of them after the point.
    Decimal(u32, u32),
}

impl Limit {
    /// The type modifier as `CREATE TABLE` and `format_type` write it.
    pub(super) fn type_name(self, kind: Kind) -> String {
        match self {
            Limit::Chars(n) => format!("character varying({n})"),
            Limit::Decimal(p, s) => format!("{}({p},{s})", kind.name()),
        }
    }
}

/// The numbers in the declared type's parentheses: `VARCHAR(255)` is `[255]`.
fn modifiers(declared: &str) -> Option<Vec<u32>> {
    let open = declared.find('(')?;
    let close = declared[open..].find(')')? + open;
    declared[open + 1..close]
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect()
}

/// The limit a declared type asks for, for a column of `kind`.
pub(super) fn declared_limit(declared: &str, kind: Kind) -> Option<Limit> {
    let upper = declared.to_ascii_uppercase();
    let m = modifiers(&upper)?;
    match (kind, m.as_slice()) {
        (Kind::Text, [n])
            if (upper.contains("VARCHAR") || upper.contains("VARYING"))
                && (1..=10_485_760).contains(n) =>
        {
            Some(Limit::Chars(*n))
        }
        (Kind::Numeric, [p]) if (1..=1000).contains(p) => Some(Limit::Decimal(*p, 0)),
        (Kind::Numeric, [p, s]) if (1..=1000).contains(p) && s <= p => Some(Limit::Decimal(*p, *s)),
        _ => None,
    }
}

/// Why a value does not fit the limit, or `None` when it does.
pub(super) fn over_limit(limit: Limit, v: Val<'_>) -> Option<String> {
    match (limit, v) {
        (Limit::Chars(n), Val::Text(b)) => (String::from_utf8_lossy(b).chars().count()
            > n as usize)
            .then(|| format!("text longer than {n} characters")),
        (Limit::Decimal(p, s), Val::Int(_) | Val::Real(_)) => {
            let text = match v {
                Val::Int(i) => i.to_string(),
                Val::Real(f) if f.is_finite() => real_text(f),
                _ => return Some("a number numeric cannot hold".to_owned()),
            };
            let norm = norm_decimal(&text)?;
            let digits = norm.trim_start_matches('-');
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let int_digits = if int == "0" { 0 } else { int.len() };
            (frac.len() > s as usize || int_digits + s as usize > p as usize)
                .then(|| format!("a number that numeric({p},{s}) would round or refuse"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Limit, Val, declared_limit, over_limit};
    use crate::db::copy::types::Kind;

    #[test]
    fn declared_limits_are_kept_while_values_fit() {
        assert_eq!(
            declared_limit("VARCHAR(255)", Kind::Text),
            Some(Limit::Chars(255))
        );
        assert_eq!(
            declared_limit("character varying (8)", Kind::Text),
            Some(Limit::Chars(8))
        );
        assert_eq!(declared_limit("CHAR(2)", Kind::Text), None);
        assert_eq!(
            declared_limit("DECIMAL(10,2)", Kind::Numeric),
            Some(Limit::Decimal(10, 2))
        );
        assert_eq!(declared_limit("NUMERIC", Kind::Numeric), None);
        let money = Limit::Decimal(6, 2);
        assert_eq!(over_limit(money, Val::Real(29.99)), None);
        assert!(over_limit(money, Val::Real(1.005)).is_some());
        assert!(over_limit(money, Val::Int(10_000)).is_some());
        assert!(over_limit(Limit::Chars(2), Val::Text("añb".as_bytes())).is_some());
        assert_eq!(
            over_limit(Limit::Chars(3), Val::Text("añb".as_bytes())),
            None
        );
    }
}
