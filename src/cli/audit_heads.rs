//! What the audit commands trust besides the chains themselves: where each run's recorded head
//! comes from (the state store, or why it cannot say: missing, not a file, unreadable,
//! unreachable, or it does not know the run), and how signatures are checked (the project's
//! committed public key, `--key`, or why they cannot be).

use crate::audit::{Head, Recorded, SigPolicy};
use crate::exec;
use crate::project::Project;
use crate::state::{StateSpec, StateStore};

/// The state store as the audit commands see it: open, or lost with the reason.
pub(super) enum Heads {
    Store(StateStore),
    Lost(String),
}

impl Heads {
    /// Opens the state store for reading heads, never creating one: a missing SQLite file, a
    /// folder or damaged file in its place, or an unreachable PostgreSQL server is a reason.
    pub async fn open(project: &Project, flag: Option<&str>) -> Heads {
        let redact = |s: String| crate::redact::global().redact(&s);
        let spec = match exec::state_spec(&project.root, project.config_def(), flag) {
            Ok(spec) => spec,
            Err(e) => return Heads::Lost(format!("the state store cannot be found: {e}")),
        };
        let name = match &spec {
            StateSpec::Sqlite(path) => {
                let shown = path.strip_prefix(&project.root).unwrap_or(path).display();
                match std::fs::metadata(path) {
                    Ok(m) if m.is_file() => {}
                    Ok(_) => {
                        return Heads::Lost(format!("the state store `{shown}` is not a file"));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Heads::Lost(format!("the state store `{shown}` is missing"));
                    }
                    Err(e) => {
                        return Heads::Lost(format!(
                            "the state store `{shown}` cannot be read: {e}"
                        ));
                    }
                }
                format!("the state store `{shown}` cannot be read")
            }
            StateSpec::Postgres(url) => {
                let name = format!(
                    "the PostgreSQL state store `{}` cannot be reached",
                    crate::dburl::redact(url)
                );
                if let Err(e) = StateStore::probe(url).await {
                    return Heads::Lost(redact(format!("{name}: {e}")));
                }
                name
            }
        };
        match StateStore::open(&spec).await {
            Ok(store) => Heads::Store(store),
            Err(e) => Heads::Lost(redact(format!("{name}: {e}"))),
        }
    }

    pub fn store(&self) -> Option<&StateStore> {
        match self {
            Heads::Store(s) => Some(s),
            Heads::Lost(_) => None,
        }
    }

    /// What the store says of one run's head; `chain_only` accepts a store that cannot say.
    pub async fn recorded(&self, run_id: &str, chain_only: bool) -> Recorded {
        let unknown = |why: String| Recorded::Unknown {
            why,
            accepted: chain_only,
        };
        let store = match self {
            Heads::Lost(why) => return unknown(why.clone()),
            Heads::Store(store) => store,
        };
        let read = |e: crate::state::StateError| {
            unknown(
                crate::redact::global().redact(&format!("the state store could not be read: {e}")),
            )
        };
        match store.audit_head(run_id).await {
            Ok(Some(head)) => return Recorded::Head(Some(head)),
            Ok(None) => {}
            Err(e) => return read(e),
        }
        match store.load_run(run_id).await {
            Ok(Some(_)) => Recorded::Head(None::<Head>),
            Ok(None) => match store.list_runs(1).await {
                Ok(runs) if runs.is_empty() => unknown(
                    "the state store does not know this run (it holds no runs at all: was it replaced or cleared?)".to_owned(),
                ),
                Ok(_) => unknown("the state store does not know this run".to_owned()),
                Err(e) => read(e),
            },
            Err(e) => read(e),
        }
    }

    pub async fn close(self) {
        if let Heads::Store(store) = self {
            store.close().await;
        }
    }
}

/// How signatures are checked: with `--key` (hex, or a file holding it), else the project's
/// `audit.public_key`; a project that signs without a key known says so, and `skip` (an
/// explicit flag) accepts that. An unreadable `--key` is an error in plain words.
pub(super) fn sig_policy(
    project: &Project,
    key: Option<&str>,
    skip: bool,
) -> Result<SigPolicy, String> {
    if skip {
        return Ok(SigPolicy::Unchecked {
            why: "--skip-signatures was given".to_owned(),
            accepted: true,
        });
    }
    if let Some(k) = key {
        // A file holding the key, or the key itself.
        let path = std::path::Path::new(k);
        if path.exists() {
            return crate::runkey::read(path)
                .map(SigPolicy::Key)
                .map_err(|e| format!("--key: {e}"));
        }
        return crate::runkey::parse(k).map(SigPolicy::Key).map_err(|_| {
            format!("--key: `{k}` is neither a file nor a public key (64 hex digits)")
        });
    }
    let Some(audit) = project.config_def().and_then(|c| c.audit.as_ref()) else {
        return Ok(SigPolicy::Off);
    };
    if let Some(file) = &audit.public_key {
        // The config was validated with this key, so a failure here is a file changed since.
        return Ok(
            match crate::runkey::read(&crate::runkey::path(&project.root, file)) {
                Ok(key) => SigPolicy::Key(key),
                Err(why) => SigPolicy::Unchecked {
                    why: format!("the project's public key (`audit.public_key`): {why}"),
                    accepted: false,
                },
            },
        );
    }
    if audit.signs() {
        return Ok(SigPolicy::Unchecked {
            why: "the project signs its runs (`audit.signing_key_env`) but names no public key to check them with".to_owned(),
            accepted: false,
        });
    }
    Ok(SigPolicy::Off)
}
