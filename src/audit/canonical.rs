//! Canonical JSON (object keys sorted, no whitespace) and a record's hash over it: the bytes
//! every chain link is made of.

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

/// JSON with object keys sorted and no whitespace: the bytes a record's hash is taken over.
pub fn canonical(v: &Json) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of a record: sha256 of its canonical form without the `hash` field.
pub fn record_hash(record: &Map<String, Json>) -> String {
    sealed(record).0
}

/// A record's hash and its canonical line with that hash in it, from one canonical build: the
/// form without `hash` is hashed, then `"hash":"…"` is put where its key sorts (the `hash`
/// field in `record`, if any, is ignored). Appending and verifying both use it.
pub fn sealed(record: &Map<String, Json>) -> (String, String) {
    let mut keys: Vec<&String> = record.keys().filter(|k| *k != "hash").collect();
    keys.sort();
    let mut out = String::from("{");
    // Where the hash goes: the byte offset and the index of the key it comes before.
    let mut at = None;
    for (i, k) in keys.iter().enumerate() {
        if at.is_none() && k.as_str() > "hash" {
            at = Some((out.len(), i));
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        write_canonical(&record[k.as_str()], &mut out);
    }
    let (pos, before) = at.unwrap_or((out.len(), keys.len()));
    out.push('}');
    let hash = hex::encode(Sha256::digest(out.as_bytes()));
    let entry = if before == 0 && !keys.is_empty() {
        format!("\"hash\":\"{hash}\",")
    } else if before == 0 {
        format!("\"hash\":\"{hash}\"")
    } else {
        format!(",\"hash\":\"{hash}\"")
    };
    out.insert_str(pos, &entry);
    (hash, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-build line equals the two-build one (hash, then the whole record), wherever the
    /// `hash` key sorts: first, between, last, alone.
    #[test]
    fn sealed_equals_hash_then_canonical() {
        let cases = [
            serde_json::json!({}),
            serde_json::json!({"a": 1}),
            serde_json::json!({"z": [1, {"y": "x", "b": null}]}),
            serde_json::json!({"a": 1, "event": "e", "prev": "p", "seq": 3, "ts": "t"}),
            serde_json::json!({"h": 1, "hash": "stale", "hasi": 2, "hasg": "\u{e9}\"q"}),
        ];
        for c in cases {
            let Json::Object(mut m) = c else {
                unreachable!()
            };
            let (hash, line) = sealed(&m);
            m.remove("hash");
            let mut want = String::from("{");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    want.push(',');
                }
                want.push_str(&serde_json::to_string(k).unwrap());
                want.push(':');
                want.push_str(&canonical(&m[k.as_str()]));
            }
            want.push('}');
            assert_eq!(hash, hex::encode(Sha256::digest(want.as_bytes())));
            m.insert("hash".into(), Json::from(hash.clone()));
            assert_eq!(line, canonical(&Json::Object(m)));
        }
    }
}
