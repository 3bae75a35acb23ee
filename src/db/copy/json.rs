//! JSON for jsonb columns: which text jsonb keeps as it is, and the canonical form (sorted
//! keys, numbers by value) both checksums hash.

use serde_json::Value as Json;
use std::collections::HashSet;

/// Whether text is JSON that jsonb keeps as it is: no duplicate keys (jsonb keeps the last)
/// and no NUL characters (jsonb refuses them).
pub(super) fn json_ok(text: &str) -> bool {
    serde_json::from_str::<JsonCheck>(text).is_ok()
}

/// Deserializes any JSON, refusing what jsonb would change.
struct JsonCheck;

impl<'de> serde::Deserialize<'de> for JsonCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonCheckVisitor)
    }
}

/// The visitor behind `JsonCheck`.
struct JsonCheckVisitor;

impl<'de> serde::de::Visitor<'de> for JsonCheckVisitor {
    type Value = JsonCheck;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_i64<E>(self, _: i64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_u64<E>(self, _: u64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_f64<E>(self, _: f64) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_unit<E>(self) -> Result<JsonCheck, E> {
        Ok(JsonCheck)
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<JsonCheck, E> {
        if s.contains('\0') {
            return Err(E::custom("NUL character"));
        }
        Ok(JsonCheck)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonCheck, A::Error> {
        while seq.next_element::<JsonCheck>()?.is_some() {}
        Ok(JsonCheck)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonCheck, A::Error> {
        let mut keys = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if k.contains('\0') {
                return Err(serde::de::Error::custom("NUL character"));
            }
            if !keys.insert(k) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value::<JsonCheck>()?;
        }
        Ok(JsonCheck)
    }
}

/// JSON in a canonical form: object keys sorted, numbers by value.
pub(super) fn canon_json_text(text: &str, out: &mut Vec<u8>) {
    match serde_json::from_str::<Json>(text) {
        Ok(v) => canon_json(&v, out),
        // Not reached for values that passed `json_ok`; the text itself is then the form.
        Err(_) => out.extend_from_slice(text.as_bytes()),
    }
}

/// Appends a JSON value in canonical form.
fn canon_json(v: &Json, out: &mut Vec<u8>) {
    match v {
        Json::Null => out.push(b'n'),
        Json::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Json::Number(n) => {
            out.push(b'd');
            match n.as_f64() {
                Some(f) => out.extend_from_slice(&f.to_bits().to_le_bytes()),
                None => out.extend_from_slice(n.to_string().as_bytes()),
            }
        }
        Json::String(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Json::Array(items) => {
            out.push(b'[');
            for item in items {
                canon_json(item, out);
            }
            out.push(b']');
        }
        Json::Object(map) => {
            out.push(b'{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                if let Some(item) = map.get(k) {
                    canon_json(item, out);
                }
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{canon_json_text, json_ok};

    #[test]
    fn json_that_jsonb_would_change_is_refused() {
        assert!(json_ok(r#"{"a": [1, 2.5, null, true], "b": {"c": "d"}}"#));
        assert!(json_ok("42"));
        assert!(!json_ok(r#"{"a": 1, "a": 2}"#));
        assert!(!json_ok(r#"{"a": "\u0000"}"#));
        assert!(!json_ok("{not json"));
        let mut a = Vec::new();
        let mut b = Vec::new();
        canon_json_text(r#"{"b": 1e2, "a": [true]}"#, &mut a);
        canon_json_text(r#"{"a":[true],"b":100}"#, &mut b);
        assert_eq!(a, b);
    }
}
