//! YAML to a tree of nodes that remember where they came from.
//!
//! serde-saphyr does the parsing (panic-free, with input budgets, duplicate-key rejection and
//! bounded alias expansion). We deserialize into [`Node`], a small value tree in which every
//! node carries its source position, because validation needs a position for any path in the
//! document, not only for the first error serde would report.

use crate::diagnostic::Diagnostic;
use crate::source::{Pos, Source};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Limits that keep a hostile document from costing much time or memory.
const MAX_DEPTH: usize = 48;
const MAX_NODES: usize = 200_000;
const MAX_ALIASES: usize = 1_000;
const MAX_ALIAS_REPLAYED_EVENTS: usize = 20_000;
const MAX_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys are kept as nodes so their position can be reported; order is preserved.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The key node itself (for pointing at a key rather than its value).
    pub fn key(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k)
    }

    /// Follows a JSON-pointer-like list of segments; numeric segments index sequences.
    pub fn lookup<'a>(&'a self, path: &[&str]) -> Option<&'a Node> {
        let mut node = self;
        for seg in path {
            node = match &node.value {
                Value::Map(_) => node.get(seg)?,
                Value::Seq(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The position of the deepest node that exists along `path`.
    pub fn pos_of(&self, path: &[&str]) -> Pos {
        let mut node = self;
        for seg in path {
            let next = match &node.value {
                Value::Map(_) => node.get(seg),
                Value::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// The JSON form, used for schema validation and typed deserialization. Mapping keys must
    /// be strings; `Err` carries the position of the first key that is not.
    pub fn to_json(&self) -> Result<serde_json::Value, Pos> {
        Ok(match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?)
            }
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match &k.value {
                        Value::Str(s) => s.clone(),
                        _ => return Err(k.pos),
                    };
                    map.insert(key, v.to_json()?);
                }
                serde_json::Value::Object(map)
            }
        })
    }

    /// A short word for the node's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        let loc = spanned.referenced;
        Ok(Node {
            value: spanned.value,
            pos: Pos::new(loc.line() as usize, loc.column() as usize),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        String::from_utf8(v.to_vec())
            .map(Value::Str)
            .map_err(|_| E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

fn options() -> serde_saphyr::Options {
    let mut opts = serde_saphyr::Options::default();
    opts.strict_booleans = true;
    opts.with_snippet = false;
    opts.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    opts.legacy_octal_numbers = false;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_aliases = MAX_ALIASES;
    budget.max_reader_input_bytes = Some(MAX_BYTES);
    budget.max_documents = 1;
    opts.budget = Some(budget);
    let mut alias = serde_saphyr::options::AliasLimits::default();
    alias.max_total_replayed_events = MAX_ALIAS_REPLAYED_EVENTS;
    opts.alias_limits = alias;
    opts
}

/// Reads bytes as UTF-8, or says where the first bad byte is.
pub fn decode(path: &std::path::Path, bytes: Vec<u8>) -> Result<Source, Diagnostic> {
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Source::new(path, text)),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let before = String::from_utf8_lossy(&bytes[..valid]);
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let src = Source::new(path, String::from_utf8_lossy(&bytes).into_owned());
            Err(Diagnostic::error(
                "not-utf8",
                format!("file is not valid UTF-8 (byte 0x{:02x})", bytes[valid]),
            )
            .at(&src, Pos::new(line, col))
            .with_hint("save the file as UTF-8"))
        }
    }
}

/// Parses one YAML document into a [`Node`] tree. An empty document is `Value::Null`.
pub fn parse(source: &Source) -> Result<Node, Diagnostic> {
    if source.text.len() > MAX_BYTES {
        return Err(Diagnostic::error(
            "too-large",
            format!("file is larger than {} MiB", MAX_BYTES / (1024 * 1024)),
        )
        .at_file(source.display_path())
        .with_hint("a playbook or config this large is a mistake; split it with `include`"));
    }
    if source.text.trim().is_empty()
        || source
            .text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(Node {
            value: Value::Null,
            pos: Pos::new(1, 1),
        });
    }
    match serde_saphyr::from_str_with_options::<Node>(&source.text, options()) {
        Ok(node) => Ok(node),
        Err(err) => Err(yaml_error(source, &err)),
    }
}

fn yaml_error(source: &Source, err: &serde_saphyr::Error) -> Diagnostic {
    let pos = err
        .location()
        .map(|l| Pos::new(l.line() as usize, l.column() as usize))
        .filter(|p| p.is_known())
        .unwrap_or(Pos::new(1, 1));
    let raw = err.without_snippet().to_string();
    let message = clean_message(&raw);
    let lower = message.to_lowercase();
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest)
            .trim();
        let hint = match first_definition(source, pos, key) {
            Some(line) => format!(
                "`{key}` is first given at line {line}; each key may appear once in a mapping"
            ),
            None => "each key may appear once in a mapping; remove or rename one".to_owned(),
        };
        return Diagnostic::error("duplicate-key", format!("duplicate key `{key}`"))
            .at(source, pos)
            .with_width(key.chars().count())
            .with_hint(hint);
    }
    if message.contains("Depth {") || lower.contains("recursion") {
        return Diagnostic::error(
            "too-deep",
            format!("the document nests deeper than {MAX_DEPTH} levels"),
        )
        .at(source, pos)
        .with_hint("flatten the document; a playbook never needs this much nesting");
    }
    if message.contains("Documents {") {
        return Diagnostic::error("several-documents", "the file holds more than one YAML document")
            .at(source, pos)
            .with_width(3)
            .with_hint("a playbook file holds one document; remove the `---` and what follows, or split it into two files");
    }
    if lower.contains("alias") || lower.contains("anchor") || lower.contains("budget") {
        return Diagnostic::error("yaml-budget", "the document expands past the loader's limits")
            .at(source, pos)
            .with_hint(format!(
                "aliases may replay at most {MAX_ALIAS_REPLAYED_EVENTS} nodes and a file may hold {MAX_NODES}; nested aliases like these are an alias bomb"
            ));
    }
    // A tab in indentation is reported where the parser noticed it, which may be the line
    // after; point at the first tab used for indentation at or before that line instead.
    if lower.contains("tab") {
        let tab = source
            .text
            .split('\n')
            .take(pos.line + 2)
            .enumerate()
            .find_map(|(i, l)| {
                let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
                indent
                    .find('\t')
                    .map(|b| Pos::new(i + 1, indent[..b].chars().count() + 1))
            })
            .unwrap_or(pos);
        return Diagnostic::error("yaml-syntax", "tab character used for indentation")
            .at(source, tab)
            .with_hint("YAML indentation must use spaces, not tabs");
    }
    let hint = match unclosed(source, pos) {
        Some((ch, at)) => format!(
            "the `{ch}` opened at line {}, column {} is never closed",
            at.line, at.col
        ),
        None => {
            "check the indentation and quoting around this position, and the lines just before it"
                .to_owned()
        }
    };
    Diagnostic::error("yaml-syntax", message)
        .at(source, pos)
        .with_hint(hint)
}

/// The line of an earlier `key:` at the same indentation as the duplicate at `pos`.
fn first_definition(source: &Source, pos: Pos, key: &str) -> Option<usize> {
    let dup_line = source.line(pos.line)?;
    let indent = dup_line.len() - dup_line.trim_start().len();
    let dup_indent = &dup_line[..indent];
    let patterns = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    (1..pos.line).rev().find(|&n| {
        source.line(n).is_some_and(|l| {
            let body = l.strip_prefix(dup_indent).unwrap_or("");
            let body = body.strip_prefix("- ").unwrap_or(body);
            patterns.iter().any(|p| body.starts_with(p.as_str()))
        })
    })
}

/// The last flow bracket or quote opened before `pos` and not closed, if any: the usual cause
/// of a syntax error reported further down.
fn unclosed(source: &Source, pos: Pos) -> Option<(char, Pos)> {
    let mut stack: Vec<(char, Pos)> = Vec::new();
    let mut quote: Option<(char, Pos)> = None;
    for (i, line) in source.text.split('\n').enumerate().take(pos.line) {
        let mut chars = line.chars().enumerate().peekable();
        while let Some((c, ch)) = chars.next() {
            let here = Pos::new(i + 1, c + 1);
            match quote {
                Some((q, _)) => {
                    if ch == q {
                        // '' inside a single-quoted scalar is an escaped quote.
                        if q == '\'' && chars.peek().is_some_and(|&(_, n)| n == '\'') {
                            chars.next();
                        } else {
                            quote = None;
                        }
                    } else if ch == '\\' && q == '"' {
                        chars.next();
                    }
                }
                None => match ch {
                    '#' if c == 0
                        || line[..line.char_indices().nth(c).map_or(0, |(b, _)| b)]
                            .ends_with(' ') =>
                    {
                        break;
                    }
                    '"' | '\'' => {
                        let prev = line.chars().nth(c.wrapping_sub(1));
                        if c == 0 || matches!(prev, Some(' ' | '[' | '{' | ',' | ':')) {
                            quote = Some((ch, here));
                        }
                    }
                    '[' | '{' => stack.push((ch, here)),
                    ']' | '}' => {
                        stack.pop();
                    }
                    _ => {}
                },
            }
        }
    }
    quote.or_else(|| stack.pop())
}

/// Drops the "at line X column Y" suffix the YAML crate appends, since the diagnostic shows
/// the position itself.
fn clean_message(raw: &str) -> String {
    let first = raw.lines().next().unwrap_or(raw).trim();
    let cut = first
        .find(" at line ")
        .map(|i| &first[..i])
        .unwrap_or(first);
    let cut = cut.trim_end_matches(['.', ':', ',']).trim();
    if cut.is_empty() {
        "invalid YAML".to_owned()
    } else {
        cut.to_owned()
    }
}
