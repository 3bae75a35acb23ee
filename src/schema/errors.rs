//! Schema errors as diagnostics: each `jsonschema` error kind becomes a message at the
//! offending node, named by its field (and step), with a hint from the error or the schema.

use super::{Compiled, SchemaKind, deref, schema_at, segments};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::playbook::ACTION_KEYS;
use crate::source::{Pos, Source};
use crate::yaml::Node;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value as Json;

/// The hint for a wrong duration, as type and as format errors give it.
const DURATION_HINT: &str =
    "durations are digits and a unit: `500ms`, `30s`, `5m`, `2h`, `7d`, or `1h30m`";

/// The diagnostics of one schema error (of the closest branch, for `anyOf`/`oneOf`).
pub(super) fn error_diagnostics(
    kind: SchemaKind,
    compiled: &Compiled,
    source: &Source,
    tree: &Node,
    err: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    // For "none of the forms matched", report the errors of the form that came closest: the
    // one whose errors reach deepest into the value, preferring a wrong value over a wrong type.
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } =
        err.kind()
    {
        let score = |branch: &Vec<jsonschema::ValidationError<'static>>| {
            branch
                .iter()
                .map(|e| {
                    let depth = segments(e.instance_path().as_str()).len();
                    let specific = !matches!(e.kind(), ValidationErrorKind::Type { .. });
                    (depth, specific)
                })
                .max()
        };
        if let Some(best) = context
            .iter()
            .filter(|b| !b.is_empty())
            .max_by_key(|b| score(b))
        {
            let mut out = Vec::new();
            for e in best {
                out.extend(error_diagnostics(kind, compiled, source, tree, e));
            }
            if !out.is_empty() {
                return out;
            }
        }
    }
    let instance: Vec<String> = segments(err.instance_path().as_str());
    let schema_path: Vec<String> = segments(err.schema_path().as_str());
    SchemaError {
        kind,
        compiled,
        source,
        tree,
        instance: &instance,
        schema_path: &schema_path,
        value: err.instance(),
    }
    .diagnostics(err.kind())
}

/// One schema error, located in the document (`instance`) and in the schema.
struct SchemaError<'a> {
    kind: SchemaKind,
    compiled: &'a Compiled,
    source: &'a Source,
    tree: &'a Node,
    instance: &'a [String],
    schema_path: &'a [String],
    /// The offending value.
    value: &'a Json,
}

impl SchemaError<'_> {
    fn diagnostics(&self, error: &ValidationErrorKind) -> Vec<Diagnostic> {
        match error {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                self.unknown_keys(unexpected)
            }
            ValidationErrorKind::Required { property } => vec![self.missing_key(property)],
            ValidationErrorKind::Type { kind: expected } => vec![self.wrong_type(expected)],
            ValidationErrorKind::Enum { options } => vec![self.not_an_option(options)],
            ValidationErrorKind::Pattern { .. } => vec![self.wrong_format()],
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => {
                vec![self.out_of_range("below the minimum", "at least", limit)]
            }
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => {
                vec![self.out_of_range("above the maximum", "at most", limit)]
            }
            ValidationErrorKind::AnyOf { .. }
            | ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::OneOfMultipleValid { .. } => vec![self.no_form()],
            other => vec![
                Diagnostic::error(
                    "schema",
                    format!(
                        "{} ({}){}",
                        short(self.value),
                        other.keyword(),
                        self.field()
                    ),
                )
                .at(self.source, self.pos()),
            ],
        }
    }

    fn refs(&self) -> Vec<&str> {
        self.instance.iter().map(String::as_str).collect()
    }

    fn node(&self) -> Option<&Node> {
        self.tree.lookup(&self.refs())
    }

    fn pos(&self) -> Pos {
        self.tree.pos_of(&self.refs())
    }

    /// The caret width: the node's string value, up to 60 characters.
    fn width(&self) -> usize {
        self.node()
            .and_then(Node::as_str)
            .map_or(1, |s| s.chars().count().min(60))
    }

    fn field(&self) -> String {
        field_name(self.tree, self.instance)
    }

    fn hint_from_schema(&self) -> Option<String> {
        description_of(self.compiled, self.schema_path)
    }

    /// One diagnostic per unknown key, at the key, with the closest allowed key.
    fn unknown_keys(&self, unexpected: &[String]) -> Vec<Diagnostic> {
        let parent = &self.schema_path[..self.schema_path.len().saturating_sub(1)];
        let allowed: Vec<String> = schema_at(&self.compiled.schema, parent)
            .map(|n| deref(&self.compiled.schema, n))
            .and_then(|n| n.get("properties"))
            .and_then(Json::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let in_step = is_step_path(&self.refs());
        let (node, pos) = (self.node(), self.pos());
        let ctx = context(self.tree, self.instance);
        unexpected
            .iter()
            .map(|key| {
                let key_node = node.and_then(|n| n.key(key));
                let key_pos = key_node.map_or(pos, |n| n.pos);
                let what = if in_step { "unknown key or action" } else { "unknown key" };
                let d = Diagnostic::error("unknown-key", format!("{what} `{key}`{ctx}"))
                    .at(self.source, key_pos)
                    .with_width(key.chars().count());
                let hint = match did_you_mean(key, allowed.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if in_step => format!(
                        "a step takes one action ({}) and the options `id`, `name`, `when`, `retry`, `timeout`, `continue_on_error`, `rollback`, `rollback_when`, `outputs`, `tags`",
                        ACTION_KEYS.join(", ")
                    ),
                    None => format!(
                        "expected one of: {}",
                        allowed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                };
                d.with_hint(hint)
            })
            .collect()
    }

    fn missing_key(&self, property: &Json) -> Diagnostic {
        let name = property.as_str().unwrap_or_default();
        let refs = self.refs();
        // Point at the key that holds the incomplete mapping (`sql:`), not inside it.
        let key_pos = match refs.split_last() {
            Some((last, parent)) => self
                .tree
                .lookup(parent)
                .and_then(|p| p.key(last))
                .map_or(self.pos(), |k| k.pos),
            None => self.pos(),
        };
        let ctx = context(self.tree, self.instance);
        let hint = match (self.kind, name) {
            (SchemaKind::Playbook, "steps") if self.instance.is_empty() => {
                "a playbook needs a `steps` list, even if it is short".to_owned()
            }
            (SchemaKind::Playbook, "name") if self.instance.is_empty() => {
                "add `name: <playbook-name>` at the top of the file".to_owned()
            }
            _ => format!("add `{name}:`"),
        };
        Diagnostic::error("missing-key", format!("missing required key `{name}`{ctx}"))
            .at(self.source, key_pos)
            .with_hint(hint)
    }

    fn wrong_type(&self, expected: &TypeKind) -> Diagnostic {
        let expected = format!("{expected:?}")
            .replace("Single(", "")
            .replace("Multiple(", "")
            .replace(')', "")
            .to_lowercase()
            .replace("object", "mapping")
            .replace("array", "list");
        let found = json_type_name(self.value);
        let (source, pos) = (self.source, self.pos());
        let mut d = Diagnostic::error(
            "wrong-type",
            format!("expected {expected}, found {found}{}", self.field()),
        )
        .at(source, pos)
        .with_width(self.width());
        let description = self.hint_from_schema().unwrap_or_default();
        if description.starts_with("A duration") {
            d.message = format!("expected a duration, found {found}{}", self.field());
            d = d
                .with_width(token_width(source, pos))
                .with_hint(DURATION_HINT);
        } else if self.instance.is_empty() {
            d = d.with_hint(match self.kind {
                SchemaKind::Playbook => {
                    "a playbook is a mapping with `name` and `steps` at the top level"
                }
                SchemaKind::Config => {
                    "the config is a mapping with `environments` at the top level"
                }
            });
        } else if let (Json::String(s), true) = (self.value, expected.contains("boolean")) {
            d = d.with_hint(format!(
                "write `true` or `false`; `{s}` is a string in YAML 1.2"
            ));
        } else if expected.contains("integer") || expected.contains("number") {
            d = d
                .with_width(token_width(source, pos))
                .with_hint(format!("write a plain {expected} without quotes"));
        } else if expected == "list" {
            d = d
                .with_width(token_width(source, pos))
                .with_hint("write a YAML list: one `- item` per line, or `[a, b]`");
        } else if expected == "mapping" {
            d = d
                .with_width(token_width(source, pos))
                .with_hint("write `key: value` lines indented under the key");
        } else if expected == "string" {
            d = d
                .with_width(token_width(source, pos))
                .with_hint("quote the value to make it a string");
        }
        d
    }

    fn not_an_option(&self, options: &Json) -> Diagnostic {
        let opts: Vec<String> = options
            .as_array()
            .map(|a| a.iter().map(short).collect())
            .unwrap_or_default();
        let got = short(self.value);
        let hint = match did_you_mean(&got, opts.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "expected one of: {}",
                opts.iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Diagnostic::error(
            "invalid-value",
            format!("`{got}` is not a valid value{}", self.field()),
        )
        .at(self.source, self.pos())
        .with_width(self.width())
        .with_hint(hint)
    }

    fn wrong_format(&self) -> Diagnostic {
        let hint = self
            .hint_from_schema()
            .unwrap_or_else(|| "check the value's format".to_owned());
        let hint = if hint.starts_with("A duration") {
            DURATION_HINT.to_owned()
        } else {
            hint
        };
        let hint = match self.instance.last().map(String::as_str) {
            Some("id") => "step ids are letters, digits and `_`, starting with a letter or `_`, so templates can read `steps.<id>`".to_owned(),
            Some("name") if self.instance.len() == 1 => "playbook names are lowercase letters, digits, `-` and `_`".to_owned(),
            Some("start" | "end") => "times are `HH:MM` on a 24-hour clock, from `00:00` to `23:59`".to_owned(),
            _ => hint,
        };
        Diagnostic::error(
            "invalid-format",
            format!(
                "`{}` is not a valid value{}",
                short(self.value),
                self.field()
            ),
        )
        .at(self.source, self.pos())
        .with_width(self.width())
        .with_hint(hint)
    }

    /// A number below a minimum or above a maximum, quoted as written.
    fn out_of_range(&self, what: &str, allowed: &str, limit: &Json) -> Diagnostic {
        let pos = self.pos();
        let written = token(self.source, pos).unwrap_or_else(|| short(self.value));
        Diagnostic::error(
            "out-of-range",
            format!("{written} is {what} {limit}{}", self.field()),
        )
        .at(self.source, pos)
        .with_width(written.chars().count())
        .with_hint(format!("use a value of {allowed} {limit}"))
    }

    /// None of the accepted forms (`anyOf`, `oneOf`) matched.
    fn no_form(&self) -> Diagnostic {
        let hint = self
            .hint_from_schema()
            .unwrap_or_else(|| "see `runbook schema` for the accepted forms".to_owned());
        Diagnostic::error(
            "invalid-value",
            format!(
                "`{}` is not an accepted form{}",
                short(self.value),
                self.field()
            ),
        )
        .at(self.source, self.pos())
        .with_width(self.width())
        .with_hint(hint)
    }
}

/// The description of the subschema that holds the failing keyword.
fn description_of(compiled: &Compiled, schema_path: &[String]) -> Option<String> {
    let parent = &schema_path[..schema_path.len().saturating_sub(1)];
    let node = deref(&compiled.schema, schema_at(&compiled.schema, parent)?);
    node.get("description").and_then(Json::as_str).map(|s| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end_matches('.')
            .to_owned()
    })
}

/// What the containing object is, for messages: "in step `backup`", "in `shell`".
fn context(tree: &Node, instance: &[String]) -> String {
    let refs: Vec<&str> = instance.iter().map(String::as_str).collect();
    if is_step_path(&refs) {
        let id = tree
            .lookup(&refs)
            .and_then(|n| n.get("id"))
            .and_then(Node::as_str);
        return match id {
            Some(id) => format!(" in step `{id}`"),
            None => " in step".to_owned(),
        };
    }
    match refs.iter().rev().find(|s| s.parse::<usize>().is_err()) {
        Some(last) => format!(" in `{last}`"),
        None => String::new(),
    }
}

/// A step is an item of `steps`, `on_failure`, `finally` or `rollback`.
fn is_step_path(path: &[&str]) -> bool {
    path.len() >= 2
        && path[path.len() - 1].parse::<usize>().is_ok()
        && matches!(
            path[path.len() - 2],
            "steps" | "on_failure" | "finally" | "rollback"
        )
}

fn json_type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "mapping",
    }
}

fn short(v: &Json) -> String {
    let text = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// " for `a.b.c`" naming the field, or nothing at the root. Inside a step the path is given
/// from the step, which is named by its id: " for `retry.attempts` in step `backup`".
fn field_name(tree: &Node, instance: &[String]) -> String {
    if instance.is_empty() {
        return String::new();
    }
    let refs: Vec<&str> = instance.iter().map(String::as_str).collect();
    let step_end = (2..=refs.len())
        .rev()
        .find(|&n| is_step_path(&refs[..n]) && n < refs.len());
    if let Some(n) = step_end {
        let id = tree
            .lookup(&refs[..n])
            .and_then(|s| s.get("id"))
            .and_then(Node::as_str);
        let field = instance[n..].join(".");
        return match id {
            Some(id) => format!(" for `{field}` in step `{id}`"),
            None => format!(" for `{field}`"),
        };
    }
    format!(" for `{}`", instance.join("."))
}

/// The scalar as written in the source at `pos` (up to a delimiter), for quoting numbers as
/// the user wrote them rather than as JSON prints them.
fn token(source: &Source, pos: Pos) -> Option<String> {
    let line = source.line(pos.line)?;
    let rest: String = line.chars().skip(pos.col.saturating_sub(1)).collect();
    let tok: String = if rest.starts_with('"') || rest.starts_with('\'') {
        let q = rest.chars().next()?;
        let end = rest[1..].find(q).map_or(rest.len(), |i| i + 2);
        rest[..end].to_owned()
    } else {
        rest.chars()
            .take_while(|c| !matches!(c, ',' | '}' | ']' | '#') && !c.is_whitespace())
            .collect()
    };
    (!tok.is_empty()).then_some(tok)
}

fn token_width(source: &Source, pos: Pos) -> usize {
    token(source, pos).map_or(1, |t| t.chars().count().min(60))
}
