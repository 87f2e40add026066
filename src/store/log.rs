//! The request log: how request rows are kept while their run's load is on.
//!
//! Inserting a row into `requests` costs SQLite about a microsecond (a record of 15 columns
//! built and placed in the table's B-tree), on a thread that shares the client node's cores
//! with the load generator. During the load the writer therefore appends each drain's rows
//! to `request_log` as one chunk: the rows encoded back to back in a compact binary form, one
//! BLOB per drain. A chunk costs tens of nanoseconds per row. Chunks are committed like the
//! rows were (at least every [`super::COMMIT_INTERVAL`]), so a crash loses no more than before.
//!
//! When the run ends (its `FinishRun`) the writer moves the run's chunks into `requests` (each
//! batch of chunks inserted and deleted in one transaction): the rows are then where SQL of a
//! user's own has always found them. A run whose process died before that (SIGKILL, a node
//! failure, a full disk) leaves its chunks; the next writer of the file moves them. Readers
//! never write: the request scans and counts of [`super::read`] read the log's rows where
//! they are.
//!
//! Each chunk also carries its rows' count, error count and first and last send times, so that
//! `status` shows a running job's progress without decoding anything.

use super::RequestRow;
use crate::model::ErrorClass;
use rusqlite::{params, Connection};
use std::sync::Arc;

/// Format version, the first byte of every chunk.
const VERSION: u8 = 1;

const FIRST_BYTE: u8 = 1;
const ERROR: u8 = 1 << 1;
const HTTP_STATUS: u8 = 1 << 2;
const WARMUP: u8 = 1 << 3;
const INPUT_TOKENS: u8 = 1 << 4;
const OUTPUT_TOKENS: u8 = 1 << 5;
const TOKENS_FROM_SERVER: u8 = 1 << 6;
const ITL: u8 = 1 << 7;

/// What a chunk says of its rows without being decoded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkSummary {
    pub rows: i64,
    pub errors: i64,
    pub first_sent_ns: Option<i64>,
    pub last_sent_ns: Option<i64>,
}

/// Encode `rows` into `out` (cleared first) and summarize them.
pub(super) fn encode(rows: &[RequestRow], out: &mut Vec<u8>) -> ChunkSummary {
    out.clear();
    out.reserve(1 + rows.len() * 80);
    out.push(VERSION);
    let mut s = ChunkSummary::default();
    for r in rows {
        let mut flags = 0u8;
        let set = |flags: &mut u8, bit: u8, on: bool| {
            if on {
                *flags |= bit;
            }
        };
        set(&mut flags, FIRST_BYTE, r.first_byte_ns.is_some());
        set(&mut flags, ERROR, r.error_class.is_some());
        set(&mut flags, HTTP_STATUS, r.http_status.is_some());
        set(&mut flags, WARMUP, r.warmup);
        set(&mut flags, INPUT_TOKENS, r.input_tokens.is_some());
        set(&mut flags, OUTPUT_TOKENS, r.output_tokens.is_some());
        set(
            &mut flags,
            TOKENS_FROM_SERVER,
            r.tokens_from_server.is_some(),
        );
        set(&mut flags, ITL, r.itl_us.is_some());
        out.push(flags);
        out.extend_from_slice(&r.worker.to_le_bytes());
        out.extend_from_slice(&r.seq.to_le_bytes());
        let op = r.op.as_bytes();
        let op = &op[..op.len().min(255)];
        out.push(op.len() as u8);
        out.extend_from_slice(op);
        out.extend_from_slice(&r.scheduled_ns.to_le_bytes());
        out.extend_from_slice(&r.sent_ns.to_le_bytes());
        out.extend_from_slice(&r.done_ns.to_le_bytes());
        if let Some(t) = r.first_byte_ns {
            out.extend_from_slice(&t.to_le_bytes());
        }
        if let Some(c) = r.error_class {
            out.push(class_code(c));
        }
        if let Some(h) = r.http_status {
            out.extend_from_slice(&h.to_le_bytes());
        }
        out.extend_from_slice(&r.size_bytes.to_le_bytes());
        out.extend_from_slice(&r.bytes_sent.to_le_bytes());
        out.extend_from_slice(&r.bytes_received.to_le_bytes());
        if let Some(v) = r.input_tokens {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(v) = r.output_tokens {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(v) = r.tokens_from_server {
            out.push(u8::from(v));
        }
        if let Some(itl) = &r.itl_us {
            out.extend_from_slice(&(itl.len() as u32).to_le_bytes());
            out.extend_from_slice(itl);
        }
        s.rows += 1;
        s.errors += i64::from(r.error_class.is_some());
        s.first_sent_ns = Some(s.first_sent_ns.map_or(r.sent_ns, |t| t.min(r.sent_ns)));
        s.last_sent_ns = Some(s.last_sent_ns.map_or(r.sent_ns, |t| t.max(r.sent_ns)));
    }
    s
}

fn class_code(c: ErrorClass) -> u8 {
    ErrorClass::ALL
        .iter()
        .position(|x| *x == c)
        .expect("every class is in ALL") as u8
}

/// A reader over a chunk's bytes.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("request log chunk ends inside a row".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }
}

/// Decode a chunk of `run_id` into `out` (appended).
pub(super) fn decode(
    run_id: &Arc<str>,
    body: &[u8],
    out: &mut Vec<RequestRow>,
) -> Result<(), String> {
    let mut b = Bytes(body);
    let v = b.u8()?;
    if v != VERSION {
        return Err(format!(
            "request log chunk of format {v} (this build reads {VERSION})"
        ));
    }
    let mut last_op: &'static str = "";
    while !b.0.is_empty() {
        let flags = b.u8()?;
        let on = |bit: u8| flags & bit != 0;
        let worker = b.u32()?;
        let seq = b.u64()?;
        let n = usize::from(b.u8()?);
        let op_bytes = b.take(n)?;
        if op_bytes != last_op.as_bytes() {
            let op = std::str::from_utf8(op_bytes).map_err(|_| "operation name is not UTF-8")?;
            last_op = crate::model::intern(op);
        }
        let scheduled_ns = b.i64()?;
        let sent_ns = b.i64()?;
        let done_ns = b.i64()?;
        let first_byte_ns = if on(FIRST_BYTE) { Some(b.i64()?) } else { None };
        let error_class = if on(ERROR) {
            let c = usize::from(b.u8()?);
            Some(
                *ErrorClass::ALL
                    .get(c)
                    .ok_or("unknown error class in the request log")?,
            )
        } else {
            None
        };
        let http_status = if on(HTTP_STATUS) {
            Some(b.u16()?)
        } else {
            None
        };
        let size_bytes = b.u64()?;
        let bytes_sent = b.u64()?;
        let bytes_received = b.u64()?;
        let input_tokens = if on(INPUT_TOKENS) {
            Some(b.u64()?)
        } else {
            None
        };
        let output_tokens = if on(OUTPUT_TOKENS) {
            Some(b.u64()?)
        } else {
            None
        };
        let tokens_from_server = if on(TOKENS_FROM_SERVER) {
            Some(b.u8()? != 0)
        } else {
            None
        };
        let itl_us = if on(ITL) {
            let n = b.u32()? as usize;
            Some(b.take(n)?.to_vec())
        } else {
            None
        };
        out.push(RequestRow {
            run_id: run_id.clone(),
            worker,
            seq,
            op: last_op,
            scheduled_ns,
            sent_ns,
            first_byte_ns,
            done_ns,
            error_class,
            http_status,
            size_bytes,
            bytes_sent,
            bytes_received,
            warmup: on(WARMUP),
            input_tokens,
            output_tokens,
            tokens_from_server,
            itl_us,
        });
    }
    Ok(())
}

/// Append one chunk of `run_id`'s rows (encoded in `body`).
pub(super) fn append(
    conn: &Connection,
    run_id: &str,
    s: ChunkSummary,
    body: &[u8],
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO request_log (run_id, rows, errors, first_sent_ns, last_sent_ns, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        run_id,
        s.rows,
        s.errors,
        s.first_sent_ns,
        s.last_sent_ns,
        body
    ])?;
    Ok(())
}

/// Whether the file has the log's table (files of schema 3 on).
pub(super) fn has_log(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'request_log'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

/// Move `run_id`'s chunks into `requests` through `insert`, a batch of chunks at a time: each
/// batch's rows are inserted and its chunks deleted in the same transaction, then `commit`
/// ends that transaction and begins the next (a long run's rows do not wait in one huge
/// transaction; a crash between batches leaves each row in exactly one of the two tables).
/// Returns the rows moved.
pub(super) fn expand_run(
    conn: &Connection,
    run_id: &str,
    insert: &mut dyn FnMut(&str, &[RequestRow]) -> rusqlite::Result<()>,
    commit: &mut dyn FnMut() -> rusqlite::Result<()>,
) -> rusqlite::Result<u64> {
    let run: Arc<str> = Arc::from(run_id);
    let mut rows = Vec::new();
    let mut moved = 0u64;
    let mut last = 0i64;
    loop {
        // A bounded batch of chunks at a time (a long run's log can hold millions of rows).
        let mut st = conn.prepare_cached(
            "SELECT rowid, body FROM request_log WHERE run_id = ?1 AND rowid > ?2 \
             ORDER BY rowid LIMIT 64",
        )?;
        let mut q = st.query(params![run_id, last])?;
        let mut any = false;
        while let Some(r) = q.next()? {
            any = true;
            last = r.get(0)?;
            let body = r.get_ref(1)?.as_blob()?;
            decode(&run, body, &mut rows).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, e.into())
            })?;
        }
        drop(q);
        if !any {
            break;
        }
        insert(run_id, &rows)?;
        conn.prepare_cached("DELETE FROM request_log WHERE run_id = ?1 AND rowid <= ?2")?
            .execute(params![run_id, last])?;
        moved += rows.len() as u64;
        rows.clear();
        commit()?;
    }
    Ok(moved)
}

/// What the log holds of `run_id`, summed over its chunks (nothing for a file without the
/// log's table).
pub(super) fn logged(conn: &Connection, run_id: &str) -> rusqlite::Result<ChunkSummary> {
    if !has_log(conn) {
        return Ok(ChunkSummary::default());
    }
    conn.prepare_cached(
        "SELECT coalesce(sum(rows), 0), coalesce(sum(errors), 0), min(first_sent_ns), \
         max(last_sent_ns) FROM request_log WHERE run_id = ?1",
    )?
    .query_row([run_id], |r| {
        Ok(ChunkSummary {
            rows: r.get(0)?,
            errors: r.get(1)?,
            first_sent_ns: r.get(2)?,
            last_sent_ns: r.get(3)?,
        })
    })
}

/// The runs that have chunks in the log.
pub(super) fn logged_runs(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    if !has_log(conn) {
        return Ok(Vec::new());
    }
    let mut st = conn.prepare("SELECT DISTINCT run_id FROM request_log")?;
    let runs = st.query_map([], |r| r.get(0))?.collect();
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(run: &Arc<str>) -> Vec<RequestRow> {
        let base = RequestRow {
            run_id: run.clone(),
            worker: 3,
            seq: 1 << 40,
            op: "select",
            scheduled_ns: 1_700_000_000_000_000_000,
            sent_ns: 1_700_000_000_000_000_100,
            first_byte_ns: Some(1_700_000_000_000_050_000),
            done_ns: 1_700_000_000_000_090_000,
            error_class: None,
            http_status: Some(200),
            size_bytes: 4096,
            bytes_sent: 77,
            bytes_received: u64::MAX,
            warmup: true,
            input_tokens: None,
            output_tokens: None,
            tokens_from_server: None,
            itl_us: None,
        };
        let mut out = vec![base.clone()];
        // Every optional field absent, then present, one class after the other.
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            let mut r = base.clone();
            r.op = if i % 2 == 0 { "chat" } else { "" };
            r.seq = i as u64;
            r.first_byte_ns = None;
            r.error_class = Some(*c);
            r.http_status = None;
            r.warmup = false;
            r.input_tokens = Some(i as u64);
            r.output_tokens = Some(1000 + i as u64);
            r.tokens_from_server = Some(i % 2 == 0);
            r.itl_us = Some(vec![i as u8; i * 4]);
            r.scheduled_ns = -5;
            out.push(r);
        }
        out
    }

    fn same(a: &RequestRow, b: &RequestRow) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn rows_come_back_as_they_went_in_with_their_summary() {
        let run: Arc<str> = "r".into();
        let rows = rows(&run);
        let mut body = Vec::new();
        let s = encode(&rows, &mut body);
        assert_eq!(
            s,
            ChunkSummary {
                rows: rows.len() as i64,
                errors: ErrorClass::ALL.len() as i64,
                first_sent_ns: Some(1_700_000_000_000_000_100),
                last_sent_ns: Some(1_700_000_000_000_000_100),
            }
        );
        let mut back = Vec::new();
        decode(&run, &body, &mut back).unwrap();
        assert_eq!(back.len(), rows.len());
        for (a, b) in rows.iter().zip(&back) {
            assert!(same(a, b), "{a:?}\n{b:?}");
        }
        // A cut chunk and another format are errors, not rows.
        assert!(decode(&run, &body[..body.len() - 1], &mut Vec::new()).is_err());
        let mut other = body.clone();
        other[0] = 9;
        assert!(decode(&run, &other, &mut Vec::new())
            .unwrap_err()
            .contains("format 9"));
        assert_eq!(encode(&[], &mut body), ChunkSummary::default());
        decode(&run, &body, &mut back).unwrap();
    }

    /// Chunks a killed run left (written here as its writer did) are read where they are by
    /// the request scans and counts, and move into `requests` when the next writer opens the
    /// file; nothing is counted twice.
    #[test]
    fn a_killed_runs_log_is_read_in_place_and_moved_by_the_next_writer() {
        use crate::store::read;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.db");
        let run: Arc<str> = "killed".into();
        {
            let c = super::super::open(&p).unwrap();
            c.execute(
                "INSERT INTO runs (run_id, campaign, service, service_kind, status, \
                 started_ns, arrival, clients, duration_s, warmup_s, seed, recipe_json, \
                 recipe_sha256, host, tool_version) VALUES ('killed', 'c', 's', 'http', \
                 'running', 0, 'closed', 1, 1, 0, 1, '{}', '', 'h', 'v')",
                [],
            )
            .unwrap();
            let mut body = Vec::new();
            for _ in 0..3 {
                let s = encode(&rows(&run), &mut body);
                append(&c, &run, s, &body).unwrap();
            }
        }
        let per_chunk = rows(&run).len() as u64;
        // (rows, measured rows, measured errors, last measured done, rows in `requests`)
        let seen = || {
            let c = read::open_read_only(&p).unwrap();
            let (mut measured, mut errors) = (0, 0);
            read::scan_requests(&c, "killed", true, |v| {
                if let Some(v) = v {
                    measured += 1;
                    errors += u64::from(!v.ok);
                    assert_eq!(v.output_tokens.is_some(), !v.ok);
                }
            })
            .unwrap();
            let stored: i64 = c
                .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
                .unwrap();
            (
                read::request_count(&c, "killed").unwrap(),
                measured,
                errors,
                read::last_measured_done_ns(&c, "killed").unwrap(),
                stored,
            )
        };
        let expect = |stored| {
            (
                3 * per_chunk,
                3 * 9,
                3 * 9,
                Some(1_700_000_000_000_090_000),
                stored,
            )
        };
        assert_eq!(seen(), expect(0), "read in place");
        crate::store::Store::open(&p).unwrap().close().unwrap();
        assert_eq!(
            seen(),
            expect(3 * per_chunk as i64),
            "moved by the next writer"
        );
        let c = read::open_read_only(&p).unwrap();
        let left: i64 = c
            .query_row("SELECT count(*) FROM request_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }
}
