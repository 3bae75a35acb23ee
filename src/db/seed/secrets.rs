//! Secret columns: the `secrets:` spec of a table entry, the values read from the environment
//! (refused when missing or short, never shown), and argon2id hashing and verification.

use super::SeedError;
use super::error::failed;
use super::model::{SecretSpec, SeedSet};
use super::parse::{Checker, article, is_env_name, list};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::yaml::{Node, Value};
use std::collections::HashMap;

/// Secrets shorter than this many characters are refused.
pub const MIN_SECRET_LEN: usize = 16;

const SECRET_KEYS: &[&str] = &["env", "hash", "update"];

impl Checker<'_> {
    /// The entry's `secrets`: column to spec.
    pub(super) fn secrets(&mut self, entry: &Node) -> Vec<SecretSpec> {
        let Some(map) = self.column_map(
            entry,
            "secrets",
            "maps columns to variables",
            "write `secrets: { password: { env: ADMIN_DEFAULT_PASSWORD, hash: argon2id } }`",
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map {
            let Some(col) = self.column_name(k, "write `secrets: { password: { env: VAR } }`")
            else {
                continue;
            };
            let Some(spec) = v.as_map() else {
                self.err(
                    "seed-type",
                    v,
                    format!("`secrets.{col}` is a mapping, not {}", article(v)),
                    format!("write `{col}: {{ env: VARIABLE, hash: argon2id }}`"),
                );
                continue;
            };
            // Kept even when `env` is invalid, so rows that give the column are still caught.
            out.push(self.secret(col, v, spec));
        }
        out
    }

    /// One column's secret spec: `env`, `hash` (only argon2id) and `update`.
    fn secret(&mut self, col: &str, v: &Node, spec: &[(Node, Node)]) -> SecretSpec {
        for (sk, _) in spec {
            let name = sk.as_str().unwrap_or("");
            if !SECRET_KEYS.contains(&name) {
                let hint = match did_you_mean(name, SECRET_KEYS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("a secret has {}", list(SECRET_KEYS)),
                };
                self.diags.push(
                    Diagnostic::error("unknown-key", format!("unknown key `{name}`"))
                        .at(self.source, sk.pos)
                        .with_width(name.chars().count())
                        .with_hint(hint),
                );
            }
        }
        let env = match v.get("env") {
            Some(e) => match e.as_str() {
                Some(s) if is_env_name(s) => Some(s.to_owned()),
                _ => {
                    self.err(
                            "seed-type",
                            e,
                            "`env` is the name of an environment variable".to_owned(),
                            "write the variable's name, e.g. `env: ADMIN_DEFAULT_PASSWORD`; the value never goes in the file",
                        );
                    None
                }
            },
            None => {
                self.err(
                        "seed-missing-key",
                        v,
                        format!("`secrets.{col}` has no `env`"),
                        "name the environment variable that holds the value, e.g. `env: ADMIN_DEFAULT_PASSWORD`",
                    );
                None
            }
        };
        if let Some(h) = v.get("hash")
            && h.as_str() != Some("argon2id")
        {
            self.err(
                    "seed-type",
                    h,
                    "secrets are stored as `argon2id` hashes".to_owned(),
                    "write `hash: argon2id` or leave `hash` out; secrets are never stored in plain text",
                );
        }
        let update = match v.get("update") {
            Some(u) => match u.value {
                Value::Bool(b) => b,
                _ => {
                    self.err(
                        "seed-type",
                        u,
                        format!("`update` is `true` or `false`, not {}", article(u)),
                        "`update: true` replaces a stored hash that does not match the variable",
                    );
                    false
                }
            },
            None => false,
        };
        SecretSpec {
            column: col.to_owned(),
            env: env.unwrap_or_default(),
            update,
        }
    }
}

/// Secret values by environment variable name. Not `Debug`: it holds the plain values.
pub struct Secrets {
    values: HashMap<String, String>,
}

impl Secrets {
    /// The variables the set needs, read through `lookup`. Refuses a missing, empty or short
    /// value with a message naming the variable and never the value. `register` sees each
    /// value before anything else could print it (the run's redactor).
    pub fn resolve(
        set: &SeedSet,
        lookup: impl Fn(&str) -> Option<String>,
        register: impl Fn(&str),
    ) -> Result<Secrets, SeedError> {
        let mut values = HashMap::new();
        let mut problems = Vec::new();
        for t in &set.tables {
            for s in &t.secrets {
                if values.contains_key(&s.env) || problems.iter().any(|(e, _)| e == &s.env) {
                    continue;
                }
                let needed_for = format!("`{}.{}`", t.table, s.column);
                match lookup(&s.env) {
                    Some(v) if !v.is_empty() => {
                        register(&v);
                        if v.chars().count() < MIN_SECRET_LEN {
                            problems.push((
                                s.env.clone(),
                                format!(
                                    "`{}` is shorter than {MIN_SECRET_LEN} characters; seed set `{}` stores it as {needed_for}",
                                    s.env, set.name
                                ),
                            ));
                        } else {
                            values.insert(s.env.clone(), v);
                        }
                    }
                    _ => problems.push((
                        s.env.clone(),
                        format!(
                            "`{}` is not set; seed set `{}` needs it for {needed_for}",
                            s.env, set.name
                        ),
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(Secrets { values })
        } else {
            let msgs: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
            Err(failed(format!(
                "{} (hint: export a value of at least {MIN_SECRET_LEN} characters before the run; it is stored only as an argon2id hash)",
                msgs.join("; ")
            )))
        }
    }

    pub(super) fn get(&self, env: &str) -> Result<&str, SeedError> {
        self.values
            .get(env)
            .map(String::as_str)
            .ok_or_else(|| failed(format!("`{env}` was not resolved")))
    }
}

/// An argon2id PHC string of `secret` with a fresh salt.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2id hashing failed: {e}"))
}

/// Whether `stored` is a PHC hash that `secret` verifies against.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(secret.as_bytes(), &h)
            .is_ok()
    })
}

/// Hashing takes tens of milliseconds by design; it runs off the executor's only thread.
pub(super) async fn hash_blocking(secret: &str) -> Result<String, SeedError> {
    let s = secret.to_owned();
    tokio::task::spawn_blocking(move || hash_secret(&s))
        .await
        .map_err(|e| failed(format!("argon2id hashing did not finish: {e}")))?
        .map_err(failed)
}

/// Verification costs what hashing does; it runs off the executor's thread too.
pub(super) async fn verify_blocking(secret: &str, stored: &str) -> bool {
    let (s, h) = (secret.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || verify_secret(&s, &h))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::parse::tests::parse_text;
    use super::{Secrets, hash_secret, verify_secret};

    #[test]
    fn secrets_are_refused_when_missing_or_short_without_their_value() {
        let set = parse_text(
            "- table: U\n  key: [e]\n  secrets: { p: { env: PW } }\n  rows: [{ e: a }]\n",
        )
        .unwrap();
        let err = Secrets::resolve(&set, |_| None, |_| {})
            .err()
            .unwrap()
            .render();
        assert!(err.contains("`PW` is not set"), "{err}");
        let short = "tooshort-9";
        let seen = std::cell::RefCell::new(Vec::new());
        let err = Secrets::resolve(
            &set,
            |_| Some(short.to_owned()),
            |v| seen.borrow_mut().push(v.to_owned()),
        )
        .err()
        .unwrap()
        .render();
        assert!(err.contains("shorter than 16 characters"), "{err}");
        assert!(!err.contains(short), "{err}");
        assert_eq!(*seen.borrow(), vec![short.to_owned()]);
        assert!(Secrets::resolve(&set, |_| Some("x".repeat(16)), |_| {}).is_ok());
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_secret("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_secret("correct horse battery", &h));
        assert!(!verify_secret("wrong horse battery!", &h));
        assert!(!verify_secret("correct horse battery", "plain text"));
    }
}
