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

/// Format versions, the first byte of every chunk. 1: rows of fixed-width fields (still
/// read). 2 (written): segments of rows, each field a LEB128 varint and each row's times and
/// sequence number relative to the row before it (about 18 bytes for an HTTP request against
/// 75), so that the writer has a quarter of the bytes to write while the load is on.
const V1: u8 = 1;
const V2: u8 = 2;

// Format 1's flags.
const FIRST_BYTE: u8 = 1;
const ERROR: u8 = 1 << 1;
const HTTP_STATUS: u8 = 1 << 2;
const WARMUP: u8 = 1 << 3;
const INPUT_TOKENS: u8 = 1 << 4;
const OUTPUT_TOKENS: u8 = 1 << 5;
const TOKENS_FROM_SERVER: u8 = 1 << 6;
const ITL: u8 = 1 << 7;

// Format 2's flags: the first byte's, and (with `LLM`) a second byte of format 1's LLM flags.
const NEW_OP: u8 = 1 << 4;
const LLM: u8 = 1 << 5;
const LLM_FLAGS: u8 = INPUT_TOKENS | OUTPUT_TOKENS | TOKENS_FROM_SERVER | ITL;

/// What a chunk says of its rows without being decoded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkSummary {
    pub rows: i64,
    pub errors: i64,
    pub first_sent_ns: Option<i64>,
    pub last_sent_ns: Option<i64>,
}

/// Rows encoded into one segment of a format-2 chunk: each relative to the row before it.
#[derive(Debug, Default)]
pub(super) struct Encoder {
    prev_worker: u32,
    prev_seq: u64,
    prev_sent_ns: i64,
    op: Option<&'static str>,
    summary: ChunkSummary,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

impl Encoder {
    /// Append `r` to the segment `out` (which holds this encoder's rows only).
    pub(super) fn push(&mut self, out: &mut Vec<u8>, r: &RequestRow) {
        let new_op = !matches!(self.op, Some(op) if std::ptr::eq(op, r.op) || op == r.op);
        let bit = |on: bool, bit: u8| if on { bit } else { 0 };
        let llm = bit(r.input_tokens.is_some(), INPUT_TOKENS)
            | bit(r.output_tokens.is_some(), OUTPUT_TOKENS)
            | bit(r.tokens_from_server.is_some(), TOKENS_FROM_SERVER)
            | bit(r.itl_us.is_some(), ITL);
        let flags = bit(r.first_byte_ns.is_some(), FIRST_BYTE)
            | bit(r.error_class.is_some(), ERROR)
            | bit(r.http_status.is_some(), HTTP_STATUS)
            | bit(r.warmup, WARMUP)
            | bit(new_op, NEW_OP)
            | bit(llm != 0, LLM);
        out.push(flags);
        if llm != 0 {
            out.push(llm);
        }
        put_varint(
            out,
            zigzag(i64::from(r.worker) - i64::from(self.prev_worker)),
        );
        put_varint(out, zigzag(r.seq.wrapping_sub(self.prev_seq) as i64));
        if new_op {
            let op = &r.op.as_bytes()[..r.op.len().min(255)];
            out.push(op.len() as u8);
            out.extend_from_slice(op);
            self.op = Some(r.op);
        }
        put_varint(out, zigzag(r.sent_ns.wrapping_sub(self.prev_sent_ns)));
        put_varint(out, zigzag(r.sent_ns.wrapping_sub(r.scheduled_ns)));
        put_varint(out, zigzag(r.done_ns.wrapping_sub(r.sent_ns)));
        if let Some(t) = r.first_byte_ns {
            put_varint(out, zigzag(t.wrapping_sub(r.sent_ns)));
        }
        if let Some(c) = r.error_class {
            out.push(class_code(c));
        }
        if let Some(h) = r.http_status {
            put_varint(out, u64::from(h));
        }
        put_varint(out, r.size_bytes);
        put_varint(out, r.bytes_sent);
        put_varint(out, r.bytes_received);
        if let Some(v) = r.input_tokens {
            put_varint(out, v);
        }
        if let Some(v) = r.output_tokens {
            put_varint(out, v);
        }
        if let Some(v) = r.tokens_from_server {
            out.push(u8::from(v));
        }
        if let Some(itl) = &r.itl_us {
            put_varint(out, itl.len() as u64);
            out.extend_from_slice(itl);
        }
        (self.prev_worker, self.prev_seq, self.prev_sent_ns) = (r.worker, r.seq, r.sent_ns);
        let s = &mut self.summary;
        s.rows += 1;
        s.errors += i64::from(r.error_class.is_some());
        s.first_sent_ns = Some(s.first_sent_ns.map_or(r.sent_ns, |t| t.min(r.sent_ns)));
        s.last_sent_ns = Some(s.last_sent_ns.map_or(r.sent_ns, |t| t.max(r.sent_ns)));
    }

    /// What the segment holds so far.
    pub(super) fn summary(&self) -> ChunkSummary {
        self.summary
    }
}

impl ChunkSummary {
    /// The summary of this chunk's rows and `o`'s together.
    pub(super) fn merge(self, o: ChunkSummary) -> ChunkSummary {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        ChunkSummary {
            rows: self.rows + o.rows,
            errors: self.errors + o.errors,
            first_sent_ns: pick(self.first_sent_ns, o.first_sent_ns, i64::min),
            last_sent_ns: pick(self.last_sent_ns, o.last_sent_ns, i64::max),
        }
    }
}

/// A format-2 chunk in the making: segments appended one after the other.
pub(super) fn begin_chunk(out: &mut Vec<u8>) {
    out.clear();
    out.push(V2);
}

/// Append the segment `seg` (an [`Encoder`]'s rows) to the chunk `out`.
pub(super) fn append_segment(out: &mut Vec<u8>, seg: &[u8]) {
    put_varint(out, seg.len() as u64);
    out.extend_from_slice(seg);
}

/// Encode `rows` into `out` (cleared first) as a chunk of one segment, and summarize them
/// (the writer's tests write a killed run's chunks with it).
#[cfg(test)]
pub(super) fn encode(rows: &[RequestRow], out: &mut Vec<u8>) -> ChunkSummary {
    let (mut enc, mut seg) = (Encoder::default(), Vec::with_capacity(rows.len() * 24));
    for r in rows {
        enc.push(&mut seg, r);
    }
    begin_chunk(out);
    if !seg.is_empty() {
        append_segment(out, &seg);
    }
    enc.summary()
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
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("request log varint longer than 10 bytes".into())
    }
    fn zigzag(&mut self) -> Result<i64, String> {
        Ok(unzigzag(self.varint()?))
    }
}

fn error_class(code: u8) -> Result<ErrorClass, String> {
    ErrorClass::ALL
        .get(usize::from(code))
        .copied()
        .ok_or_else(|| "unknown error class in the request log".into())
}

fn op_name(bytes: &[u8]) -> Result<&'static str, String> {
    let op = std::str::from_utf8(bytes).map_err(|_| "operation name is not UTF-8")?;
    Ok(crate::model::intern(op))
}

/// Decode a chunk of `run_id` into `out` (appended).
pub(super) fn decode(
    run_id: &Arc<str>,
    body: &[u8],
    out: &mut Vec<RequestRow>,
) -> Result<(), String> {
    let mut b = Bytes(body);
    match b.u8()? {
        V1 => decode_rows(run_id, b, V1, out),
        V2 => {
            while !b.0.is_empty() {
                let n = usize::try_from(b.varint()?).map_err(|_| "segment too long")?;
                decode_rows(run_id, Bytes(b.take(n)?), V2, out)?;
            }
            Ok(())
        }
        v => Err(format!(
            "request log chunk of format {v} (this build reads {V1} and {V2})"
        )),
    }
}

/// `f()` where `on`, else None.
fn opt<T>(on: bool, f: impl FnOnce() -> Result<T, String>) -> Result<Option<T>, String> {
    on.then(f).transpose()
}

/// The rows of a format-1 chunk (after its version byte) or of a format-2 segment.
fn decode_rows(
    run_id: &Arc<str>,
    mut b: Bytes<'_>,
    format: u8,
    out: &mut Vec<RequestRow>,
) -> Result<(), String> {
    let v2 = format == V2;
    // Format 2: each row relative to the one before.
    let (mut worker, mut seq, mut sent_ns, mut op) = (0u32, 0u64, 0i64, "");
    while !b.0.is_empty() {
        let flags = b.u8()?;
        let on = |bit: u8| flags & bit != 0;
        let llm = match (v2, on(LLM)) {
            (true, true) => b.u8()? & LLM_FLAGS,
            (true, false) => 0,
            (false, _) => flags & LLM_FLAGS,
        };
        let has = |bit: u8| llm & bit != 0;
        let (scheduled_ns, done_ns, first_byte_ns);
        if v2 {
            worker = u32::try_from(i64::from(worker) + b.zigzag()?)
                .map_err(|_| "worker out of range in the request log")?;
            seq = seq.wrapping_add(b.zigzag()? as u64);
            if on(NEW_OP) {
                let n = usize::from(b.u8()?);
                op = op_name(b.take(n)?)?;
            }
            sent_ns = sent_ns.wrapping_add(b.zigzag()?);
            scheduled_ns = sent_ns.wrapping_sub(b.zigzag()?);
            done_ns = sent_ns.wrapping_add(b.zigzag()?);
            first_byte_ns = opt(on(FIRST_BYTE), || Ok(sent_ns.wrapping_add(b.zigzag()?)))?;
        } else {
            (worker, seq) = (b.u32()?, b.u64()?);
            let n = usize::from(b.u8()?);
            let name = b.take(n)?;
            if name != op.as_bytes() {
                op = op_name(name)?;
            }
            (scheduled_ns, sent_ns, done_ns) = (b.i64()?, b.i64()?, b.i64()?);
            first_byte_ns = opt(on(FIRST_BYTE), || b.i64())?;
        }
        let error_class = opt(on(ERROR), || error_class(b.u8()?))?;
        let http_status = opt(on(HTTP_STATUS), || match v2 {
            true => u16::try_from(b.varint()?).map_err(|_| "HTTP status out of range".into()),
            false => b.u16(),
        })?;
        let mut num = || if v2 { b.varint() } else { b.u64() };
        let (size_bytes, bytes_sent, bytes_received) = (num()?, num()?, num()?);
        let input_tokens = opt(has(INPUT_TOKENS), &mut num)?;
        let output_tokens = opt(has(OUTPUT_TOKENS), &mut num)?;
        let tokens_from_server = opt(has(TOKENS_FROM_SERVER), || Ok(b.u8()? != 0))?;
        let itl_us = opt(has(ITL), || {
            let n = if v2 { b.varint()? } else { u64::from(b.u32()?) };
            let n = usize::try_from(n).map_err(|_| "gaps too long")?;
            Ok(b.take(n)?.to_vec())
        })?;
        out.push(RequestRow {
            run_id: run_id.clone(),
            worker,
            seq,
            op,
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

    /// Format 1, as the writer of schema 3's first release wrote it.
    fn encode_v1(rows: &[RequestRow], out: &mut Vec<u8>) -> ChunkSummary {
        out.clear();
        out.reserve(1 + rows.len() * 80);
        out.push(V1);
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

    /// A chunk of format 1 (a killed run of the previous release left it) still decodes, to the
    /// same rows as format 2's; format 2 is a quarter of its size for HTTP-like rows.
    #[test]
    fn format_1_chunks_still_decode_and_format_2_is_smaller() {
        let run: Arc<str> = "r".into();
        let rows = rows(&run);
        let (mut v1, mut v2) = (Vec::new(), Vec::new());
        assert_eq!(encode_v1(&rows, &mut v1), encode(&rows, &mut v2));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        decode(&run, &v1, &mut a).unwrap();
        decode(&run, &v2, &mut b).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let http: Vec<RequestRow> = (0..1000)
            .map(|i| RequestRow {
                run_id: run.clone(),
                worker: i % 16,
                seq: u64::from(i),
                op: "GET",
                scheduled_ns: 1_700_000_000_000_000_000 + i64::from(i) * 5_000,
                sent_ns: 1_700_000_000_000_000_000 + i64::from(i) * 5_000,
                first_byte_ns: Some(1_700_000_000_000_090_000 + i64::from(i) * 5_000),
                done_ns: 1_700_000_000_000_090_000 + i64::from(i) * 5_000,
                error_class: None,
                http_status: Some(200),
                size_bytes: 0,
                bytes_sent: 0,
                bytes_received: 612,
                warmup: false,
                input_tokens: None,
                output_tokens: None,
                tokens_from_server: None,
                itl_us: None,
            })
            .collect();
        encode_v1(&http, &mut v1);
        encode(&http, &mut v2);
        assert!(
            v2.len() * 4 <= v1.len(),
            "{} against {}",
            v2.len(),
            v1.len()
        );
    }

    /// Segments of several encoders in one chunk decode each from its own start.
    #[test]
    fn a_chunk_of_several_segments() {
        let run: Arc<str> = "r".into();
        let rows = rows(&run);
        let mut chunk = Vec::new();
        begin_chunk(&mut chunk);
        let mut summary = ChunkSummary::default();
        for part in rows.chunks(3) {
            let (mut enc, mut seg) = (Encoder::default(), Vec::new());
            for r in part {
                enc.push(&mut seg, r);
            }
            append_segment(&mut chunk, &seg);
            summary = summary.merge(enc.summary());
        }
        let mut whole = Vec::new();
        assert_eq!(summary, encode(&rows, &mut whole));
        let mut back = Vec::new();
        decode(&run, &chunk, &mut back).unwrap();
        assert_eq!(format!("{back:?}"), format!("{rows:?}"));
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
