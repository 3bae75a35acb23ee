//! Secret redaction: one mechanism for every place text leaves the process (terminal, tracing,
//! state store, audit, error messages).
//!
//! A [`Redactor`] knows secret values and masks each of them in the forms it is likely to
//! appear in: raw, base64 (standard and URL-safe, with and without padding), URL-encoded and
//! JSON-escaped. Passwords inside connection URLs are masked by shape, known or not.

use crate::percent;
use base64::Engine as _;
use std::sync::{Arc, RwLock};

pub use crate::fmt::MASK;

/// Values shorter than this are not treated as secrets to mask: masking every `a` in the
/// output would destroy it and protect nothing.
const MIN_SECRET_LEN: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Vec<String>>>,
}

/// The process-wide redactor: the terminal, tracing and error paths all pass through it, so a
/// secret known anywhere in the process is masked everywhere.
pub fn global() -> &'static Redactor {
    static GLOBAL: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Redactor::default)
}

impl Redactor {
    /// The process-wide redactor (shared: secrets added to it are masked everywhere).
    pub fn new() -> Self {
        global().clone()
    }

    /// Adds a secret value (and its encoded forms) to mask from now on.
    pub fn add(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = vec![secret.to_owned()];
        let b = secret.as_bytes();
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            forms.push(engine.encode(b));
        }
        let pct = percent::encode(secret);
        forms.push(lower_hex_escapes(&pct));
        forms.push(percent_encode_form(secret));
        forms.push(lower_hex_escapes(&percent_encode_form(secret)));
        forms.push(pct);
        let json = serde_json::to_string(secret).unwrap_or_default();
        let json = json.trim_matches('"').to_owned();
        // Encoders differ: some escape `/`, and some every character outside ASCII as
        // `\uXXXX` (Python's default), in lower or upper case hex.
        forms.push(json.replace('/', "\\/"));
        forms.push(json);
        for upper in [false, true] {
            let escaped = ascii_json(secret, upper);
            forms.push(escaped.replace('/', "\\/"));
            forms.push(escaped);
        }
        if let Ok(mut needles) = self.needles.write() {
            for f in forms {
                if f.len() >= MIN_SECRET_LEN && !needles.contains(&f) {
                    needles.push(f);
                }
            }
            // Longest first, so a form that contains another is masked whole.
            needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        }
    }

    /// Adds the password of a connection URL, if it has one.
    pub fn add_url(&self, url: &str) {
        for pw in crate::dburl::passwords(url) {
            self.add(&pw);
            if let Some(decoded) = percent::decode_strict(&pw) {
                self.add(&decoded);
            }
        }
    }

    /// The text with every known secret, and every URL password, masked.
    pub fn redact(&self, text: &str) -> String {
        match self.needles.read() {
            Ok(needles) => masked(text, &needles).unwrap_or_else(|| text.to_owned()),
            Err(_) => crate::dburl::redact_in_text(text),
        }
    }

    /// Redacts every string inside a JSON value, object keys included; a number that holds a
    /// secret (a secret PIN, port or account number) becomes the masked string.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        let mut out = value.clone();
        self.redact_json_mut(&mut out);
        out
    }

    /// [`redact_json`](Self::redact_json) in place: only what holds a secret is rewritten.
    pub fn redact_json_mut(&self, value: &mut serde_json::Value) {
        match self.needles.read() {
            Ok(needles) => redact_value(value, &needles),
            Err(_) => redact_value(value, &[]),
        }
    }
}

/// The text with every secret in `needles` and every URL password masked, or `None` when
/// there is nothing to mask (most text: no `://`, no `=`, no secret).
fn masked(text: &str, needles: &[String]) -> Option<String> {
    let url_like = text.contains("://") || text.contains('=');
    if !url_like && !needles.iter().any(|n| text.contains(n.as_str())) {
        return None;
    }
    let mut out = crate::dburl::redact_in_text(text);
    for n in needles {
        if out.contains(n.as_str()) {
            out = out.replace(n.as_str(), MASK);
        }
    }
    (out != text).then_some(out)
}

/// [`Redactor::redact_json_mut`] with the secrets read once.
fn redact_value(value: &mut serde_json::Value, needles: &[String]) {
    use serde_json::Value as J;
    match value {
        J::String(s) => {
            if let Some(m) = masked(s, needles) {
                *s = m;
            }
        }
        J::Array(a) => a.iter_mut().for_each(|v| redact_value(v, needles)),
        J::Object(m) => {
            if m.keys().any(|k| masked(k, needles).is_some()) {
                *m = std::mem::take(m)
                    .into_iter()
                    .map(|(k, v)| (masked(&k, needles).unwrap_or(k), v))
                    .collect();
            }
            m.values_mut().for_each(|v| redact_value(v, needles));
        }
        // A number's text has no URL in it: only a secret's value can be there.
        J::Number(n) if !needles.is_empty() => {
            if let Some(m) = masked(&n.to_string(), needles) {
                *value = J::String(m);
            }
        }
        _ => {}
    }
}

/// The JSON string body of `s` with every character outside printable ASCII as `\uXXXX`
/// (UTF-16 units, so characters beyond the BMP as surrogate pairs), in lower or upper case hex.
fn ascii_json(s: &str, upper: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&if upper {
                        format!("\\u{u:04X}")
                    } else {
                        format!("\\u{u:04x}")
                    });
                }
            }
        }
    }
    out
}

/// Percent-encoded text with its `%XX` escapes in lower case hex, as some encoders write them.
fn lower_hex_escapes(pct: &str) -> String {
    let mut out = String::with_capacity(pct.len());
    let mut chars = pct.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// `application/x-www-form-urlencoded`: spaces as `+`.
fn percent_encode_form(s: &str) -> String {
    percent::encode(s).replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::Redactor;
    use serde_json::json;

    #[test]
    fn json_is_redacted_in_strings_keys_and_numbers() {
        let r = Redactor::default();
        r.add("hunter22");
        r.add("90210");
        let v = json!({
            "url": "postgres://app:pw12@db/x",
            "nested": [{"note": "the key is hunter22"}, 90210, 7, true, null],
            "hunter22": "as a key",
            "plain": "nothing here",
            "dsn": "host=db password=s3cret",
        });
        let want = json!({
            "url": "postgres://app:***@db/x",
            "nested": [{"note": "the key is ***"}, "***", 7, true, null],
            "***": "as a key",
            "plain": "nothing here",
            "dsn": "host=db password=***",
        });
        assert_eq!(r.redact_json(&v), want);
        let mut in_place = v.clone();
        r.redact_json_mut(&mut in_place);
        assert_eq!(in_place, want);
        // Without secrets, only URL passwords and keywords are masked; numbers stay numbers.
        let none = Redactor::default();
        let v = json!({"n": 90210, "s": "hunter22", "u": "https://u:p@h/"});
        assert_eq!(
            none.redact_json(&v),
            json!({"n": 90210, "s": "hunter22", "u": "https://u:***@h/"})
        );
    }
}
