//! The one reader of connection URLs: where a URL's password is (userinfo, or a `password` /
//! `sslpassword` query parameter), the URL with it masked, and the parts the tool names a
//! database by. Every place that reads or masks a URL comes here. The `url` crate reads what
//! it can; what it cannot (libpq's multi-host lists, an unencoded `#` in a password) is split
//! as written, and masking always keeps the text as written apart from the passwords.

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

/// The parts of a `scheme://...` text as written, for what the `url` crate cannot read
/// (libpq's multi-host lists `h1:5432,h2:5432`, an unencoded `#` in a password): the userinfo
/// (before the last `@` of the authority) and the query.
struct Written<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hosts: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

fn written(text: &str) -> Option<Written<'_>> {
    let (scheme, rest) = text.split_once("://")?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Some(Written {
        scheme,
        userinfo,
        hosts,
        path,
        query,
    })
}

/// Every password a URL carries, as written (percent-encoded where it was): the userinfo
/// password and each password query parameter. Empty ones are left out.
pub fn passwords(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    match parse(text) {
        Some(url) => {
            found.extend(url.password().map(str::to_owned));
            found.extend(password_params(url.query()));
        }
        None => {
            let Some(w) = written(text) else {
                return Vec::new();
            };
            found.extend(
                w.userinfo
                    .and_then(|u| u.split_once(':'))
                    .map(|(_, pw)| pw.to_owned()),
            );
            found.extend(password_params(w.query));
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// The values of password parameters in a query, as written.
fn password_params(query: Option<&str>) -> Vec<String> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| is_password_param(k))
        .map(|(_, v)| v.to_owned())
        .collect()
}

/// The URL as written with its passwords masked; text that is no `scheme://` URL is masked
/// whole, and a `sqlite:` path is returned as it is.
pub fn redact(text: &str) -> String {
    if let Some(path) = text.strip_prefix("sqlite:") {
        return format!("sqlite:{path}");
    }
    let Some(w) = written(text) else {
        return MASK.to_owned();
    };
    let userinfo = match w.userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@"),
            None => format!("{u}@"),
        },
        None => String::new(),
    };
    let query = match w.query {
        Some(q) => {
            let parts: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if is_password_param(k) => format!("{k}={MASK}"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("?{}", parts.join("&"))
        }
        None => String::new(),
    };
    format!("{}://{userinfo}{}{}{query}", w.scheme, w.hosts, w.path)
}

/// Masks every connection URL's password inside free text (an error message, a quoted line,
/// JSON): each `scheme://...` run is masked by [`redact`]; libpq `password=` keywords outside a
/// URL are masked too. Scanned by hand rather than by a regex: compiling the two patterns cost
/// more than half a millisecond in every process that printed a URL (a unit test checks that
/// both say the same).
pub fn redact_in_text(text: &str) -> String {
    // Both need one of these: most text (every line of a report) has neither.
    if !text.contains("://") && !text.contains('=') {
        return text.to_owned();
    }
    mask_keywords(&mask_urls(text))
}

/// Where a URL in text ends: whitespace, a quote, a backquote or a backslash (the text may be
/// JSON or a message that quotes the URL, and eating an escape would break it).
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '\\')
}

/// Each `scheme://rest` in `text` masked by [`redact`]: the scheme a letter then letters,
/// digits, `+`, `.` or `-`, the rest at least one character up to [`ends_url`]; found left to
/// right, each from where the last one ended.
fn mask_urls(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_scheme = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find("://").map(|i| i + from) {
        let mut run = at;
        while run > copied && is_scheme(bytes[run - 1]) {
            run -= 1;
        }
        let start = (run..at).find(|&i| bytes[i].is_ascii_alphabetic());
        let body = at + 3;
        // Where the rest ends, looked for only after a scheme: each character is then looked
        // at once, as the regex did.
        let end = start.map(|_| text[body..].find(ends_url).map_or(text.len(), |i| body + i));
        match (start, end) {
            (Some(start), Some(end)) if end > body => {
                out.push_str(&text[copied..start]);
                out.push_str(&redact(&text[start..end]));
                copied = end;
                from = end;
            }
            _ => from = at + 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Each `password=value` or `sslpassword=value` keyword (any case, not inside a longer word)
/// with its value masked; the value runs to `&` or [`ends_url`]. Cases and words as the regex
/// this replaced had them: Unicode's simple case folding (`ſ` is an `s`) and its `\w`.
fn mask_keywords(text: &str) -> String {
    let is_word = |c: char| regex_syntax::try_is_word_character(c).unwrap_or(false);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(eq) = text[from..].find('=').map(|i| i + from) {
        // The keyword that starts furthest left is the one a scan finds first.
        let keyword = PASSWORD_PARAMS
            .iter()
            .filter_map(|p| ends_with_folded(&text[copied..eq], p).map(|s| copied + s))
            .filter(|&start| !text[..start].chars().next_back().is_some_and(is_word))
            .min();
        let value = eq + 1;
        let end = keyword.map(|_| {
            text[value..]
                .find(|c| c == '&' || ends_url(c))
                .map_or(text.len(), |i| value + i)
        });
        match end {
            Some(end) if end > value => {
                out.push_str(&text[copied..value]);
                out.push_str(MASK);
                copied = end;
                from = end;
            }
            _ => from = value,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `word` (ASCII letters) starts when `text` ends with it in any case, as Unicode's simple
/// case folding compares them: only `ſ` (long s) folds onto one of these letters besides their
/// ASCII cases (the Kelvin sign onto `k`, which they lack).
fn ends_with_folded(text: &str, word: &str) -> Option<usize> {
    let mut chars = text.char_indices().rev();
    let mut start = text.len();
    for w in word.chars().rev() {
        let (i, c) = chars.next()?;
        if !(c.eq_ignore_ascii_case(&w) || (w == 's' && c == '\u{17f}')) {
            return None;
        }
        start = i;
    }
    Some(start)
}

/// A stable name of the database a URL points at, without user, password or parameters:
/// `postgres://host:port/db`. Two users of one database name the same target.
pub fn key(text: &str) -> String {
    // As written, as earlier versions stored it with runs and locks: a normalised form would
    // name a running target differently after an upgrade.
    match written(text) {
        Some(w) => format!("{}://{}{}", w.scheme, w.hosts, w.path),
        None => MASK.to_owned(),
    }
}

/// The database name of a URL as written, undecoded (`postgres` when it names none): what an
/// operator types to confirm.
pub fn database(text: &str) -> String {
    written(text)
        .map(|w| w.path.trim_start_matches('/').to_owned())
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
        // A keyword without a URL; text with neither is left as it is.
        assert_eq!(
            redact_in_text("host=db PASSWORD=s3cret port=5432"),
            "host=db PASSWORD=*** port=5432"
        );
        assert_eq!(redact_in_text("counted 3 tables"), "counted 3 tables");
    }

    /// The regexes the scan replaced, as they were.
    fn by_regex(text: &str) -> String {
        static RES: std::sync::LazyLock<(regex::Regex, regex::Regex)> =
            std::sync::LazyLock::new(|| {
                (
                    regex::Regex::new(r#"[A-Za-z][A-Za-z0-9+.-]*://[^\s"'`\\]+"#).unwrap(),
                    regex::Regex::new(r#"(?i)\b(password|sslpassword)=([^&\s"'`\\]+)"#).unwrap(),
                )
            });
        let (candidate, keyword) = &*RES;
        let urls = candidate.replace_all(text, |c: &regex::Captures<'_>| redact(&c[0]));
        keyword.replace_all(&urls, "${1}=***").into_owned()
    }

    #[test]
    fn the_scan_masks_what_the_regexes_masked() {
        let pieces = [
            "postgres",
            "http",
            "s",
            "1",
            "a",
            "+",
            ".",
            "-",
            "://",
            ":",
            "/",
            "@",
            "pw",
            "u",
            "password",
            "PassWord",
            "sslpassword",
            "xpassword",
            "_",
            "=",
            "&",
            " ",
            "\u{a0}",
            "\u{2003}",
            "\u{17f}",
            "\u{663}",
            "\u{301}",
            "\u{203f}",
            "\n",
            "\"",
            "'",
            "`",
            "\\",
            "é",
            "日",
            "?",
            "#",
            "%40",
            ",",
        ];
        // A fixed xorshift: the same strings on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = 1 + next() % 14;
            let text: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            assert_eq!(redact_in_text(&text), by_regex(&text), "{text:?}");
        }
    }

    #[test]
    fn masks_as_written() {
        for url in [
            "postgres://db.internal:05432/app",
            "postgres://[0:0::1]/app",
            "postgres://db/données",
            "postgres://db/app?options=-c search_path=app",
        ] {
            assert_eq!(
                redact(url),
                url,
                "a URL without a password is left as written"
            );
        }
        assert_eq!(
            redact("postgres://u:pw@h1:5432,h2:5432/db"),
            "postgres://u:***@h1:5432,h2:5432/db"
        );
        assert_eq!(passwords("postgres://u:p#w@h1:5432,h2:5432/db"), ["p#w"]);
        assert_eq!(
            redact_in_text("cannot reach `postgres://u:pw12@h/db`: refused"),
            "cannot reach `postgres://u:***@h/db`: refused"
        );
        assert_eq!(
            key("postgres://u:pw@h1:5432,h2:5432/db"),
            "postgres://h1:5432,h2:5432/db"
        );
        assert_eq!(database("postgres://h/données"), "données");
        assert_eq!(database("postgres://h/my%20db?x=1"), "my%20db");
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
