//! The raw SQLite reader: a query stepped on this thread through the connection's handle,
//! and the values it yields as stored. The copy's one `unsafe` code lives here.

use super::{OpError, db_error};
use sqlx::sqlite::SqliteConnection;

/// A value as SQLite stored it, borrowed from the current row.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'r> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'r [u8]),
    Blob(&'r [u8]),
}

/// A query stepped on this thread through the connection's raw SQLite handle.
///
/// sqlx hands rows from its worker thread one by one through a channel, copying every value;
/// at a million rows that hand-off costs more than the rest of the copy. Here the statement
/// runs directly on the connection, which the lock guard keeps from the worker meanwhile.
pub(super) struct Scan<'c> {
    handle: sqlx::sqlite::LockedSqliteHandle<'c>,
    stmt: std::ptr::NonNull<libsqlite3_sys::sqlite3_stmt>,
    columns: usize,
}

impl<'c> Scan<'c> {
    /// Prepares `sql` on the connection, held locked until the scan is dropped.
    pub(super) async fn new(
        conn: &'c mut SqliteConnection,
        sql: &str,
    ) -> Result<Scan<'c>, OpError> {
        let mut handle = conn.lock_handle().await.map_err(db_error)?;
        let db = handle.as_raw_handle().as_ptr();
        let len = std::ffi::c_int::try_from(sql.len())
            .map_err(|_| OpError::Failed("query too long".to_owned()))?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `db` is the open connection, held exclusively through `handle`; the SQL
        // pointer and length describe a live `&str`; `stmt` is written by SQLite.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_prepare_v2(
                db,
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        let Some(stmt) = std::ptr::NonNull::new(stmt).filter(|_| rc == libsqlite3_sys::SQLITE_OK)
        else {
            return Err(OpError::Failed(format!(
                "reading the source: {}",
                errmsg(db)
            )));
        };
        // SAFETY: `stmt` was just prepared and is not finalized until drop.
        let columns = unsafe { libsqlite3_sys::sqlite3_column_count(stmt.as_ptr()) };
        Ok(Scan {
            handle,
            stmt,
            columns: usize::try_from(columns).unwrap_or(0),
        })
    }

    /// Steps to the next row; `false` at the end. Values of the previous row are gone after
    /// this, which the `&mut self` borrow enforces.
    pub(super) fn next(&mut self) -> Result<bool, OpError> {
        // SAFETY: the statement is live and only used through `self`.
        match unsafe { libsqlite3_sys::sqlite3_step(self.stmt.as_ptr()) } {
            libsqlite3_sys::SQLITE_ROW => Ok(true),
            libsqlite3_sys::SQLITE_DONE => Ok(false),
            _ => Err(OpError::Failed(format!(
                "reading the source: {}",
                errmsg(self.handle.as_raw_handle().as_ptr())
            ))),
        }
    }

    /// Column `i` of the current row, as stored (no conversion between storage classes).
    pub(super) fn value(&self, i: usize) -> Val<'_> {
        let Ok(col) = std::ffi::c_int::try_from(i) else {
            return Val::Null;
        };
        if i >= self.columns {
            return Val::Null;
        }
        let stmt = self.stmt.as_ptr();
        // SAFETY: the statement is on a row (callers read values only after `next` returned
        // true) and `col` is in range. The blob pointer stays valid until the next step or
        // finalize, both of which need `&mut self` and so end this borrow first; the length is
        // read after the pointer, as SQLite requires, and a NULL pointer means empty.
        unsafe {
            match libsqlite3_sys::sqlite3_column_type(stmt, col) {
                libsqlite3_sys::SQLITE_INTEGER => {
                    Val::Int(libsqlite3_sys::sqlite3_column_int64(stmt, col))
                }
                libsqlite3_sys::SQLITE_FLOAT => {
                    Val::Real(libsqlite3_sys::sqlite3_column_double(stmt, col))
                }
                class @ (libsqlite3_sys::SQLITE_TEXT | libsqlite3_sys::SQLITE_BLOB) => {
                    let ptr = libsqlite3_sys::sqlite3_column_blob(stmt, col).cast::<u8>();
                    let len = libsqlite3_sys::sqlite3_column_bytes(stmt, col);
                    let bytes = match usize::try_from(len) {
                        Ok(n) if n > 0 && !ptr.is_null() => std::slice::from_raw_parts(ptr, n),
                        _ => &[],
                    };
                    if class == libsqlite3_sys::SQLITE_TEXT {
                        Val::Text(bytes)
                    } else {
                        Val::Blob(bytes)
                    }
                }
                _ => Val::Null,
            }
        }
    }
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        // SAFETY: finalized once, here; the handle is still held.
        unsafe {
            libsqlite3_sys::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// The connection's last error message.
fn errmsg(db: *mut libsqlite3_sys::sqlite3) -> String {
    // SAFETY: `db` is an open connection; SQLite returns a NUL-terminated string it owns,
    // copied here before anything else can change it.
    unsafe {
        let msg = libsqlite3_sys::sqlite3_errmsg(db);
        if msg.is_null() {
            return "unknown SQLite error".to_owned();
        }
        std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned()
    }
}
