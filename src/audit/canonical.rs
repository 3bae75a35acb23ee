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
    let mut keys: Vec<&String> = record.keys().filter(|k| *k != "hash").collect();
    keys.sort();
    let mut out = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).unwrap_or_default());
        out.push(':');
        write_canonical(&record[k.as_str()], &mut out);
    }
    out.push('}');
    hex::encode(Sha256::digest(out.as_bytes()))
}
