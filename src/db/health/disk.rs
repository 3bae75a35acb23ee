//! The disk space check: free space on the filesystem that holds the database, measured only
//! where this process can see it (each dialect says which directory that is, if any).

use super::grade::{graded, num};
use super::{CheckResult, HealthOptions};
use crate::fmt::{bytes, percent};
use crate::playbook::HealthCheck;
use serde_json::{Value as Json, json};
use std::path::Path;

/// A skipped disk check: `free_percent` is null, never a made-up number.
pub(super) fn disk_skip(reason: &str) -> CheckResult {
    CheckResult::skip(HealthCheck::DiskSpace, reason).with("free_percent", Json::Null)
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
        }
        Ok(_) => disk_skip(&format!(
            "not exposed: the filesystem at `{}` reports no size",
            dir.display()
        )),
        Err(e) => disk_skip(&format!(
            "not exposed: cannot measure `{}`: {e}",
            dir.display()
        )),
    }
}

/// Bytes available to unprivileged users, and the filesystem's size.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
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
    use super::statvfs;
    use std::path::Path;

    #[test]
    fn statvfs_measures_a_real_filesystem() {
        let (free, total) = statvfs(Path::new("/")).unwrap();
        assert!(total > 0 && free <= total);
        assert!(statvfs(Path::new("/no/such/dir")).is_err());
    }
}
