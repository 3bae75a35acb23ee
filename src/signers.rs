//! The approvers of a project and the SSH public keys that prove who they are, in the
//! `allowed_signers` format of ssh and git (`principal[,principal2] [options] keytype base64
//! [comment]`): read from the file `approvers.allowed_signers` names and from the config's
//! inline `approvers.keys`. Validation reports each bad line with its position; the executor
//! finds the approver a key is listed for by its fingerprint.

use crate::config::ConfigDef;
use ssh_key::{HashAlg, PublicKey};
use std::path::{Path, PathBuf};

/// The SSHSIG namespace of approval signatures (`ssh-keygen -Y sign -n runbook-approval`): a
/// signature made for git, or for a login, never passes for an approval.
pub const NAMESPACE: &str = "runbook-approval";

/// The key types runbook verifies (others are listed with a warning and never count).
const SUPPORTED: [&str; 2] = ["ssh-ed25519", "ssh-rsa"];

/// One listed key and the names (principals) it proves.
#[derive(Debug, Clone)]
pub struct Signer {
    pub principals: Vec<String>,
    pub key: PublicKey,
    /// `SHA256:...`, as `ssh-keygen -l` and `ssh-add -l` print it.
    pub fingerprint: String,
}

impl Signer {
    /// The name an approval by this key is recorded under: its first principal.
    pub fn principal(&self) -> &str {
        self.principals.first().map_or("", String::as_str)
    }
}

/// A bad or unusable entry, at a 1-based line and column of its file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: String,
    /// A line that is well-formed but cannot be used (an unsupported key type or option): the
    /// key is left out, the config still loads.
    pub warning: bool,
}

/// Every listed approver key of a project.
#[derive(Debug, Clone, Default)]
pub struct Signers {
    pub list: Vec<Signer>,
}

impl Signers {
    /// The approvers the config lists (file and inline keys), for the executor. Problems that
    /// validation reported as errors cannot occur here (the config validated); a file that went
    /// missing since is an error.
    pub fn load(root: &Path, config: Option<&ConfigDef>) -> Result<Signers, String> {
        let Some(approvers) = config.and_then(|c| c.approvers.as_ref()) else {
            return Ok(Signers::default());
        };
        let mut list = Vec::new();
        if let Some(file) = &approvers.allowed_signers {
            let path = signers_path(root, file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the approvers' keys {}: {e}", path.display()))?;
            list.extend(parse(&text).0);
        }
        for k in &approvers.keys {
            if let Ok(s) = parse_key(&k.name, &k.key) {
                list.push(s);
            }
        }
        Ok(Signers { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The approver a key is listed for, by its SHA-256 fingerprint.
    pub fn by_fingerprint(&self, fingerprint: &str) -> Option<&Signer> {
        self.list.iter().find(|s| s.fingerprint == fingerprint)
    }
}

/// Where the `allowed_signers` file named in the config is: relative to the project root.
pub fn signers_path(root: &Path, file: &str) -> PathBuf {
    root.join(file)
}

/// The fingerprint of a key as ssh prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Reads an `allowed_signers` text: the keys it lists and the problems of its lines. Blank
/// lines and `#` comments are skipped.
pub fn parse(text: &str) -> (Vec<Signer>, Vec<Problem>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        match parse_line(body) {
            Ok(s) => found.push(s),
            Err((offset, message, hint, warning)) => problems.push(Problem {
                line: i + 1,
                col: column(line, indent + offset),
                message,
                hint,
                warning,
            }),
        }
    }
    (found, problems)
}

/// An inline approver: a name and a key line (`keytype base64 [comment]`).
pub fn parse_key(name: &str, key: &str) -> Result<Signer, Problem> {
    let problem = |message: String, hint: &str, warning| Problem {
        line: 0,
        col: 0,
        message,
        hint: hint.to_owned(),
        warning,
    };
    if !good_principal(name) {
        return Err(problem(
            format!("`{name}` is not a usable approver name"),
            "a name without spaces, commas, quotes or wildcards, like `alice` or `alice@example.com`",
            false,
        ));
    }
    let key = key.trim();
    let kind = key.split_whitespace().next().unwrap_or_default();
    if !SUPPORTED.contains(&kind) {
        return Err(unsupported(kind).map_or_else(
            || problem(format!("`{kind}` is not an SSH key type"), KEY_HINT, false),
            |(m, h)| problem(m, &h, true),
        ));
    }
    let key = PublicKey::from_openssh(key).map_err(|e| {
        problem(
            format!("the key of `{name}` cannot be read: {e}"),
            KEY_HINT,
            false,
        )
    })?;
    Ok(Signer {
        principals: vec![name.to_owned()],
        fingerprint: fingerprint(&key),
        key,
    })
}

const KEY_HINT: &str = "paste one line of `ssh-add -L`, of a `.pub` file or of https://github.com/USER.keys, like `ssh-ed25519 AAAAC3Nza... alice@laptop`";

/// Why a key type that is one cannot be used, or `None` when it is no key type at all.
fn unsupported(kind: &str) -> Option<(String, String)> {
    let known = kind.starts_with("ecdsa-sha2-")
        || kind.starts_with("sk-")
        || kind.contains("-cert-v01@openssh.com")
        || kind == "ssh-dss";
    known.then(|| {
        (
            format!("runbook cannot verify `{kind}` keys; this key is left out and its approvals never count"),
            "list an Ed25519 key (`ssh-keygen -t ed25519`) or an RSA key for this approver".to_owned(),
        )
    })
}

/// One entry. `Err` carries the byte offset in the line of what is wrong, the message, the
/// hint, and whether it is only a warning.
fn parse_line(body: &str) -> Result<Signer, (usize, String, String, bool)> {
    let fields = split_fields(body);
    let Some(&(_, principals)) = fields.first() else {
        return Err((0, "an empty entry".to_owned(), LINE_HINT.to_owned(), false));
    };
    let principals: Vec<String> = principals.split(',').map(str::to_owned).collect();
    if let Some(bad) = principals.iter().find(|p| !good_principal(p)) {
        return Err((
            0,
            format!("`{bad}` is not a usable approver name"),
            "name each approver plainly (`alice` or `alice@example.com`, several with commas); patterns are not names".to_owned(),
            false,
        ));
    }
    let mut at = 1;
    let mut options = None;
    if let Some(&(offset, text)) = fields.get(1)
        && !is_key_type(text)
    {
        options = Some((offset, text));
        at = 2;
    }
    let Some(&(kind_at, kind)) = fields.get(at) else {
        return Err((
            body.len(),
            "the entry has no key".to_owned(),
            LINE_HINT.to_owned(),
            false,
        ));
    };
    if !SUPPORTED.contains(&kind) {
        return Err(match unsupported(kind) {
            Some((m, h)) => (kind_at, m, h, true),
            None => (
                kind_at,
                format!("`{kind}` is not an SSH key type"),
                LINE_HINT.to_owned(),
                false,
            ),
        });
    }
    if let Some((offset, text)) = options {
        check_options(text).map_err(|(m, h, w)| (offset, m, h, w))?;
    }
    let rest = &body[kind_at..];
    let key = PublicKey::from_openssh(rest).map_err(|e| {
        (
            kind_at,
            format!("the key cannot be read: {e}"),
            KEY_HINT.to_owned(),
            false,
        )
    })?;
    Ok(Signer {
        principals,
        fingerprint: fingerprint(&key),
        key,
    })
}

const LINE_HINT: &str = "each line is `NAME KEYTYPE BASE64 [COMMENT]`, like `alice ssh-ed25519 AAAAC3Nza... alice@laptop` (keys from `ssh-add -L` or https://github.com/USER.keys)";

/// Options of an entry: `namespaces` must include runbook's; the others ssh knows limit a key
/// in ways runbook does not check, so such a key is left out rather than trusted more widely.
fn check_options(text: &str) -> Result<(), (String, String, bool)> {
    for opt in split_options(text) {
        let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                if !value.split(',').any(|n| n == NAMESPACE || n == "*") {
                    return Err((
                        format!(
                            "this key is listed for the namespaces `{value}` only, not `{NAMESPACE}`; its approvals never count"
                        ),
                        format!(
                            "add `{NAMESPACE}` to its `namespaces=\"...\"`, or remove the option"
                        ),
                        true,
                    ));
                }
            }
            "cert-authority" | "valid-after" | "valid-before" => {
                return Err((
                    format!("runbook does not support the option `{name}`; this key is left out"),
                    "list the approver's own key without the option".to_owned(),
                    true,
                ));
            }
            _ => {
                return Err((
                    format!("`{name}` is not an option of allowed_signers"),
                    "the options are `namespaces=\"...\"`, `cert-authority`, `valid-after=`, `valid-before=`; or the key type is misspelt".to_owned(),
                    false,
                ));
            }
        }
    }
    Ok(())
}

fn is_key_type(word: &str) -> bool {
    SUPPORTED.contains(&word) || unsupported(word).is_some()
}

/// A principal that names one person: no wildcard, negation, quote or space.
fn good_principal(p: &str) -> bool {
    !p.is_empty()
        && !p
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '*' | '?' | '!' | '"' | ','))
}

/// The whitespace-separated fields of an entry with their byte offsets; double quotes keep a
/// field together (options hold quoted lists).
fn split_fields(body: &str) -> Vec<(usize, &str)> {
    let mut fields = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in body.char_indices() {
        match (start, c) {
            (_, '"') => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            (Some(s), c) if c.is_whitespace() && !quoted => {
                fields.push((s, &body[s..i]));
                start = None;
            }
            (None, c) if !c.is_whitespace() => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &body[s..]));
    }
    fields
}

/// Comma-separated options, commas inside double quotes kept.
fn split_options(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The 1-based column (in characters) of a byte offset in a line.
fn column(line: &str, byte: usize) -> usize {
    line.get(..byte.min(line.len()))
        .map_or(1, |s| s.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBt7R3oMr+BFrHuZF3JCMSpU7NZfEUN7ek2rXXAvI6Kq alice@laptop";

    #[test]
    fn reads_entries_and_points_at_bad_ones() {
        let text = format!(
            "# approvers\n\nalice,Alice {ED}\n  bob ssh-ed25519 notbase64\ncarol namespaces=\"git\" {ED}\ndave ecdsa-sha2-nistp256 AAAA\n*ops {ED}\neve foo=1 {ED}\nfrank\n"
        );
        let (found, problems) = parse(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].principals, ["alice", "Alice"]);
        assert!(found[0].fingerprint.starts_with("SHA256:"));
        let at: Vec<(usize, usize, bool)> = problems
            .iter()
            .map(|p| (p.line, p.col, p.warning))
            .collect();
        assert_eq!(
            at,
            [
                (4, 7, false),
                (5, 7, true),
                (6, 6, true),
                (7, 1, false),
                (8, 5, false),
                (9, 6, false)
            ],
            "{problems:#?}"
        );
    }

    #[test]
    fn inline_keys_need_a_plain_name_and_a_key() {
        assert_eq!(parse_key("alice", ED).unwrap().principal(), "alice");
        assert!(!parse_key("a b", ED).unwrap_err().warning);
        assert!(!parse_key("alice", "ssh-ed25519 AAAA").unwrap_err().warning);
        assert!(
            parse_key("alice", "sk-ssh-ed25519@openssh.com AAAA")
                .unwrap_err()
                .warning
        );
    }
}
