//! Finding and reading a seed set: `<set>.yaml` (or `.yml`) in the seeds folder, with a
//! did-you-mean when the name is wrong.

use super::SeedError;
use super::error::failed;
use super::model::SeedSet;
use super::parse::parse;
use crate::diagnostic::did_you_mean;
use crate::yaml;
use std::path::{Path, PathBuf};

/// The file of seed set `set` in `dir`: `<set>.yaml`, else `<set>.yml`.
pub fn set_path(dir: &Path, set: &str) -> Result<PathBuf, SeedError> {
    let plain = !set.is_empty()
        && !set.starts_with('.')
        && set
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain {
        return Err(failed(format!(
            "`{set}` is not a seed set name; give a file name under the seeds folder without its extension, like `production`"
        )));
    }
    for ext in ["yaml", "yml"] {
        let p = dir.join(format!("{set}.{ext}"));
        if p.is_file() {
            return Ok(p);
        }
    }
    let available = available_sets(dir);
    let hint = match did_you_mean(set, available.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None if available.is_empty() => format!(
            "`{}` holds no seed files; create `{set}.yaml` there",
            crate::source::display_path(dir)
        ),
        None => format!("available sets: {}", available.join(", ")),
    };
    Err(failed(format!(
        "no seed set `{set}`: `{}` does not exist; {hint}",
        crate::source::display_path(&dir.join(format!("{set}.yaml")))
    )))
}

fn available_sets(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))
                .map(str::to_owned)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Reads and checks seed set `set` from `dir`. Touches no database.
pub fn load(dir: &Path, set: &str) -> Result<SeedSet, SeedError> {
    let path = set_path(dir, set)?;
    let bytes = std::fs::read(&path).map_err(|e| {
        failed(format!(
            "cannot read `{}`: {e}",
            crate::source::display_path(&path)
        ))
    })?;
    let source = yaml::decode(&path, bytes).map_err(|d| SeedError::Invalid(vec![d]))?;
    parse(set, source)
}
