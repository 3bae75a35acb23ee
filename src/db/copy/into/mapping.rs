//! Which source column goes into which target column: same names unless `map` says
//! otherwise, `ignore` for source columns left out; extra source columns and target columns
//! that would be left NULL against a NOT NULL without a default are errors.

use super::super::report::Decision;
use super::super::schema::SrcTable;
use super::super::{OpError, Request};
use super::columns::TgtTable;
use super::load::Mapping;
use crate::diagnostic::did_you_mean;

/// The column pairs of one table, and the decisions the report lists for them.
pub(super) fn map_columns(
    t: &SrcTable,
    tgt: &TgtTable,
    req: &Request,
    decisions: &mut Vec<Decision>,
) -> Result<Mapping, OpError> {
    let decision = |column: &str, what: &str, from: String, to: String, reason: &str| Decision {
        table: t.name.clone(),
        column: Some(column.to_owned()),
        what: what.to_owned(),
        from,
        to,
        reason: reason.to_owned(),
    };
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (si, c) in t.columns.iter().enumerate() {
        let key = format!("{}.{}", t.name, c.name);
        if req.ignore.contains(&key) {
            decisions.push(decision(
                &c.name,
                "column",
                c.declared.clone(),
                "not carried over".into(),
                "`ignore` lists it",
            ));
            continue;
        }
        let want = req.map.get(&key).unwrap_or(&c.name);
        let Some(ti) = tgt.columns.iter().position(|tc| &tc.name == want) else {
            let hint = did_you_mean(want, tgt.columns.iter().map(|c| c.name.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(OpError::Failed(format!(
                "the source column `{key}` has no column `{want}` in the target table `{}`{hint}: \
                 name its column with `map: {{ {key}: COLUMN }}` or leave it out with \
                 `ignore: [{key}]`",
                tgt.name
            )));
        };
        let tc = &tgt.columns[ti];
        if tc.generated {
            return Err(OpError::Failed(format!(
                "`{}.{}` is a generated column in the target; leave the source's `{key}` out \
                 with `ignore: [{key}]`",
                tgt.name, tc.name
            )));
        }
        if let Some(&(other, _)) = pairs.iter().find(|&&(_, t2)| t2 == ti) {
            return Err(OpError::Failed(format!(
                "the source columns `{}` and `{}` of `{}` both go into `{}.{}`",
                t.columns[other].name, c.name, t.name, tgt.name, tc.name
            )));
        }
        let from = if c.declared.is_empty() {
            "(no declared type)".to_owned()
        } else {
            c.declared.clone()
        };
        decisions.push(decision(
            &c.name,
            "type",
            from,
            format!("{}.{} {}", tgt.name, tc.name, tc.shown),
            "the existing column's type; every value converted exactly",
        ));
        pairs.push((si, ti));
    }
    for (ti, tc) in tgt.columns.iter().enumerate() {
        if pairs.iter().any(|&(_, t2)| t2 == ti) || tc.generated {
            continue;
        }
        if tc.not_null && !tc.has_default {
            return Err(OpError::Failed(format!(
                "the target column `{}.{}` is NOT NULL without a default and the source's `{}` \
                 has no column for it: name one with `map: {{ {}.COLUMN: {} }}`",
                tgt.name, tc.name, t.name, t.name, tc.name
            )));
        }
        let to = if tc.has_default {
            "the target's default"
        } else {
            "NULL"
        };
        decisions.push(Decision {
            table: t.name.clone(),
            column: Some(tc.name.clone()),
            what: "default".to_owned(),
            from: "(not in the source)".to_owned(),
            to: to.to_owned(),
            reason: "the source has no such column".to_owned(),
        });
    }
    pairs.sort_by_key(|&(_, ti)| ti);
    Ok(Mapping { pairs })
}

/// Every `map` and `ignore` entry names a selected table or one of its columns: a typo is an
/// error, not a silent no-op.
pub(super) fn check_names(selected: &[&SrcTable], req: &Request) -> Result<(), OpError> {
    for key in req.map.keys().chain(req.ignore.iter()) {
        let known = selected.iter().any(|t| {
            key == &t.name
                || key
                    .strip_prefix(&t.name)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|col| t.columns.iter().any(|c| c.name == col))
        });
        if !known {
            return Err(OpError::Failed(format!(
                "`{key}` (in `map` or `ignore`) names no copied source table or `Table.column`"
            )));
        }
    }
    Ok(())
}
