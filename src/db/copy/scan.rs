//! The raw SQLite reader: a query stepped on this thread through the connection's handle,
//! and the values it yields as stored; the source shared by two lanes, read in turns in one
//! snapshot. The copy's one `unsafe` code lives here.

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
        let (stmt, columns) = prepare(&mut handle, sql)?;
        Ok(Scan {
            handle,
            stmt,
            columns,
        })
    }

    /// Steps to the next row; `false` at the end. Values of the previous row are gone after
    /// this, which the `&mut self` borrow enforces.
    pub(super) fn next(&mut self) -> Result<bool, OpError> {
        step(&mut self.handle, self.stmt)
    }

    /// Column `i` of the current row, as stored (no conversion between storage classes).
    pub(super) fn value(&self, i: usize) -> Val<'_> {
        self.row().value(i)
    }

    /// The current row.
    pub(super) fn row(&self) -> Row<'_> {
        Row {
            stmt: self.stmt,
            columns: self.columns,
            _row: std::marker::PhantomData,
        }
    }
}

/// The row a statement is on, borrowed until the statement steps again.
pub(super) struct Row<'r> {
    stmt: std::ptr::NonNull<libsqlite3_sys::sqlite3_stmt>,
    columns: usize,
    _row: std::marker::PhantomData<&'r ()>,
}

impl<'r> Row<'r> {
    /// Column `i`, as stored (no conversion between storage classes).
    pub(super) fn value(&self, i: usize) -> Val<'r> {
        let Ok(col) = std::ffi::c_int::try_from(i) else {
            return Val::Null;
        };
        if i >= self.columns {
            return Val::Null;
        }
        let stmt = self.stmt.as_ptr();
        // SAFETY: the statement is on a row (a `Row` is made only after a step returned a row)
        // and `col` is in range. The blob pointer stays valid until the statement steps again
        // or is finalized, both of which end this borrow first; the length is read after the
        // pointer, as SQLite requires, and a NULL pointer means empty.
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

type Stmt = std::ptr::NonNull<libsqlite3_sys::sqlite3_stmt>;

/// Prepares `sql` on the locked connection: the statement and its column count.
fn prepare(
    handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>,
    sql: &str,
) -> Result<(Stmt, usize), OpError> {
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
    // SAFETY: `stmt` was just prepared and is not finalized until its owner drops it.
    let columns = unsafe { libsqlite3_sys::sqlite3_column_count(stmt.as_ptr()) };
    Ok((stmt, usize::try_from(columns).unwrap_or(0)))
}

/// Steps a statement of the locked connection: `true` on a row, `false` at the end.
fn step(handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>, stmt: Stmt) -> Result<bool, OpError> {
    // SAFETY: the statement is live, prepared on this connection, which `handle` holds.
    match unsafe { libsqlite3_sys::sqlite3_step(stmt.as_ptr()) } {
        libsqlite3_sys::SQLITE_ROW => Ok(true),
        libsqlite3_sys::SQLITE_DONE => Ok(false),
        _ => Err(OpError::Failed(format!(
            "reading the source: {}",
            errmsg(handle.as_raw_handle().as_ptr())
        ))),
    }
}

/// The source shared by the lanes of a copy: one connection, in one read transaction (one
/// snapshot), behind an async lock. Whoever holds the lock has the connection to itself;
/// statements of a `Cursor` live across the lock's release and step only under it.
pub(super) struct Source {
    conn: tokio::sync::Mutex<SqliteConnection>,
    /// Statements of cursors dropped without their close (an error path): finalized under
    /// the lock, by the next to take it.
    orphans: std::cell::RefCell<Vec<Stmt>>,
}

impl Source {
    pub(super) fn new(conn: SqliteConnection) -> Self {
        Source {
            conn: tokio::sync::Mutex::new(conn),
            orphans: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The connection, to oneself until the guard is dropped.
    pub(super) async fn lock(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, SqliteConnection>, OpError> {
        let mut conn = self.conn.lock().await;
        self.finalize_orphans(&mut conn).await?;
        Ok(conn)
    }

    /// The connection back, every statement of the lanes finalized.
    pub(super) async fn into_inner(self) -> Result<SqliteConnection, OpError> {
        self.lock().await.map(|_| ())?;
        Ok(self.conn.into_inner())
    }

    async fn finalize_orphans(&self, conn: &mut SqliteConnection) -> Result<(), OpError> {
        if self.orphans.borrow().is_empty() {
            return Ok(());
        }
        let _handle = conn.lock_handle().await.map_err(db_error)?;
        for stmt in self.orphans.borrow_mut().drain(..) {
            // SAFETY: the statement was prepared on this connection, is finalized once, here,
            // and the connection is held (no other use of it meanwhile).
            unsafe {
                libsqlite3_sys::sqlite3_finalize(stmt.as_ptr());
            }
        }
        Ok(())
    }
}

/// How a `Cursor::fill` ended.
pub(super) enum Filled<B> {
    /// The row callback asked for a pause; rows remain.
    Paused,
    /// The rows ended.
    End,
    /// The row callback stopped the scan.
    Stopped(B),
}

/// A query on the shared source, stepped a batch of rows at a time under its lock, so two
/// lanes read the one snapshot in turns.
pub(super) struct Cursor<'s> {
    src: &'s Source,
    stmt: Option<Stmt>,
    columns: usize,
}

impl<'s> Cursor<'s> {
    pub(super) async fn new(src: &'s Source, sql: &str) -> Result<Cursor<'s>, OpError> {
        let mut conn = src.lock().await?;
        let mut handle = conn.lock_handle().await.map_err(db_error)?;
        let (stmt, columns) = prepare(&mut handle, sql)?;
        Ok(Cursor {
            src,
            stmt: Some(stmt),
            columns,
        })
    }

    /// Steps rows under the source's lock, handing each to `row`, until it returns
    /// `Ok(false)` (pause), `Err` (stop) or the rows end.
    pub(super) async fn fill<B>(
        &mut self,
        mut row: impl FnMut(&Row<'_>) -> Result<bool, B>,
    ) -> Result<Filled<B>, OpError> {
        let Some(stmt) = self.stmt else {
            return Ok(Filled::End);
        };
        let mut conn = self.src.lock().await?;
        let mut handle = conn.lock_handle().await.map_err(db_error)?;
        loop {
            if !step(&mut handle, stmt)? {
                return Ok(Filled::End);
            }
            let r = Row {
                stmt,
                columns: self.columns,
                _row: std::marker::PhantomData,
            };
            match row(&r) {
                Ok(true) => {}
                Ok(false) => return Ok(Filled::Paused),
                Err(b) => return Ok(Filled::Stopped(b)),
            }
        }
    }

    /// Finalizes the statement under the source's lock.
    pub(super) async fn close(mut self) {
        let Some(stmt) = self.stmt.take() else {
            return;
        };
        self.src.orphans.borrow_mut().push(stmt);
        let _ = self.src.lock().await;
    }
}

impl Drop for Cursor<'_> {
    fn drop(&mut self) {
        // Never finalized here: the other lane may be using the connection. The next to take
        // the lock finalizes it.
        if let Some(stmt) = self.stmt.take() {
            self.src.orphans.borrow_mut().push(stmt);
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
