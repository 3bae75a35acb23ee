//! The disk space check: free space on the filesystem that holds the database, measured only
//! where this process can see it (each dialect says which directory that is, if any), or taken
//! from where the environment says the figure comes from (`disk_limit`, `disk_command`) when
//! runbook cannot see the server's disk (a managed or remote server, a role without the
//! privilege to read the data directory). A figure nobody can know is "unknown", never a
//! made-up number.

use super::grade::{graded, num};
use super::{CheckResult, HealthOptions, Status};
use crate::fmt::{bytes, percent};
use crate::playbook::HealthCheck;
use serde_json::{Value as Json, json};
use std::path::Path;

/// What the user does when the figure is unknown: both ways of saying where it comes from.
const HOW_TO_PROVIDE: &str = "say where the figure comes from in this environment's `vars` in runbook.yaml: `disk_limit` (the database's storage limit, such as a managed plan's 100GB) or `disk_command` (a command that prints the free percent, or free and total bytes)";

/// Where the free disk figure comes from when the environment says so.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskSource {
    /// `disk_limit`: the most the database may grow to, in bytes; free is what its size
    /// leaves of it.
    Limit(u64),
    /// `disk_command`: the command and the figure it printed.
    Command { command: String, figure: DiskFigure },
}

/// A free disk figure a command printed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskFigure {
    pub free_percent: f64,
    /// Free and total bytes, when the command printed them.
    pub bytes: Option<(u64, u64)>,
}

/// A skipped disk check (nothing to measure: an in-memory database): `free_percent` is null.
pub(super) fn disk_skip(reason: &str) -> CheckResult {
    CheckResult::skip(HealthCheck::DiskSpace, reason).with("free_percent", Json::Null)
}

/// A disk check whose figure cannot be known from here: a warning that says why and how to
/// provide it; `free_percent` is null, so a comparison never reads a number that was never
/// measured.
pub(super) fn disk_unknown(reason: &str) -> CheckResult {
    CheckResult::new(
        HealthCheck::DiskSpace,
        Status::Warn,
        Json::Null,
        format!("free disk unknown: {reason}; {HOW_TO_PROVIDE}"),
    )
    .with("free_percent", Json::Null)
    .with("source", "unknown")
}

/// Free space on the filesystem holding `dir`.
pub(super) fn disk_result(check: HealthCheck, dir: &Path, opts: &HealthOptions) -> CheckResult {
    match statvfs(dir) {
        Ok((free, total)) if total > 0 => {
            let free_percent = percent(free as f64, total as f64);
            graded(
                check,
                free_percent,
                opts,
                json!(free_percent),
                format!(
                    "{}% free ({} of {}) at `{}`",
                    num(free_percent),
                    bytes(free),
                    bytes(total),
                    dir.display()
                ),
            )
            .with("free_percent", free_percent)
            .with("free_bytes", free)
            .with("total_bytes", total)
            .with("path", dir.display().to_string())
            .with("source", "filesystem")
        }
        Ok(_) => disk_unknown(&format!(
            "the filesystem at `{}` reports no size",
            dir.display()
        )),
        Err(e) => disk_unknown(&format!("cannot measure `{}`: {e}", dir.display())),
    }
}

/// Free disk from the environment's `disk_limit`: what the database's size (`used` bytes)
/// leaves of the limit.
pub(super) fn limit_result(used: u64, limit: u64, opts: &HealthOptions) -> CheckResult {
    let free = limit.saturating_sub(used);
    let free_percent = percent(free as f64, limit as f64);
    graded(
        HealthCheck::DiskSpace,
        free_percent,
        opts,
        json!(free_percent),
        format!(
            "{}% free ({} of the {} limit; the database uses {}), from `disk_limit`",
            num(free_percent),
            bytes(free),
            bytes(limit),
            bytes(used)
        ),
    )
    .with("free_percent", free_percent)
    .with("free_bytes", free)
    .with("total_bytes", limit)
    .with("source", "disk_limit")
}

/// Free disk as the environment's `disk_command` printed it.
pub(super) fn command_result(command: &str, f: DiskFigure, opts: &HealthOptions) -> CheckResult {
    let sizes = match f.bytes {
        Some((free, total)) => format!(" ({} of {})", bytes(free), bytes(total)),
        None => String::new(),
    };
    let r = graded(
        HealthCheck::DiskSpace,
        f.free_percent,
        opts,
        json!(f.free_percent),
        format!(
            "{}% free{sizes}, from `disk_command` `{command}`",
            num(f.free_percent)
        ),
    )
    .with("free_percent", f.free_percent)
    .with("source", "disk_command");
    match f.bytes {
        Some((free, total)) => r.with("free_bytes", free).with("total_bytes", total),
        None => r,
    }
}

/// A size such as `100GB`, `1.5 TiB` or `1073741824` (bytes). KB, MB, GB and TB mean the
/// same as KiB, MiB, GiB and TiB (powers of 1024), as managed plans and `bytes` show them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let power = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kb" | "kib" | "k" => 1,
        "mb" | "mib" | "m" => 2,
        "gb" | "gib" | "g" => 3,
        "tb" | "tib" | "t" => 4,
        _ => {
            return Err(format!(
                "`{t}` is not a size: give a number with B, KB, MB, GB or TB, such as 100GB"
            ));
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("`{t}` is not a size: give a number with B, KB, MB, GB or TB, such as 100GB")
    })?;
    let n = value * 1024f64.powi(power);
    if !n.is_finite() || n < 1.0 || n >= u64::MAX as f64 {
        return Err(format!(
            "`{t}` is not a usable size: it must be at least 1 byte"
        ));
    }
    Ok(n as u64)
}

/// What a `disk_command` printed: a free percent (`42`, `42.5%`) or free and total bytes
/// (`FREE TOTAL`, as `df --output=avail,size -B1` gives them without its header).
pub fn parse_figure(stdout: &str) -> Result<DiskFigure, String> {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let bad = || {
        format!(
            "printed {:?}, not a free percent (such as `42%`) or free and total bytes (such as `1073741824 10737418240`)",
            short(stdout)
        )
    };
    match words.as_slice() {
        [p] => {
            let v: f64 = p.trim_end_matches('%').parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("printed {v}%, which is not between 0 and 100"));
            }
            Ok(DiskFigure {
                free_percent: (v * 10.0).round() / 10.0,
                bytes: None,
            })
        }
        [f, t] => {
            let free: u64 = f.parse().map_err(|_| bad())?;
            let total: u64 = t.parse().map_err(|_| bad())?;
            if total == 0 || free > total {
                return Err(format!(
                    "printed {free} free of {total} bytes: the total must be above 0 and at least the free bytes"
                ));
            }
            Ok(DiskFigure {
                free_percent: percent(free as f64, total as f64),
                bytes: Some((free, total)),
            })
        }
        _ => Err(bad()),
    }
}

/// At most 80 characters of what a command printed, for a message.
fn short(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_owned(),
    }
}

/// Bytes available to unprivileged users, and the filesystem's size.
pub(super) fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("the path holds a NUL byte"))?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `buf` is a writable statvfs; the call writes
    // only into `buf` and we read it only when it reports success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `buf`.
    let s = unsafe { buf.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit targets).
    #[allow(clippy::unnecessary_cast)]
    let (frsize, bavail, blocks) = (s.f_frsize as u64, s.f_bavail as u64, s.f_blocks as u64);
    Ok((bavail.saturating_mul(frsize), blocks.saturating_mul(frsize)))
}

#[cfg(test)]
mod tests {
    use super::{DiskFigure, parse_figure, parse_size, statvfs};
    use std::path::Path;

    #[test]
    fn sizes_read_with_binary_units() {
        assert_eq!(parse_size("100GB"), Ok(100 * (1 << 30)));
        assert_eq!(parse_size(" 1.5 TiB "), Ok(3 * (1 << 39)));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512 mb"), Ok(512 << 20));
        for bad in ["", "GB", "ten GB", "100 XB", "0", "-5GB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("size"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_command_prints_a_percent_or_free_and_total_bytes() {
        let pct = |p| DiskFigure {
            free_percent: p,
            bytes: None,
        };
        assert_eq!(parse_figure("42\n"), Ok(pct(42.0)));
        assert_eq!(parse_figure(" 37.25% "), Ok(pct(37.3)));
        assert_eq!(
            parse_figure("25 100\n"),
            Ok(DiskFigure {
                free_percent: 25.0,
                bytes: Some((25, 100))
            })
        );
        for bad in [
            "", "false", "lots", "1 2 3", "150%", "-1", "200 100", "5 0", "x 100",
        ] {
            let e = parse_figure(bad).unwrap_err();
            assert!(e.starts_with("printed"), "{bad}: {e}");
        }
    }

    #[test]
    fn statvfs_measures_a_real_filesystem() {
        let (free, total) = statvfs(Path::new("/")).unwrap();
        assert!(total > 0 && free <= total);
        assert!(statvfs(Path::new("/no/such/dir")).is_err());
    }
}
