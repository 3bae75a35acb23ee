//! The project: its root folder, its config, and loading playbooks by name or path.
//!
//! Loading is load -> schema -> typed model -> semantic checks, for the config and for each
//! playbook and the playbooks it includes. Reading files is the only IO here.

use crate::config::{CONFIG_FILE, ConfigDef};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::playbook::{Action, IncludeAction, PlaybookDef};
use crate::schema::{self, SchemaKind};
use crate::source::{Pos, Source, display_path};
use crate::validate;
use crate::yaml::{self, Node};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded, validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub def: ConfigDef,
    pub source: Source,
}

/// A loaded, validated playbook with the playbooks it includes.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub def: PlaybookDef,
    pub source: Source,
    pub tree: Node,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// Included playbooks by the id of the `include` step.
    pub includes: BTreeMap<String, Arc<Playbook>>,
}

impl Playbook {
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// sha256 over this file and every included file, so a change anywhere voids resume and
    /// approvals.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.sha256.as_bytes());
        for (id, inc) in &self.includes {
            h.update(id.as_bytes());
            h.update(inc.content_hash().as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub config: Option<Config>,
}

/// Every diagnostic found while loading, errors and warnings alike.
pub type Diagnostics = Vec<Diagnostic>;

impl Project {
    /// Opens the project at `root`, loading `runbook.yaml` when present.
    pub fn open(root: &Path) -> Result<Project, Diagnostics> {
        let root = root.to_path_buf();
        let config = match config_file(&root).map_err(|d| vec![d])? {
            Some(path) => Some(load_config(&path)?),
            None => None,
        };
        Ok(Project { root, config })
    }

    /// Finds the project root: the nearest folder at or above `start` with a `runbook.yaml`
    /// (in any form: one that is not a readable file is reported when the project is opened,
    /// not passed over for a folder higher up) or a `playbooks/` folder, else `start` itself.
    pub fn discover(start: &Path) -> PathBuf {
        let mut dir = Some(start);
        while let Some(d) = dir {
            if d.join(CONFIG_FILE).symlink_metadata().is_ok() || d.join("playbooks").is_dir() {
                return d.to_path_buf();
            }
            dir = d.parent();
        }
        start.to_path_buf()
    }

    pub fn config_def(&self) -> Option<&ConfigDef> {
        self.config.as_ref().map(|c| &c.def)
    }

    fn dir(&self, configured: Option<&String>, default: &str) -> PathBuf {
        self.root.join(configured.map_or(default, String::as_str))
    }

    pub fn playbooks_dir(&self) -> PathBuf {
        self.dir(
            self.config_def().and_then(|c| c.playbooks_dir.as_ref()),
            "playbooks",
        )
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.dir(
            self.config_def().and_then(|c| c.migrations_dir.as_ref()),
            "migrations",
        )
    }

    pub fn seeds_dir(&self) -> PathBuf {
        self.dir(
            self.config_def().and_then(|c| c.seeds_dir.as_ref()),
            "seeds",
        )
    }

    /// sha256 of every file a run may apply: each migration and seed file, keyed by its path
    /// under the project (`migrations/postgres/002_x.sql`, `seeds/production.yaml`). The plan
    /// carries them, so an approval binds to the bytes of what it approved.
    pub fn input_digests(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for dir in [self.migrations_dir(), self.seeds_dir()] {
            let mut files = Vec::new();
            walk_files(&dir, &mut files);
            for f in files {
                let rel = f.strip_prefix(&self.root).unwrap_or(&f);
                // Hidden files and folders (`.DS_Store`, editor swap files) are never applied.
                if f.strip_prefix(&dir)
                    .unwrap_or(&f)
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
                {
                    continue;
                }
                let key = rel.to_string_lossy().into_owned();
                // An unreadable file still counts, as unreadable: a change to it voids too.
                let digest = std::fs::read(&f)
                    .map(|bytes| hex::encode(Sha256::digest(&bytes)))
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                out.insert(key, digest);
            }
        }
        out
    }

    /// sha256 over every migration file (path and contents, line endings normalised), so two
    /// runs can be compared by the migrations they carried (`require_run` gates).
    pub fn migrations_hash(&self) -> String {
        let dir = self.migrations_dir();
        let mut files = Vec::new();
        walk_files(&dir, &mut files);
        files.retain(|p| p.extension().is_some_and(|x| x == "sql"));
        files.sort();
        let mut h = Sha256::new();
        for f in files {
            let rel = f
                .strip_prefix(&dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&text).replace("\r\n", "\n");
            h.update(rel.as_bytes());
            h.update([0]);
            h.update(Sha256::digest(text.as_bytes()));
        }
        hex::encode(h.finalize())
    }

    /// The playbook files under `playbooks/`, sorted.
    pub fn playbook_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.playbooks_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    // A link that leads nowhere (dangling, or a loop) is listed too, so loading
                    // it says why it cannot be read rather than skipping it.
                    .filter(|p| is_yaml(p) && (p.is_file() || p.is_symlink()))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Resolves a playbook given by name (`deploy`) or by path (`./x.yaml`).
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf, Diagnostic> {
        let as_path = Path::new(name_or_path);
        if name_or_path.contains('/') || is_yaml(as_path) {
            if as_path.is_file() {
                return Ok(as_path.to_path_buf());
            }
            return Err(Diagnostic::error(
                "not-found",
                format!("no playbook file `{name_or_path}`"),
            )
            .with_hint("check the path, or give a playbook name from `runbook list`"));
        }
        let dir = self.playbooks_dir();
        for ext in ["yaml", "yml"] {
            let candidate = dir.join(format!("{name_or_path}.{ext}"));
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        let names: Vec<String> = self
            .playbook_files()
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        let hint = match did_you_mean(name_or_path, names.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => {
                format!("there are no playbooks in `{}`", display_path(&dir))
            }
            None => format!("playbooks: {}", names.join(", ")),
        };
        Err(
            Diagnostic::error("not-found", format!("no playbook named `{name_or_path}`"))
                .with_hint(hint),
        )
    }

    /// Loads and validates one playbook and, recursively, its includes.
    pub fn load_playbook(&self, path: &Path) -> Result<Arc<Playbook>, Diagnostics> {
        let mut stack = Vec::new();
        let mut cache = BTreeMap::new();
        load_playbook_rec(self, path, &mut stack, &mut cache)
    }
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// The project's `runbook.yaml`: `None` when there is none, the path when it is a regular file
/// (directly or through symbolic links). Anything else under that name (a folder, a dangling
/// link, a link loop, a pipe) is an error: ignoring it would run without the protections the
/// user meant to configure.
pub fn config_file(root: &Path) -> Result<Option<PathBuf>, Diagnostic> {
    let path = root.join(CONFIG_FILE);
    let shown = display_path(&path);
    let refuse = |what: String, hint: &str| {
        Err(Diagnostic::error("config-not-a-file", what)
            .in_file(shown.clone())
            .with_hint(hint))
    };
    match path.symlink_metadata() {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return refuse(
                format!("cannot look at `{shown}`: {e}"),
                "check the permissions of the project folder",
            );
        }
    }
    let link_hint = "point the link at the config file, or remove the link";
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(Some(path)),
        Ok(m) if m.is_dir() => refuse(
            format!("`{shown}` is a folder, not a config file"),
            "the project config is a YAML file; rename or remove the folder",
        ),
        Ok(_) => refuse(
            format!("`{shown}` is not a regular file (a pipe, socket or device)"),
            "the project config is a YAML file; replace it with one, or remove it",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let to = std::fs::read_link(&path)
                .map(|t| format!(" to `{}`", t.display()))
                .unwrap_or_default();
            refuse(
                format!("`{shown}` is a symbolic link{to}, which does not exist"),
                link_hint,
            )
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => refuse(
            format!("`{shown}` is a symbolic link that loops and never reaches a file"),
            link_hint,
        ),
        Err(e) => refuse(
            format!("cannot read `{shown}`: {e}"),
            "check that the config file is readable",
        ),
    }
}

fn read(path: &Path) -> Result<Source, Diagnostics> {
    let bytes = std::fs::read(path).map_err(|e| {
        vec![
            Diagnostic::error("unreadable", format!("cannot read file: {e}"))
                .at_file(display_path(path))
                .with_hint("check that the file exists and is readable"),
        ]
    })?;
    yaml::decode(path, bytes).map_err(|d| vec![d])
}

/// Parses a file and runs the schema; returns the tree and its JSON on success.
fn parse_checked(
    kind: SchemaKind,
    source: &Source,
) -> Result<(Node, serde_json::Value), Diagnostics> {
    let tree = yaml::parse(source).map_err(|d| vec![d])?;
    if matches!(tree.value, yaml::Value::Null) {
        let what = match kind {
            SchemaKind::Playbook => "playbook file is empty",
            SchemaKind::Config => "config file is empty",
        };
        let hint = match kind {
            SchemaKind::Playbook => "a playbook needs at least `name:` and `steps:`",
            SchemaKind::Config => "add `environments:`, or delete the file",
        };
        return Err(vec![
            Diagnostic::error("empty-file", what)
                .at(source, Pos::new(1, 1))
                .with_hint(hint),
        ]);
    }
    let json = tree.to_json().map_err(|pos| {
        vec![
            Diagnostic::error("non-string-key", "mapping keys must be strings")
                .at(source, pos)
                .with_hint("quote the key"),
        ]
    })?;
    let diags = schema::check(kind, source, &tree, &json);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok((tree, json))
}

/// After schema errors in a playbook, runs the semantic checks over what is left once the
/// rejected parts are removed, so one pass reports both kinds of problem. Findings that the
/// removal itself causes (a step whose only action was a misspelled key has "no action") are
/// left out.
fn semantic_after_schema_errors(source: &Source, config: Option<&ConfigDef>) -> Vec<Diagnostic> {
    let Ok(tree) = yaml::parse(source) else {
        return Vec::new();
    };
    let Ok(json) = tree.to_json() else {
        return Vec::new();
    };
    let Some(pruned) = schema::prune(SchemaKind::Playbook, &json) else {
        return Vec::new();
    };
    let Ok(def) = serde_json::from_value::<PlaybookDef>(pruned) else {
        return Vec::new();
    };
    validate::check_playbook(&def, source, &tree, config)
        .into_iter()
        .filter(|d| {
            !matches!(
                d.code,
                "no-action"
                    | "missing-id"
                    | "empty-playbook"
                    | "incomplete-action"
                    | "incomplete-gate"
                    | "several-actions"
            )
        })
        .collect()
}

pub fn load_config(path: &Path) -> Result<Config, Diagnostics> {
    let source = read(path)?;
    let (tree, json) = parse_checked(SchemaKind::Config, &source)?;
    let def: ConfigDef = serde_json::from_value(json).map_err(|e| {
        vec![Diagnostic::error("schema", e.to_string()).at(&source, Pos::new(1, 1))]
    })?;
    let diags = validate::check_config(&def, &source, &tree);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(Config { def, source })
}

/// Loads one playbook and its includes. `stack` holds the files being loaded (for cycle
/// detection); `cache` the ones done, so a playbook included twice is loaded once.
fn load_playbook_rec(
    project: &Project,
    path: &Path,
    stack: &mut Vec<PathBuf>,
    cache: &mut BTreeMap<PathBuf, Arc<Playbook>>,
) -> Result<Arc<Playbook>, Diagnostics> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(done) = cache.get(&canonical) {
        return Ok(done.clone());
    }
    let source = read(path)?;
    let sha256 = hex::encode(Sha256::digest(source.text.as_bytes()));
    let (tree, json) = match parse_checked(SchemaKind::Playbook, &source) {
        Ok(parsed) => parsed,
        Err(mut diags) => {
            if diags
                .iter()
                .any(|d| d.code != "yaml-syntax" && d.code != "empty-file")
            {
                let seen: Vec<(usize, usize)> = diags.iter().map(|d| (d.line, d.column)).collect();
                let extra = semantic_after_schema_errors(&source, project.config_def());
                diags.extend(
                    extra
                        .into_iter()
                        .filter(|d| !seen.contains(&(d.line, d.column))),
                );
            }
            return Err(diags);
        }
    };
    let def: PlaybookDef = serde_json::from_value(json).map_err(|e| {
        vec![Diagnostic::error("schema", e.to_string()).at(&source, Pos::new(1, 1))]
    })?;
    let mut diags = validate::check_playbook(&def, &source, &tree, project.config_def());
    let seeds = project.seeds_dir();
    let folders = validate::Folders {
        root: &project.root,
        seeds: &seeds,
    };
    diags.extend(validate::check_inputs(&def, &source, &tree, &folders));

    // Includes: each must exist, be valid, take the params it is given, and not cycle.
    stack.push(canonical.clone());
    let mut includes = BTreeMap::new();
    for (i, step) in def.steps.iter().enumerate() {
        let Some(Action::Include(inc)) = step.action() else {
            continue;
        };
        let site = IncludeSite {
            path,
            source: &source,
            tree: &tree,
            index: i,
            inc,
            at: tree.pos_of(&["steps", &i.to_string(), "include", "playbook"]),
        };
        if let Some(child) = load_include(project, &site, stack, cache, &mut diags)
            && let Some(id) = &step.id
        {
            includes.insert(id.clone(), child);
        }
    }
    stack.pop();

    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let playbook = Arc::new(Playbook {
        def,
        source,
        tree,
        sha256,
        includes,
    });
    cache.insert(canonical, playbook.clone());
    Ok(playbook)
}

/// An include step of the playbook being loaded, and where its diagnostics point.
struct IncludeSite<'a> {
    /// The including file.
    path: &'a Path,
    source: &'a Source,
    tree: &'a Node,
    /// The include step's index in `steps`.
    index: usize,
    inc: &'a IncludeAction,
    /// The position of `include.playbook`.
    at: Pos,
}

impl IncludeSite<'_> {
    /// An error at `include.playbook`, underlining the name.
    fn error(&self, code: &'static str, msg: String, hint: String) -> Diagnostic {
        Diagnostic::error(code, msg)
            .at(self.source, self.at)
            .with_width(self.inc.playbook.chars().count())
            .with_hint(hint)
    }
}

/// Loads the playbook an include step names; `None` (with diagnostics) when it is missing,
/// part of a cycle or invalid.
fn load_include(
    project: &Project,
    site: &IncludeSite<'_>,
    stack: &mut Vec<PathBuf>,
    cache: &mut BTreeMap<PathBuf, Arc<Playbook>>,
    diags: &mut Diagnostics,
) -> Option<Arc<Playbook>> {
    let inc = site.inc;
    let target = match resolve_include(project, site.path, &inc.playbook) {
        Ok(t) => t,
        Err(hint) => {
            let hint = hint
                .filter(|h| h.starts_with("did you mean"))
                .unwrap_or_else(|| {
                    format!(
                        "give a playbook name from `{}` or a path relative to this file",
                        display_path(&project.playbooks_dir())
                    )
                });
            diags.push(site.error(
                "missing-include",
                format!("included playbook `{}` does not exist", inc.playbook),
                hint,
            ));
            return None;
        }
    };
    let target_canon = std::fs::canonicalize(&target).unwrap_or(target.clone());
    if let Some(start) = stack.iter().position(|p| *p == target_canon) {
        let cycle: Vec<String> = stack[start..]
            .iter()
            .chain(std::iter::once(&target_canon))
            .map(|p| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        diags.push(site.error(
            "include-cycle",
            format!("include cycle: {}", cycle.join(" -> ")),
            "a playbook cannot include itself, directly or through others".to_owned(),
        ));
        return None;
    }
    match load_playbook_rec(project, &target, stack, cache) {
        Ok(child) => {
            include_params(site, &child, diags);
            Some(child)
        }
        Err(child_diags) => {
            let first = child_diags
                .iter()
                .find(|d| d.is_error())
                .map(|d| d.location())
                .unwrap_or_default();
            diags.push(site.error(
                "invalid-include",
                format!("included playbook `{}` is invalid", inc.playbook),
                format!("fix the errors in it first (the first is at {first})"),
            ));
            diags.extend(child_diags);
            None
        }
    }
}

/// The include gives only parameters the included playbook has, and every one it requires.
fn include_params(site: &IncludeSite<'_>, child: &Playbook, diags: &mut Diagnostics) {
    let (tree, i, inc) = (site.tree, site.index.to_string(), site.inc);
    for name in inc.params.keys() {
        if !child.def.params.contains_key(name) {
            let p = tree.pos_of(&["steps", &i, "include", "params", name]);
            let key_pos = tree
                .lookup(&["steps", &i, "include", "params"])
                .and_then(|n| n.key(name))
                .map_or(p, |n| n.pos);
            let hint = match did_you_mean(name, child.def.params.keys().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "`{}` takes: {}",
                    child.def.name,
                    child
                        .def
                        .params
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            diags.push(
                Diagnostic::error(
                    "unknown-param",
                    format!(
                        "included playbook `{}` has no parameter `{name}`",
                        child.def.name
                    ),
                )
                .at(site.source, key_pos)
                .with_width(name.chars().count())
                .with_hint(hint),
            );
        }
    }
    for (name, param) in &child.def.params {
        if param.required
            && param.default.is_none()
            && param.from_env.is_none()
            && !inc.params.contains_key(name)
        {
            diags.push(
                Diagnostic::error(
                    "missing-param",
                    format!(
                        "included playbook `{}` requires parameter `{name}`",
                        child.def.name
                    ),
                )
                .at(site.source, site.at)
                .with_hint(format!("pass it under `include.params`: `{name}: ...`")),
            );
        }
    }
}

/// Resolves an include relative to the including file, then by name; on failure returns the
/// hint of the name lookup (which may be a "did you mean").
fn resolve_include(project: &Project, from: &Path, name: &str) -> Result<PathBuf, Option<String>> {
    let rel = crate::source::normalize(&from.parent().unwrap_or(Path::new(".")).join(name));
    if (name.contains('/') || is_yaml(Path::new(name))) && rel.is_file() {
        return Ok(rel);
    }
    project.resolve(name).map_err(|d| d.hint)
}

/// Every file under `dir`, recursively.
fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            walk_files(&p, out);
        } else {
            out.push(p);
        }
    }
}
