//! Canonical JSON (object keys sorted, no whitespace) and a record's hash over it: the bytes
//! every chain link is made of.

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

/// JSON with object keys sorted and no whitespace: the bytes a record's hash is taken over.
pub fn canonical(v: &Json) -> String {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    into_string(out)
}

/// The canonical form of the object `m` without its top-level keys in `skip`: what
/// `canonical` gives for a copy with those keys removed, with no copy made.
pub fn canonical_without(m: &Map<String, Json>, skip: &[&str]) -> String {
    let mut out = Vec::new();
    write_object(m, skip, &mut out);
    into_string(out)
}

/// The text serde_json wrote (always UTF-8).
fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A string or scalar as serde_json writes it, straight into `out`.
fn write_plain(v: &(impl serde::Serialize + ?Sized), out: &mut Vec<u8>) {
    // Writing a string or scalar into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn write_object(m: &Map<String, Json>, skip: &[&str], out: &mut Vec<u8>) {
    let mut keys: Vec<&String> = m.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_plain(k.as_str(), out);
        out.push(b':');
        write_canonical(&m[k.as_str()], out);
    }
    out.push(b'}');
}

fn write_canonical(v: &Json, out: &mut Vec<u8>) {
    match v {
        Json::Object(m) => write_object(m, &[], out),
        Json::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => write_plain(other, out),
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
    let mut out = vec![b'{'];
    // Where the hash goes: the byte offset and the index of the key it comes before.
    let mut at = None;
    for (i, k) in keys.iter().enumerate() {
        if at.is_none() && k.as_str() > "hash" {
            at = Some((out.len(), i));
        }
        if i > 0 {
            out.push(b',');
        }
        write_plain(k.as_str(), &mut out);
        out.push(b':');
        write_canonical(&record[k.as_str()], &mut out);
    }
    let (pos, before) = at.unwrap_or((out.len(), keys.len()));
    out.push(b'}');
    let mut out = into_string(out);
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

    /// Leaving keys out while writing gives the bytes of a copy without them, nested keys
    /// of the same name kept.
    #[test]
    fn canonical_without_equals_a_copy_without_the_keys() {
        let v = serde_json::json!({"rows": [1], "b": {"rows": 2, "\u{e9}": "x\"y"}, "a": 1.5, "scalar": null, "row": {}});
        let Json::Object(m) = &v else { unreachable!() };
        let mut copy = m.clone();
        for k in ["rows", "row", "scalar"] {
            copy.remove(k);
        }
        let want = canonical(&Json::Object(copy));
        assert_eq!(canonical_without(m, &["rows", "row", "scalar"]), want);
        assert_eq!(want, "{\"a\":1.5,\"b\":{\"rows\":2,\"\u{e9}\":\"x\\\"y\"}}");
    }

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
