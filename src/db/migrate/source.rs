//! Finding migrations on disk: the own layout (`<version>_<name>.sql` with an optional
//! `.down.sql`, or sqlx's `.up.sql`) and Prisma's (`<timestamp>_<name>/migration.sql`), read
//! with line endings normalised and checksummed.

use super::script::{Parsed, tx_needs_in};
use super::tokens::tx_needs_from_tokens;
use super::version::{compare_versions, valid_version};
use crate::db::Dialect;
use crate::db::op::OpError;
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One migration file (or Prisma folder) as found on disk.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: String,
    pub name: String,
    /// The up file.
    pub path: PathBuf,
    /// The up file as shown to people: relative to the project root when inside it.
    pub file: String,
    /// The down file, when it exists.
    pub down: Option<PathBuf>,
    /// Where the down file would be (for the error when it is missing).
    pub down_expected: PathBuf,
    /// The SQL with line endings normalised to LF.
    pub sql: String,
    /// sha256 of [`Migration::sql`].
    pub checksum: String,
    /// sha256 of the bytes as stored, which is what Prisma records.
    pub raw_checksum: String,
    /// Runs outside runbook's transaction: its first line is the no-transaction marker, it
    /// controls its own transaction ([`Migration::own_transaction`]), or it holds a statement
    /// PostgreSQL refuses in one (`CREATE INDEX CONCURRENTLY`), all found by parsing (or by
    /// its tokens, when they rule all of these out: `tokens.rs`).
    pub no_transaction: bool,
    /// The line of the file's own `BEGIN`/`COMMIT`/`ROLLBACK`, when it has one: it runs as psql
    /// runs it.
    pub own_transaction: Option<usize>,
    /// How many statements the up file has, as the server counts them: from its tokens when
    /// they settle it (`tokens.rs`), else when squawk's parser splits it cleanly.
    pub statements: Option<usize>,
    /// The Prisma folder name (its id in `_prisma_migrations`) for the Prisma layout.
    pub prisma_name: Option<String>,
    /// squawk's parse of [`Migration::sql`], kept only when the files are discovered to be
    /// linted (`discover_parsed`), so each is parsed once; other callers do not hold the trees.
    pub parsed: Option<Parsed>,
}

/// The migrations of one dialect, sorted by version.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    /// The folder the files were read from.
    pub dir: PathBuf,
    /// The folder as shown to people.
    pub shown_dir: String,
    pub migrations: Vec<Migration>,
    /// Migration folders that hold no `migration.sql` (a data migration in `migration.ts`, an
    /// empty folder): reported, never applied, never a stop.
    pub skipped: Vec<Skipped>,
}

/// A folder that looks like a Prisma migration but holds no SQL to apply.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// The folder, as shown to people.
    pub folder: String,
    /// Why it is skipped, e.g. "holds no `migration.sql`, only `migration.ts`".
    pub reason: String,
}

impl Migration {
    /// A file next to the up file (its down file), shown the way the up file is.
    pub fn shown_sibling(&self, path: &Path) -> String {
        match path.file_name() {
            Some(name) => Path::new(&self.file)
                .with_file_name(name)
                .display()
                .to_string(),
            None => path.display().to_string(),
        }
    }
}

impl MigrationSet {
    /// The migration of `version` (`001` is `1`): a binary search, the set being sorted by
    /// version with no two equal (`read_dir_keeping` refuses duplicates).
    pub fn find(&self, version: &str) -> Option<&Migration> {
        self.migrations
            .binary_search_by(|m| compare_versions(&m.version, version))
            .ok()
            .map(|i| &self.migrations[i])
    }
}

/// Line endings normalised to LF, so a file checked out on Windows has the same checksum.
pub fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// sha256 (hex) of the text with CRLF normalised to LF.
pub fn checksum(text: &str) -> String {
    sha256_hex(normalize(text).as_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A path as shown to people: relative to `root` when inside it.
pub(super) fn shown(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The `provider` setting of a Prisma `migration_lock.toml`, the one setting that matters.
fn prisma_provider(lock_toml: &str) -> Option<String> {
    lock_toml.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "provider").then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Whether a folder holds migrations directly: `.sql` files or Prisma migration folders.
fn holds_migrations(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(Result::ok).any(|e| {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            (p.is_file() && name.ends_with(".sql"))
                || (p.is_dir() && p.join("migration.sql").is_file())
        })
    })
}

/// The folder holding the dialect's migrations: `<base>/<dialect>/`, or `<base>` itself when
/// it is a Prisma migrations folder (with `migration_lock.toml`) or holds migrations directly.
pub fn locate(base: &Path, dialect: Dialect, root: &Path) -> Result<PathBuf, OpError> {
    let sub = base.join(dialect.folder());
    if sub.is_dir() {
        return Ok(sub);
    }
    if let Ok(text) = std::fs::read_to_string(base.join("migration_lock.toml")) {
        if let Some(p) = prisma_provider(&text)
            && p != dialect.prisma_provider()
        {
            return Err(OpError::failed(format!(
                "`{}` is a Prisma migrations folder for `{p}`, and the target is {}",
                shown(base, root),
                dialect.label()
            )));
        }
        return Ok(base.to_path_buf());
    }
    if holds_migrations(base) {
        return Ok(base.to_path_buf());
    }
    if base.is_dir() {
        Err(OpError::failed(format!(
            "no {} migrations: `{}` does not exist",
            dialect.label(),
            shown(&sub, root)
        )))
    } else {
        Err(OpError::failed(format!(
            "the migrations folder `{}` does not exist",
            shown(base, root)
        )))
    }
}

/// Finds and reads the dialect's migrations under `base`; paths are shown relative to `root`.
pub fn discover(base: &Path, dialect: Dialect, root: &Path) -> Result<MigrationSet, OpError> {
    discover_keeping(base, dialect, root, false)
}

/// As `discover`, keeping each file's parse ([`Migration::parsed`]) for the linter.
pub fn discover_parsed(
    base: &Path,
    dialect: Dialect,
    root: &Path,
) -> Result<MigrationSet, OpError> {
    discover_keeping(base, dialect, root, true)
}

fn discover_keeping(
    base: &Path,
    dialect: Dialect,
    root: &Path,
    keep_parse: bool,
) -> Result<MigrationSet, OpError> {
    let dir = locate(base, dialect, root)?;
    let (migrations, skipped) = read_dir_keeping(&dir, root, keep_parse)?;
    Ok(MigrationSet {
        shown_dir: shown(&dir, root),
        dir,
        migrations,
        skipped,
    })
}

/// Reads a migration file: its text with LF line endings, and the sha256 of its bytes.
pub(super) fn read_sql(path: &Path, root: &Path) -> Result<(String, String), OpError> {
    let bytes = std::fs::read(path)
        .map_err(|e| OpError::failed(format!("cannot read `{}`: {e}", shown(path, root))))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| OpError::failed(format!("`{}` is not UTF-8 text", shown(path, root))))?;
    Ok((normalize(&text), sha256_hex(&bytes)))
}

/// An up file found in a folder, before it is read.
struct UpFile {
    version: String,
    name: String,
    path: PathBuf,
    down_expected: PathBuf,
    prisma_name: Option<String>,
}

/// The up files and the down files (by the stem they belong to) of one folder.
#[derive(Default)]
struct Listing {
    ups: Vec<UpFile>,
    downs: BTreeMap<String, PathBuf>,
    skipped: Vec<Skipped>,
}

const NAMING: &str = "expected `<version>_<name>.sql` (version: digits and dots, e.g. `001_create_users.sql` or `20240101120000_init.sql`), with an optional `<version>_<name>.down.sql`";

/// Reads one folder of migrations: flat files and Prisma folders, sorted by version, and the
/// migration folders skipped for holding no SQL.
pub fn read_dir(dir: &Path, root: &Path) -> Result<(Vec<Migration>, Vec<Skipped>), OpError> {
    read_dir_keeping(dir, root, false)
}

fn read_dir_keeping(
    dir: &Path,
    root: &Path,
    keep_parse: bool,
) -> Result<(Vec<Migration>, Vec<Skipped>), OpError> {
    let mut listing = list(dir, root)?;
    let paired: Vec<(UpFile, Option<PathBuf>)> = std::mem::take(&mut listing.ups)
        .into_iter()
        .map(|up| {
            let down = down_of(&up, &mut listing.downs);
            (up, down)
        })
        .collect();
    let mut out = load_all(paired, root, keep_parse)?;
    if let Some((_, orphan)) = listing.downs.into_iter().next() {
        return Err(orphan_down(&orphan, root));
    }
    out.sort_by(|a, b| compare_versions(&a.version, &b.version));
    for pair in out.windows(2) {
        if compare_versions(&pair[0].version, &pair[1].version) == Ordering::Equal {
            return Err(OpError::failed(format!(
                "duplicate migration version `{}`: `{}` and `{}`",
                pair[1].version, pair[0].file, pair[1].file
            )));
        }
    }
    Ok((out, listing.skipped))
}

/// Sorts a folder's entries into up files and down files; names that fit neither layout fail.
fn list(dir: &Path, root: &Path) -> Result<Listing, OpError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| OpError::failed(format!("cannot read `{}`: {e}", shown(dir, root))))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let mut listing = Listing::default();
    for path in entries {
        let Some(fname) = path.file_name().map(|f| f.to_string_lossy().into_owned()) else {
            continue;
        };
        if path.is_dir() {
            match prisma_folder(&path, &fname, root)? {
                Folder::Migration(up) => listing.ups.push(up),
                Folder::Skipped(s) => listing.skipped.push(s),
                Folder::Other => {}
            }
            continue;
        }
        let Some(stem) = fname.strip_suffix(".sql") else {
            continue;
        };
        if let Some(base) = stem.strip_suffix(".down") {
            listing.downs.insert(base.to_owned(), path.clone());
            continue;
        }
        listing.ups.push(flat_file(dir, &path, stem, root)?);
    }
    Ok(listing)
}

/// What a folder in the migrations folder is.
enum Folder {
    /// A Prisma migration folder with its `migration.sql`.
    Migration(UpFile),
    /// Named like one, with no `migration.sql` in it.
    Skipped(Skipped),
    /// Not named like a migration: not ours to read.
    Other,
}

/// A Prisma migration folder, `<timestamp>_<name>/migration.sql`. A folder named like one that
/// holds no `migration.sql` (real projects keep TypeScript data migrations so) is skipped and
/// said; a folder whose name is not a version is none of ours.
fn prisma_folder(path: &Path, fname: &str, root: &Path) -> Result<Folder, OpError> {
    let Some((version, name)) = fname.split_once('_') else {
        return Ok(Folder::Other);
    };
    if !valid_version(version) {
        return Ok(Folder::Other);
    }
    let up = path.join("migration.sql");
    if !up.is_file() {
        return Ok(Folder::Skipped(Skipped {
            folder: shown(path, root),
            reason: without_sql(path),
        }));
    }
    if name.is_empty() {
        return Err(OpError::failed(format!(
            "`{}`: the folder name needs a name after the version, like `{version}_init`",
            shown(path, root)
        )));
    }
    Ok(Folder::Migration(UpFile {
        version: version.to_owned(),
        name: name.to_owned(),
        path: up,
        down_expected: path.join("down.sql"),
        prisma_name: Some(fname.to_owned()),
    }))
}

/// Why a migration folder has nothing to apply: what it holds instead.
fn without_sql(path: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    match names.as_slice() {
        [] => "holds no `migration.sql`: the folder is empty".to_owned(),
        [one] if one.ends_with(".ts") || one.ends_with(".js") => format!(
            "holds no `migration.sql`, only `{one}` (a data migration runbook does not run; run it with the project's own tooling)"
        ),
        _ => format!(
            "holds no `migration.sql` (it holds {})",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An up file of the own layout (`stem` is its name without `.sql`).
fn flat_file(dir: &Path, path: &Path, stem: &str, root: &Path) -> Result<UpFile, OpError> {
    let (stem, down_name) = match stem.strip_suffix(".up") {
        Some(base) => (base, format!("{base}.down.sql")),
        None => (stem, format!("{stem}.down.sql")),
    };
    let parsed = stem
        .split_once('_')
        .filter(|(v, n)| valid_version(v) && !n.is_empty());
    let Some((version, name)) = parsed else {
        return Err(OpError::failed(format!(
            "`{}` is not named like a migration: {NAMING}",
            shown(path, root)
        )));
    };
    Ok(UpFile {
        version: version.to_owned(),
        name: name.to_owned(),
        path: path.to_path_buf(),
        down_expected: dir.join(down_name),
        prisma_name: None,
    })
}

/// The down file of an up file: Prisma's `down.sql` beside it, or the flat layout's
/// `<stem>.down.sql` (taken out of `downs`, so the ones left have no up file).
fn down_of(up: &UpFile, downs: &mut BTreeMap<String, PathBuf>) -> Option<PathBuf> {
    if up.prisma_name.is_some() {
        return up.down_expected.is_file().then(|| up.down_expected.clone());
    }
    let stem = up
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .strip_suffix(".sql")
        .map(|s| s.strip_suffix(".up").unwrap_or(s))
        .unwrap_or_default();
    downs.remove(stem)
}

/// Files below this many are read on one thread: a second one costs more than it saves.
const PARALLEL_FROM: usize = 16;

/// The stack of the thread that parses the second half: the main thread's usual 8 MiB.
const PARSE_STACK: usize = 8 << 20;

/// Reads and classifies the up files, in order: a folder of many on two threads (classifying
/// and hashing a file is most of the time of reading one); the first error in the folder's
/// order.
fn load_all(
    paired: Vec<(UpFile, Option<PathBuf>)>,
    root: &Path,
    keep_parse: bool,
) -> Result<Vec<Migration>, OpError> {
    let load_part = |part: Vec<(UpFile, Option<PathBuf>)>| -> Result<Vec<Migration>, OpError> {
        part.into_iter()
            .map(|(up, down)| load(up, down, root, keep_parse))
            .collect()
    };
    if paired.len() < PARALLEL_FROM {
        return load_part(paired);
    }
    let mut first = paired;
    // Taken by the second thread, or by this one when no thread can be started.
    let second = std::sync::Mutex::new(Some(first.split_off(first.len() / 2)));
    let take = || {
        second
            .lock()
            .ok()
            .and_then(|mut half| half.take())
            .unwrap_or_default()
    };
    std::thread::scope(|scope| {
        // The main thread's stack, not a spawned thread's 2 MiB: squawk's parser recurses
        // with a file's nesting.
        let later = std::thread::Builder::new()
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, || load_part(take()));
        let mut out = load_part(first)?;
        let rest = match later {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(OpError::failed("internal: reading migrations panicked"))
            })?,
            Err(_) => load_part(take())?,
        };
        out.extend(rest);
        Ok(out)
    })
}

/// Reads an up file with its down file (found already).
fn load(
    up: UpFile,
    down: Option<PathBuf>,
    root: &Path,
    keep_parse: bool,
) -> Result<Migration, OpError> {
    let (sql, raw_checksum) = read_sql(&up.path, root)?;
    // Parsed when the tree is kept (for the linter) or the tokens do not settle it.
    let quick = (!keep_parse).then(|| tx_needs_from_tokens(&sql)).flatten();
    let (parse, needs) = match quick {
        Some(needs) => (None, needs),
        None => {
            let parse = Parsed::of(&sql);
            let needs = tx_needs_in(&sql, parse.as_ref());
            (parse, needs)
        }
    };
    Ok(Migration {
        parsed: parse.filter(|_| keep_parse),
        no_transaction: needs.outside,
        own_transaction: needs.own_transaction,
        statements: needs.statements,
        // The text is normalised already: hash it as it is.
        checksum: sha256_hex(sql.as_bytes()),
        file: shown(&up.path, root),
        version: up.version,
        name: up.name,
        path: up.path,
        down,
        down_expected: up.down_expected,
        sql,
        raw_checksum,
        prisma_name: up.prisma_name,
    })
}

/// The error for a down file whose up file is not there.
fn orphan_down(orphan: &Path, root: &Path) -> OpError {
    let up_name = orphan
        .file_name()
        .map(|f| f.to_string_lossy().replace(".down.sql", ".sql"))
        .unwrap_or_default();
    OpError::failed(format!(
        "`{}` is a down file without its migration (`{}`)",
        shown(orphan, root),
        shown(&orphan.with_file_name(up_name), root)
    ))
}

#[cfg(test)]
mod tests {
    use super::{PARALLEL_FROM, checksum, read_dir};

    /// A folder large enough to be read on two threads: every file in order with its down
    /// file and what parsing found, and of two unreadable files the first one named.
    #[test]
    fn a_large_folder_reads_in_order_and_fails_on_its_first_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * PARALLEL_FROM + 3;
        for i in 1..=n {
            let sql = if i == n - 1 {
                "CREATE INDEX CONCURRENTLY t_v ON t (v);\n".to_owned()
            } else {
                format!("CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});\n")
            };
            std::fs::write(dir.path().join(format!("{i:03}_m{i}.sql")), sql).unwrap();
            if i % 2 == 0 {
                std::fs::write(
                    dir.path().join(format!("{i:03}_m{i}.down.sql")),
                    "SELECT 1;",
                )
                .unwrap();
            }
        }
        let (found, _) = read_dir(dir.path(), dir.path()).unwrap();
        assert_eq!(found.len(), n);
        for (k, m) in found.iter().enumerate() {
            let i = k + 1;
            assert_eq!(m.version, format!("{i:03}"));
            assert_eq!(m.name, format!("m{i}"));
            assert_eq!(m.down.is_some(), i % 2 == 0, "{}", m.file);
            assert_eq!(m.no_transaction, i == n - 1, "{}", m.file);
            assert_eq!(
                m.statements,
                Some(if i == n - 1 { 1 } else { 2 }),
                "{}",
                m.file
            );
        }
        for i in [n - 2, 4] {
            std::fs::write(dir.path().join(format!("{i:03}_m{i}.sql")), [0xff, 0xfe]).unwrap();
        }
        let err = read_dir(dir.path(), dir.path()).unwrap_err().to_string();
        assert!(err.contains("`004_m4.sql` is not UTF-8 text"), "{err}");
    }

    #[test]
    fn crlf_and_lf_have_the_same_checksum() {
        assert_eq!(
            checksum("CREATE TABLE a (id int);\r\nSELECT 1;\r\n"),
            checksum("CREATE TABLE a (id int);\nSELECT 1;\n")
        );
        assert_ne!(checksum("SELECT 1;\n"), checksum("SELECT 2;\n"));
    }
}
