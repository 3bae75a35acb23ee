//! How pg_dump and pg_restore reach a PostgreSQL target: the URL without its password (an argv
//! is visible to every local user through `ps`), libpq's spellings of its parameters, and the
//! password in `PGPASSWORD`.

use crate::percent;
use std::collections::BTreeMap;

/// How pg_dump and pg_restore reach the target: a URL without the password (an argv is
/// visible to every local user through `ps`) and the password for `PGPASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibpqTarget {
    pub url: String,
    pub password: Option<String>,
}

impl LibpqTarget {
    /// Splits the password out of a `postgres://` URL (from its user info or a `password`
    /// query parameter) and turns sqlx's spellings of query parameters into libpq's, dropping
    /// the ones libpq does not know (it refuses unknown parameters).
    pub fn parse(url: &str) -> LibpqTarget {
        let (scheme, rest) = url.split_once("://").unwrap_or(("postgresql", url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let mut password = None;
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, pw)) => {
                    password = Some(percent::decode(pw));
                    format!("{user}@{host}")
                }
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        let mut kept: Vec<String> = Vec::new();
        let mut options: Vec<String> = Vec::new();
        let mut has_app_name = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "password" => password = Some(percent::decode(value)),
                "statement-cache-capacity" => {}
                "ssl-mode" => kept.push(format!("sslmode={value}")),
                "ssl-root-cert" | "ssl-ca" => kept.push(format!("sslrootcert={value}")),
                "ssl-cert" => kept.push(format!("sslcert={value}")),
                "ssl-key" => kept.push(format!("sslkey={value}")),
                "options" => options.push(percent::decode(value)),
                k if k.starts_with("options[") && k.ends_with(']') => {
                    let name = &k["options[".len()..k.len() - 1];
                    options.push(format!(
                        "-c {}={}",
                        percent::decode(name),
                        percent::decode(value)
                    ));
                }
                _ => {
                    has_app_name |= key == "application_name";
                    kept.push(pair.to_owned());
                }
            }
        }
        if !options.is_empty() {
            kept.push(format!(
                "options={}",
                percent::encode_path(&options.join(" "))
            ));
        }
        if !has_app_name {
            kept.push("application_name=runbook".to_owned());
        }
        LibpqTarget {
            url: format!("{scheme}://{authority}{path}?{}", kept.join("&")),
            password: password.filter(|p| !p.is_empty()),
        }
    }

    /// The environment of a client program: the password, and no prompt for one (stdin is
    /// not a terminal, but libpq would open /dev/tty).
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let Some(pw) = &self.password {
            env.insert("PGPASSWORD".to_owned(), pw.clone());
        }
        env
    }
}
