//! The one reader of connection URLs, on the `url` crate: where a URL's password is (userinfo,
//! or a `password` / `sslpassword` query parameter), the URL with it masked, and the parts the
//! tool names a database by. Every place that reads or masks a URL comes here.

use crate::fmt::MASK;

/// Query parameters libpq reads a password from.
const PASSWORD_PARAMS: [&str; 2] = ["password", "sslpassword"];

fn is_password_param(key: &str) -> bool {
    PASSWORD_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p))
}

/// A URL with an authority (`scheme://...`); `None` for anything else.
fn parse(text: &str) -> Option<url::Url> {
    let url = url::Url::parse(text).ok()?;
    (text.contains("://") && !url.cannot_be_a_base()).then_some(url)
}

/// Every password a URL carries, as written (percent-encoded where it was): the userinfo
/// password and each password query parameter. Empty ones are left out.
pub fn passwords(text: &str) -> Vec<String> {
    let Some(url) = parse(text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let Some(pw) = url.password() {
        found.push(pw.to_owned());
    }
    for (key, value) in raw_query_pairs(&url) {
        if is_password_param(key) {
            found.push(value.to_owned());
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// `key=value` pairs of the query exactly as written (no decoding, so masking keeps the rest
/// of the URL byte for byte).
fn raw_query_pairs(url: &url::Url) -> Vec<(&str, &str)> {
    url.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// The URL with its password masked; a URL that cannot be read is masked whole, and a
/// `sqlite:` path is returned as it is.
pub fn redact(text: &str) -> String {
    if let Some(path) = text.strip_prefix("sqlite:") {
        return format!("sqlite:{path}");
    }
    let Some(mut url) = parse(text) else {
        return MASK.to_owned();
    };
    if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
        return MASK.to_owned();
    }
    if let Some(query) = url.query() {
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_password_param(k) => format!("{k}={MASK}"),
                _ => kv.to_owned(),
            })
            .collect();
        url.set_query(Some(&masked.join("&")));
    }
    url.to_string()
}

/// Masks every connection URL's password inside free text (an error message, a quoted line,
/// JSON): each `scheme://...` run is read by [`redact`]; libpq `password=` keywords outside a
/// URL are masked too.
pub fn redact_in_text(text: &str) -> String {
    static RES: std::sync::OnceLock<Option<(regex::Regex, regex::Regex)>> =
        std::sync::OnceLock::new();
    let Some((candidate, keyword)) = RES
        .get_or_init(|| {
            Some((
                // Quotes and backslashes end a URL here: the text may be JSON, and eating an
                // escape would break it.
                regex::Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s"'\\]+"#).ok()?,
                regex::Regex::new(r#"(?i)\b(password|sslpassword)=([^&\s"'\\]+)"#).ok()?,
            ))
        })
        .as_ref()
    else {
        return text.to_owned();
    };
    let urls = candidate.replace_all(text, |c: &regex::Captures<'_>| {
        let found = &c[0];
        if passwords(found).is_empty() && parse(found).is_some() {
            found.to_owned()
        } else {
            redact(found)
        }
    });
    keyword.replace_all(&urls, "${1}=***").into_owned()
}

/// A stable name of the database a URL points at, without user, password or parameters:
/// `postgres://host:port/db`. Two users of one database name the same target.
pub fn key(text: &str) -> String {
    let Some(url) = parse(text) else {
        return MASK.to_owned();
    };
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}{}", url.scheme(), url.path())
}

/// The database name of a URL as written (`postgres` when it names none).
pub fn database(text: &str) -> String {
    parse(text)
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "postgres".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_userinfo_and_query_passwords() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/prod"),
            "postgres://app:***@db:5432/prod"
        );
        assert_eq!(redact("postgres://app@db/prod"), "postgres://app@db/prod");
        assert_eq!(
            redact("postgres://db/prod?user=app&sslpassword=k3y&password=s3cret&sslmode=require"),
            "postgres://db/prod?user=app&sslpassword=***&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://a:p@ss@db/x"), "postgres://a:***@db/x");
        assert_eq!(redact("host=db password=s3cret"), "***");
        assert_eq!(redact("sqlite:.runbook/dev.db"), "sqlite:.runbook/dev.db");
    }

    #[test]
    fn finds_passwords() {
        assert_eq!(passwords("postgres://a:p%40ss@db/x"), ["p%40ss"]);
        assert_eq!(
            passwords("postgres://db/x?sslpassword=k3y&password=pw"),
            ["k3y", "pw"]
        );
        assert!(passwords("postgres://db/x").is_empty());
    }

    #[test]
    fn masks_urls_in_text() {
        assert_eq!(
            redact_in_text(r#"{"url":"postgres://u:pw12@h/db","x":1} and password=abc&y"#),
            r#"{"url":"postgres://u:***@h/db","x":1} and password=***&y"#
        );
        assert_eq!(
            redact_in_text("see https://example.com/docs"),
            "see https://example.com/docs"
        );
    }

    #[test]
    fn names_the_database() {
        assert_eq!(
            key("postgres://u:pw@h:5432/db?sslmode=require"),
            "postgres://h:5432/db"
        );
        assert_eq!(key("postgres:///db?host=/sock"), "postgres:///db");
        assert_eq!(database("postgres://u@h/app?x=1"), "app");
        assert_eq!(database("postgres://u@h"), "postgres");
    }
}
