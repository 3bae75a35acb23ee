//! The house rules, enforced: every rule ARCHITECTURE.md states about the shape of `src/` is
//! checked here against the tree (as rust-analyzer's tidy test does), and each check is shown
//! to fail on a small tree that breaks it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 120;

/// The one subprocess wrapper.
const PROCESS_WRAPPER: &str = "src/process/";
/// The one owner of the terminal.
const TERMINAL_OWNER: &str = "src/ui.rs";
/// The exit codes and the one mapping from outcomes to them.
const EXIT_CODES: &str = "src/exit.rs";
/// Modules `src/db` must never import: db sits below them.
const ABOVE_DB: [&str; 3] = ["exec", "ui", "cli"];
/// The front of the pipeline, lowest first: each may import only those before it.
const FRONT: [&str; 6] = ["yaml", "schema", "template", "validate", "project", "plan"];

/// One source file: its path relative to the repository and its text.
struct File {
    rel: String,
    text: String,
}

fn rust_files(root: &Path) -> Vec<File> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<File>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push(File {
                    rel: rel.to_string_lossy().replace('\\', "/"),
                    text: fs::read_to_string(&path).unwrap_or_default(),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("src"), root, &mut out);
    out
}

/// The text with comments, string and char literals blanked out (newlines kept), so brace
/// counting and searches see only code.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if let Some(len) = raw_string_len(rest) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let len = (j + 1).min(rest.len());
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let len = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(2).position(|&c| c == b'\'').map(|p| p + 3)
            } else if rest.get(2) == Some(&b'\'') {
                Some(3)
            } else {
                char_len(rest)
            };
            let len = len.unwrap_or(1);
            blank(&mut out, &rest[..len]);
            i += len;
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Length of a char literal holding one multi-byte character (`'é'`), if that is what starts here.
fn char_len(rest: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(rest).ok().or_else(|| {
        let end = rest.len().min(8);
        (1..=end)
            .rev()
            .find_map(|n| std::str::from_utf8(&rest[..n]).ok())
    })?;
    let mut chars = s.char_indices().skip(1);
    let (_, c) = chars.next()?;
    let (at, close) = chars.next()?;
    (c.len_utf8() > 1 && close == '\'').then_some(at + 1)
}

/// Length of a raw string literal (`r"..."`, `r#"..."#`, `br"..."`) starting here.
fn raw_string_len(rest: &[u8]) -> Option<usize> {
    let start = if rest.starts_with(b"br") {
        2
    } else if rest.starts_with(b"r") {
        1
    } else {
        0
    };
    if start == 0 {
        return None;
    }
    let hashes = rest[start..].iter().take_while(|&&c| c == b'#').count();
    if rest.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = start + hashes + 1;
    let end = rest[body..]
        .windows(close.len())
        .position(|w| w == close.as_slice())?;
    Some(body + end + close.len())
}

/// (name, first line, line count) of every function with a body.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code = code_only(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        let mut depth = 0i64;
        let mut opened = false;
        'scan: for (at, l) in lines.iter().enumerate().skip(start) {
            for c in l.chars() {
                match c {
                    ';' if !opened => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
                if opened && depth == 0 {
                    found.push((name.clone(), start + 1, at - start + 1));
                    break 'scan;
                }
            }
        }
    }
    found
}

/// The name of the function a line declares, if it declares one.
fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let qualifier = w.starts_with("pub")
            || matches!(
                w,
                "async" | "const" | "unsafe" | "extern" | "default" | "\"C\""
            );
        if w == "fn" {
            let name: String = words
                .next()?
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return (!name.is_empty()).then_some(name);
        }
        if !qualifier {
            return None;
        }
    }
    None
}

fn long_files(files: &[File]) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.text.lines().count() > MAX_FILE_LINES)
        .map(|f| {
            format!(
                "{}: {} lines (at most {MAX_FILE_LINES})",
                f.rel,
                f.text.lines().count()
            )
        })
        .collect()
}

fn long_functions(files: &[File]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        for (name, line, len) in functions(&f.text) {
            if len > MAX_FN_LINES {
                out.push(format!(
                    "{}:{line}: fn {name} is {len} lines (at most {MAX_FN_LINES})",
                    f.rel
                ));
            }
        }
    }
    out
}

/// Lines of code (outside comments and strings) that contain `needle`, outside `allowed`
/// (files, or folders written with a trailing `/`).
fn uses(files: &[File], allowed: &[&str], needles: &[&str], what: &str) -> Vec<String> {
    let is_allowed = |rel: &str| {
        allowed
            .iter()
            .any(|a| rel == *a || (a.ends_with('/') && rel.starts_with(a)))
    };
    let mut out = Vec::new();
    for f in files.iter().filter(|f| !is_allowed(&f.rel)) {
        for (n, line) in code_only(&f.text).lines().enumerate() {
            if let Some(needle) = needles.iter().find(|needle| line.contains(*needle)) {
                out.push(format!("{}:{}: `{needle}` {what}", f.rel, n + 1));
            }
        }
    }
    out
}

fn subprocesses(files: &[File]) -> Vec<String> {
    uses(
        files,
        &[PROCESS_WRAPPER],
        &["process::Command", "duct::", "Command::new("],
        "starts a process outside the one wrapper (src/process/)",
    )
}

fn terminal_writes(files: &[File]) -> Vec<String> {
    uses(
        files,
        &[TERMINAL_OWNER],
        &[
            // Longer names first: `eprintln!` holds `println!`.
            "eprintln!",
            "println!",
            "eprint!(",
            "print!(",
            "io::stderr()",
            "io::stdout()",
            "dbg!(",
            ".print()",
        ],
        "writes to the terminal outside src/ui.rs",
    )
}

/// Exit codes are chosen by the CLI from typed outcomes (`src/exit.rs` holds the codes and
/// the one mapping); the executor records the code a run ends with through that mapping.
fn exit_codes(files: &[File]) -> Vec<String> {
    uses(
        files,
        &[EXIT_CODES, "src/main.rs", "src/cli/", "src/exec/execute.rs"],
        &["Exit::"],
        "makes an exit code outside the CLI",
    )
}

/// The top-level modules a file imports (`crate::NAME`), outside comments and strings.
fn imports(text: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let name: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    // `use crate::{a, b::c}` names several.
    for (i, _) in code.match_indices("crate::{") {
        let inner = code[i + 8..].split('}').next().unwrap_or("");
        for part in inner.split(',') {
            let name: String = part
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The top-level module a file belongs to: `src/db/copy/scan.rs` -> `db`.
fn module_of(rel: &str) -> String {
    let rest = rel.trim_start_matches("src/");
    let first = rest.split('/').next().unwrap_or(rest);
    first.trim_end_matches(".rs").to_owned()
}

fn db_imports_upward(files: &[File]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files.iter().filter(|f| module_of(&f.rel) == "db") {
        for name in imports(&f.text) {
            if ABOVE_DB.contains(&name.as_str()) {
                out.push(format!(
                    "{}: imports `crate::{name}` (db sits below it)",
                    f.rel
                ));
            }
        }
    }
    out
}

fn front_imports_backward(files: &[File]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let module = module_of(&f.rel);
        let Some(rank) = FRONT.iter().position(|m| *m == module) else {
            continue;
        };
        for name in imports(&f.text) {
            if let Some(other) = FRONT.iter().position(|m| *m == name)
                && other > rank
            {
                out.push(format!(
                    "{}: `{module}` imports `crate::{name}`, which comes after it in the pipeline",
                    f.rel
                ));
            }
        }
    }
    out
}

/// The files ARCHITECTURE.md's code map names: `src/...` paths, and `name.rs` written inside
/// a bullet that names a folder (`src/db/copy/`: `scan.rs` ...).
fn code_map(architecture: &str) -> (BTreeSet<String>, Vec<String>) {
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Code map"))
        .unwrap_or("");
    let mut files = BTreeSet::new();
    let mut folders = Vec::new();
    let mut folder = String::new();
    for line in section.lines() {
        if line.starts_with("- ") {
            folder.clear();
        }
        for token in line.split('`').skip(1).step_by(2) {
            let token = token.trim();
            if token.starts_with("src/") && token.ends_with('/') {
                folder = token.to_owned();
                folders.push(token.to_owned());
            } else if token.starts_with("src/") && token.ends_with(".rs") {
                files.insert(token.to_owned());
            } else if !folder.is_empty()
                && token.ends_with(".rs")
                && token
                    .chars()
                    .all(|c| c.is_alphanumeric() || "_./".contains(c))
            {
                files.insert(format!("{folder}{token}"));
            }
        }
    }
    (files, folders)
}

fn code_map_mismatches(root: &Path, files: &[File]) -> Vec<String> {
    let text = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    let (named, folders) = code_map(&text);
    let mut out = Vec::new();
    for path in &named {
        if !root.join(path).is_file() {
            out.push(format!(
                "ARCHITECTURE.md names `{path}`, which does not exist"
            ));
        }
    }
    for folder in &folders {
        if !root.join(folder).is_dir() {
            out.push(format!(
                "ARCHITECTURE.md names `{folder}`, which does not exist"
            ));
        }
    }
    for f in files {
        if !named.contains(&f.rel) {
            out.push(format!(
                "{} is missing from ARCHITECTURE.md's code map",
                f.rel
            ));
        }
    }
    out
}

/// Every broken rule in the tree at `root`, grouped by rule.
fn check(root: &Path) -> BTreeMap<&'static str, Vec<String>> {
    let files = rust_files(root);
    let mut found = BTreeMap::new();
    found.insert("file length", long_files(&files));
    found.insert("function length", long_functions(&files));
    found.insert("one subprocess wrapper", subprocesses(&files));
    found.insert("one terminal owner", terminal_writes(&files));
    found.insert("exit codes from the CLI", exit_codes(&files));
    found.insert("db points down", db_imports_upward(&files));
    found.insert("front points one way", front_imports_backward(&files));
    found.insert("code map is true", code_map_mismatches(root, &files));
    found.retain(|_, v| !v.is_empty());
    found
}

#[test]
fn the_tree_keeps_the_house_rules() {
    let found = check(&crate::support::repo());
    let report: Vec<String> = found
        .iter()
        .map(|(rule, items)| format!("{rule}:\n  {}", items.join("\n  ")))
        .collect();
    assert!(
        found.is_empty(),
        "house rules broken:\n{}",
        report.join("\n")
    );
}

/// A small tree that keeps every rule, for the tests below to break one rule at a time.
fn tiny_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write("src/lib.rs", "//! Root.\npub mod db;\npub mod ui;\n");
    write(
        "src/ui.rs",
        "//! Terminal.\npub fn say() {\n    println!(\"hi\");\n}\n",
    );
    write(
        "src/process/mod.rs",
        "//! Processes.\npub fn run() {\n    let _ = std::process::Command::new(\"true\");\n}\n",
    );
    write(
        "src/db/mod.rs",
        "//! Db.\nuse crate::process;\n// crate::ui in a comment is fine\nconst S: &str = \"crate::exec\";\n",
    );
    write(
        "ARCHITECTURE.md",
        "# A\n\n## Code map\n\n- `src/lib.rs`: root. `src/ui.rs`.\n- `src/process/`: `mod.rs`.\n- `src/db/`: `mod.rs`.\n\n## Invariants\n",
    );
    dir
}

fn broken(dir: &tempfile::TempDir) -> BTreeMap<&'static str, Vec<String>> {
    check(dir.path())
}

#[test]
fn tidy_passes_a_tree_that_keeps_the_rules() {
    let dir = tiny_tree();
    assert!(broken(&dir).is_empty(), "{:?}", broken(&dir));
}

#[test]
fn tidy_fails_each_rule_when_it_is_broken() {
    let cases: [(&str, &str, String); 8] = [
        (
            "file length",
            "src/db/mod.rs",
            "//! Db.\n".to_owned() + &"// x\n".repeat(800),
        ),
        (
            "function length",
            "src/db/mod.rs",
            format!(
                "//! Db.\nfn long() {{\n{}}}\n",
                "    let _ = 1;\n".repeat(119)
            ),
        ),
        (
            "one subprocess wrapper",
            "src/db/mod.rs",
            "//! Db.\nfn f() { let _ = duct::cmd(\"ls\", [\"-l\"]); }\n".to_owned(),
        ),
        (
            "one terminal owner",
            "src/db/mod.rs",
            "//! Db.\nfn f() { eprintln!(\"x\"); }\n".to_owned(),
        ),
        (
            "db points down",
            "src/db/mod.rs",
            "//! Db.\nuse crate::{process, exec::Engine};\n".to_owned(),
        ),
        (
            "front points one way",
            "src/yaml.rs",
            "//! Yaml.\nuse crate::plan::Plan;\n".to_owned(),
        ),
        (
            "code map is true",
            "src/db/extra.rs",
            "//! Not in the map.\n".to_owned(),
        ),
        (
            "exit codes from the CLI",
            "src/db/mod.rs",
            "//! Db.\nfn f() -> u8 { crate::exit::Exit::Invalid as u8 }\n".to_owned(),
        ),
    ];
    for (rule, file, text) in cases {
        let dir = tiny_tree();
        fs::write(dir.path().join(file), text).unwrap();
        let found = broken(&dir);
        assert!(
            found.contains_key(rule),
            "{rule}: not caught, found {found:?}"
        );
        if file != "src/yaml.rs" {
            assert_eq!(
                found.len(),
                1,
                "{rule}: only that rule breaks, found {found:?}"
            );
        }
    }
}

#[test]
fn a_function_of_exactly_the_limit_passes() {
    let text = format!(
        "fn f() {{\n{}}}\n",
        "    let _ = '{';\n".repeat(MAX_FN_LINES - 2)
    );
    assert_eq!(functions(&text), [("f".to_owned(), 1, MAX_FN_LINES)]);
    let raw = "fn g() {\n    let _ = r#\"}}\"#;\n    let _ = \"{\";\n}\nfn h<'a>(x: &'a str) -> &'a str {\n    x\n}\n";
    assert_eq!(
        functions(raw),
        [("g".to_owned(), 1, 4), ("h".to_owned(), 5, 3)]
    );
}

#[test]
fn the_code_map_must_name_real_files() {
    let dir = tiny_tree();
    let map = "# A\n\n## Code map\n\n- `src/lib.rs`, `src/ui.rs`, `src/gone.rs`.\n- `src/process/`: `mod.rs`.\n- `src/db/`: `mod.rs`.\n";
    fs::write(dir.path().join("ARCHITECTURE.md"), map).unwrap();
    let found = broken(&dir);
    assert_eq!(
        found.get("code map is true").map(Vec::as_slice),
        Some(["ARCHITECTURE.md names `src/gone.rs`, which does not exist".to_owned()].as_slice())
    );
}
