//! Percent-encoding, the one copy: the forms of a secret the redactor masks, a URL's
//! password and option values decoded, libpq options and SQLite `file:` paths encoded.

/// Escapes every byte but the unreserved ones (RFC 3986: letters, digits, `-._~`).
pub fn encode(s: &str) -> String {
    encode_keeping(s, b"")
}

/// Like [`encode`], but `/` stays as it is, so a path stays readable.
pub fn encode_path(s: &str) -> String {
    encode_keeping(s, b"/")
}

fn encode_keeping(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; a malformed escape stays as it is, invalid UTF-8 becomes U+FFFD.
pub fn decode(s: &str) -> String {
    let (bytes, _) = decode_bytes(s);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
pub fn decode_strict(s: &str) -> Option<String> {
    match decode_bytes(s) {
        (bytes, true) => String::from_utf8(bytes).ok(),
        (_, false) => None,
    }
}

/// The bytes `s` stands for, and whether every escape in it was well-formed (a malformed
/// one is kept as written).
fn decode_bytes(s: &str) -> (Vec<u8>, bool) {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut clean = true;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let value = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = value {
                out.push(v);
                i += 3;
                continue;
            }
            clean = false;
        }
        out.push(b[i]);
        i += 1;
    }
    (out, clean)
}

#[cfg(test)]
mod tests {
    use super::{decode, decode_strict, encode, encode_path};

    #[test]
    fn encoding_keeps_unreserved_bytes_and_paths_keep_slashes() {
        assert_eq!(encode("a b/c~é"), "a%20b%2Fc~%C3%A9");
        assert_eq!(encode_path("/tmp/a b.db"), "/tmp/a%20b.db");
    }

    #[test]
    fn decoding_is_lenient_or_strict() {
        assert_eq!(decode("p%40ss%zz"), "p@ss%zz");
        assert_eq!(decode("%FF"), "\u{FFFD}");
        assert_eq!(decode_strict("p%40ss").as_deref(), Some("p@ss"));
        assert_eq!(decode_strict("p%zz"), None);
        assert_eq!(decode_strict("%FF"), None);
    }
}
