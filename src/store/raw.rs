//! A prepared statement bound, stepped and read through SQLite's C API, for the two per-request
//! paths: the writer's inserts and the analysis's scan of a run's rows. Binding through
//! rusqlite's `ToSql` costs about as much again as SQLite's own bind and copies every text
//! (`SQLITE_TRANSIENT`), where the request rows' texts are `&'static str` (the operation, the
//! error class) that SQLite can keep by reference (`SQLITE_STATIC`); reading a column through
//! rusqlite asks SQLite for its type first, then for its value. The statement borrows its
//! connection, so it cannot outlive it.

use rusqlite::{ffi, Connection};
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::c_int;

pub(super) struct RawStatement<'c> {
    db: *mut ffi::sqlite3,
    st: *mut ffi::sqlite3_stmt,
    _conn: PhantomData<&'c Connection>,
}

/// The connection's last error as a rusqlite error (what rusqlite itself would return).
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is the open connection the statement was prepared on; `sqlite3_errmsg`
    // returns a NUL-terminated string owned by it, copied at once.
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
        .to_string_lossy()
        .into_owned();
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), Some(msg))
}

impl<'c> RawStatement<'c> {
    pub(super) fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        // SAFETY: the handle is the live connection `conn`, borrowed for the statement's whole
        // life ('c); SQLite reads `sql` for `len` bytes only.
        unsafe {
            let db = conn.handle();
            let mut st = std::ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                c_int::try_from(sql.len()).unwrap_or(c_int::MAX),
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut st,
                std::ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK || st.is_null() {
                if !st.is_null() {
                    ffi::sqlite3_finalize(st);
                }
                return Err(error(db, rc));
            }
            Ok(RawStatement {
                db,
                st,
                _conn: PhantomData,
            })
        }
    }

    /// Step a query: `true` with a row to read, `false` when done (the statement is then
    /// reset; its bindings stay).
    pub(super) fn next_row(&mut self) -> rusqlite::Result<bool> {
        // SAFETY: `st` is a live prepared statement (finalized only in Drop).
        match unsafe { ffi::sqlite3_step(self.st) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => {
                // SAFETY: as above.
                self.check(unsafe { ffi::sqlite3_reset(self.st) })?;
                Ok(false)
            }
            rc => {
                // SAFETY: as above.
                unsafe { ffi::sqlite3_reset(self.st) };
                Err(error(self.db, rc))
            }
        }
    }

    /// Column `i` (0-based) of the current row as an integer: SQLite's conversion (NULL is
    /// 0, a real is truncated). Only between a `next_row` that returned `true` and the next.
    #[inline]
    pub(super) fn column_i64(&self, i: usize) -> i64 {
        // SAFETY: `st` is live and has a current row (the caller's contract; without one
        // SQLite returns 0, it does not misbehave); an index out of range also gives 0.
        unsafe { ffi::sqlite3_column_int64(self.st, i as c_int) }
    }

    /// Column `i` as an integer, `None` when NULL or not a number.
    #[inline]
    pub(super) fn column_opt_i64(&self, i: usize) -> Option<i64> {
        // SAFETY: as in `column_i64`.
        match unsafe { ffi::sqlite3_column_type(self.st, i as c_int) } {
            ffi::SQLITE_INTEGER | ffi::SQLITE_FLOAT => Some(self.column_i64(i)),
            _ => None,
        }
    }

    /// Column `i`'s bytes when it is a text (`want_blob` false) or a blob (`want_blob` true),
    /// borrowed until the statement is stepped again.
    #[inline]
    pub(super) fn column_bytes(&self, i: usize, want_blob: bool) -> Option<&[u8]> {
        // SAFETY: as in `column_i64`. The pointer SQLite returns stays valid until the next
        // step, reset or finalize, each of which needs `&mut self` while this borrow of
        // `&self` lives; `sqlite3_column_bytes` is called after `_text`/`_blob`, as SQLite
        // documents, so no conversion invalidates the pointer.
        unsafe {
            let ty = ffi::sqlite3_column_type(self.st, i as c_int);
            let p: *const u8 = match (ty, want_blob) {
                (ffi::SQLITE_TEXT, false) => ffi::sqlite3_column_text(self.st, i as c_int),
                (ffi::SQLITE_BLOB, true) => ffi::sqlite3_column_blob(self.st, i as c_int).cast(),
                _ => return None,
            };
            let n = ffi::sqlite3_column_bytes(self.st, i as c_int);
            if p.is_null() || n <= 0 {
                return Some(&[]);
            }
            Some(std::slice::from_raw_parts(p, n as usize))
        }
    }

    #[inline]
    fn check(&self, rc: c_int) -> rusqlite::Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(self.db, rc))
        }
    }

    /// Parameter indices are 1-based; an index past the statement's parameters is an error
    /// (SQLITE_RANGE), not undefined behaviour.
    #[inline]
    pub(super) fn int(&mut self, i: usize, v: i64) -> rusqlite::Result<()> {
        // SAFETY: `st` is a live prepared statement (finalized only in Drop).
        self.check(unsafe { ffi::sqlite3_bind_int64(self.st, i as c_int, v) })
    }

    #[inline]
    pub(super) fn null(&mut self, i: usize) -> rusqlite::Result<()> {
        // SAFETY: as in `int`.
        self.check(unsafe { ffi::sqlite3_bind_null(self.st, i as c_int) })
    }

    #[inline]
    pub(super) fn opt_int(&mut self, i: usize, v: Option<i64>) -> rusqlite::Result<()> {
        match v {
            Some(v) => self.int(i, v),
            None => self.null(i),
        }
    }

    /// A `'static` text, bound by reference (SQLite keeps the pointer until it is rebound or
    /// the statement is finalized, which `'static` outlives).
    #[inline]
    pub(super) fn static_text(&mut self, i: usize, v: &'static str) -> rusqlite::Result<()> {
        // SAFETY: `v` lives for the whole program, so SQLITE_STATIC (no copy) is sound.
        unsafe { self.bind_text(i, v, ffi::SQLITE_STATIC()) }
    }

    /// A text SQLite copies (bound once per batch: the run id).
    pub(super) fn text(&mut self, i: usize, v: &str) -> rusqlite::Result<()> {
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the `len` bytes before returning.
        unsafe { self.bind_text(i, v, ffi::SQLITE_TRANSIENT()) }
    }

    /// Bind `v` to parameter `i` with `destructor`.
    ///
    /// # Safety
    /// With `SQLITE_STATIC`, `v` must outlive the binding (until rebound or finalized).
    #[inline]
    unsafe fn bind_text(
        &mut self,
        i: usize,
        v: &str,
        destructor: ffi::sqlite3_destructor_type,
    ) -> rusqlite::Result<()> {
        // SAFETY: `st` is a live prepared statement; SQLite reads `len` bytes of `v`, and keeps
        // the pointer only as the caller's contract on `destructor` allows.
        self.check(unsafe {
            ffi::sqlite3_bind_text(
                self.st,
                i as c_int,
                v.as_ptr().cast(),
                c_int::try_from(v.len()).unwrap_or(c_int::MAX),
                destructor,
            )
        })
    }

    /// A blob SQLite copies (`None`: NULL).
    pub(super) fn opt_blob(&mut self, i: usize, v: Option<&[u8]>) -> rusqlite::Result<()> {
        let Some(v) = v else {
            return self.null(i);
        };
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy the `len` bytes before returning.
        self.check(unsafe {
            ffi::sqlite3_bind_blob(
                self.st,
                i as c_int,
                v.as_ptr().cast(),
                c_int::try_from(v.len()).unwrap_or(c_int::MAX),
                ffi::SQLITE_TRANSIENT(),
            )
        })
    }

    /// Run the statement once (it must not return rows) and reset it; the bindings stay.
    pub(super) fn execute(&mut self) -> rusqlite::Result<()> {
        // SAFETY: as in `int`; a reset after any step is always allowed.
        let (step, reset) = unsafe {
            let step = ffi::sqlite3_step(self.st);
            (step, ffi::sqlite3_reset(self.st))
        };
        match step {
            ffi::SQLITE_DONE => self.check(reset),
            ffi::SQLITE_ROW => Err(rusqlite::Error::ExecuteReturnedResults),
            rc => Err(error(
                self.db,
                if reset != ffi::SQLITE_OK { reset } else { rc },
            )),
        }
    }
}

impl Drop for RawStatement<'_> {
    fn drop(&mut self) {
        // SAFETY: `st` was prepared by `prepare` and is finalized exactly once, here, while
        // its connection is still open (the 'c borrow).
        unsafe {
            ffi::sqlite3_finalize(self.st);
        }
    }
}
