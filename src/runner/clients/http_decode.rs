//! An HTTP/1.1 response decoder that does no I/O: the lean path's async worker
//! ([`super::http_lean`]) and its closed-loop driver ([`super::http_driver`]) both read into a
//! buffer of their own and hand the bytes here. It parses the head in place (`httparse`),
//! skips interim (1xx) responses, and counts the body — content-length, chunked or until the
//! connection closes — without keeping it.

/// Read buffer per connection (a response head must fit in it).
pub(crate) const BUF_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// Why a response could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection ended (or was reset) before any byte of a response.
    ClosedBeforeResponse(String),
    Io(String),
    Protocol(String),
}

/// A whole response: its status, its body's length and whether the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub body_bytes: u64,
    pub keep: bool,
}

/// Where a response stands after the bytes seen so far.
pub(crate) enum Progress {
    More,
    Done(Response),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A size line.
    Size,
    /// Data bytes and the CRLF after them still to skip.
    Data(u64),
    /// Trailer lines until an empty one.
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

/// One response's decoding.
pub(crate) struct Decoder {
    head_request: bool,
    state: State,
    status: u16,
    keep: bool,
    body_bytes: u64,
}

impl Decoder {
    /// A decoder for the response to a request (`head_request`: a HEAD, whose response has
    /// no body whatever its head says).
    pub(crate) fn new(head_request: bool) -> Decoder {
        Decoder {
            head_request,
            state: State::Head,
            status: 0,
            keep: false,
            body_bytes: 0,
        }
    }

    /// Whether the final (non-interim) response head has been read: the response's first
    /// byte, as the engine times it.
    pub(crate) fn head_done(&self) -> bool {
        self.state != State::Head
    }

    /// Decode what `buf[..*end]` holds (the bytes read and not yet consumed). What is
    /// consumed is dropped: the rest moves to the front of `buf` and `*end` says how much is
    /// left; the next read goes to `buf[*end..]`.
    pub(crate) fn advance(
        &mut self,
        buf: &mut [u8],
        end: &mut usize,
    ) -> Result<Progress, ReadError> {
        loop {
            match self.state {
                State::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    let len = match resp.parse(&buf[..*end]) {
                        Ok(httparse::Status::Complete(len)) => len,
                        Ok(httparse::Status::Partial) if *end == buf.len() => {
                            return Err(ReadError::Protocol(format!(
                                "response head larger than {BUF_BYTES} bytes"
                            )))
                        }
                        Ok(httparse::Status::Partial) => return Ok(Progress::More),
                        Err(e) => {
                            return Err(ReadError::Protocol(format!("bad response head: {e}")))
                        }
                    };
                    let (status, body, keep) = framing(&resp, self.head_request)?;
                    consume(buf, end, len);
                    if status < 200 && status != 101 {
                        // An interim response (100 Continue): drop it and read the final one.
                        continue;
                    }
                    (self.status, self.keep) = (status, keep);
                    self.state = match body {
                        Body::Length(l) => State::Length(l),
                        Body::Chunked => State::Chunked(Chunk::Size),
                        Body::UntilClose => State::UntilClose,
                    };
                    if body == Body::Length(0) && *end == 0 {
                        return Ok(Progress::Done(self.response()));
                    }
                }
                State::Length(left) => {
                    let have = *end as u64;
                    if have > left {
                        return Err(ReadError::Protocol("bytes after the response body".into()));
                    }
                    *end = 0;
                    self.body_bytes += have;
                    self.state = State::Length(left - have);
                    return Ok(if left == have {
                        Progress::Done(self.response())
                    } else {
                        Progress::More
                    });
                }
                State::UntilClose => {
                    self.body_bytes += *end as u64;
                    *end = 0;
                    return Ok(Progress::More);
                }
                State::Chunked(c) => {
                    if let Some(p) = self.chunked(c, buf, end)? {
                        return Ok(p);
                    }
                }
            }
        }
    }

    /// One step of a chunked body: None to go on, or what to return.
    fn chunked(
        &mut self,
        c: Chunk,
        buf: &mut [u8],
        end: &mut usize,
    ) -> Result<Option<Progress>, ReadError> {
        match c {
            Chunk::Size => match chunk_size(&buf[..*end]).map_err(ReadError::Protocol)? {
                Some((0, line)) => {
                    consume(buf, end, line);
                    self.state = State::Chunked(Chunk::Trailers);
                }
                Some((size, line)) => {
                    consume(buf, end, line);
                    self.body_bytes += size;
                    self.state = State::Chunked(Chunk::Data(size + 2));
                }
                None if *end == buf.len() => {
                    return Err(ReadError::Protocol("chunk size line too long".into()))
                }
                None => return Ok(Some(Progress::More)),
            },
            Chunk::Data(skip) => {
                let have = *end as u64;
                if have < skip {
                    *end = 0;
                    self.state = State::Chunked(Chunk::Data(skip - have));
                    return Ok(Some(Progress::More));
                }
                consume(buf, end, skip as usize);
                self.state = State::Chunked(Chunk::Size);
            }
            Chunk::Trailers => match buf[..*end].iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let empty = nl == 0 || (nl == 1 && buf[0] == b'\r');
                    consume(buf, end, nl + 1);
                    if empty {
                        return Ok(Some(Progress::Done(self.response())));
                    }
                }
                None if *end == buf.len() => {
                    return Err(ReadError::Protocol("trailer too long".into()))
                }
                None => return Ok(Some(Progress::More)),
            },
        }
        Ok(None)
    }

    fn response(&self) -> Response {
        Response {
            status: self.status,
            body_bytes: self.body_bytes,
            keep: self.keep,
        }
    }

    /// The connection ended (a read returned 0) with `end` bytes not yet consumed: a body
    /// delimited by the close is whole, anything else was cut off.
    pub(crate) fn eof(&self, end: usize) -> Result<Response, ReadError> {
        match self.state {
            State::UntilClose => Ok(Response {
                keep: false,
                ..self.response()
            }),
            State::Head if end == 0 => Err(ReadError::ClosedBeforeResponse(
                "connection closed before any response".into(),
            )),
            State::Head => Err(ReadError::Io(
                "connection closed inside the response head".into(),
            )),
            _ => Err(ReadError::Io("connection closed inside the body".into())),
        }
    }

    /// A read failed with `e`, `end` bytes not yet consumed.
    pub(crate) fn read_failed(&self, end: usize, e: &std::io::Error) -> ReadError {
        match self.state {
            State::Head if end == 0 => ReadError::ClosedBeforeResponse(e.to_string()),
            State::Head => ReadError::Io(e.to_string()),
            _ => ReadError::Io(format!("reading body: {e}")),
        }
    }
}

/// Drop `buf[..n]` of the `*end` bytes held.
#[inline]
fn consume(buf: &mut [u8], end: &mut usize, n: usize) {
    if n < *end {
        buf.copy_within(n..*end, 0);
    }
    *end -= n.min(*end);
}

/// Parse a chunk-size line at the start of `line`: `Some((size, line_len))` when complete.
pub(crate) fn chunk_size(line: &[u8]) -> Result<Option<(u64, usize)>, String> {
    let Some(nl) = line.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let text = &line[..nl];
    let hex_end = text
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(text.len());
    if hex_end == 0 || hex_end > 15 {
        return Err("bad chunk size line".into());
    }
    let size = u64::from_str_radix(std::str::from_utf8(&text[..hex_end]).unwrap_or("x"), 16)
        .map_err(|_| "bad chunk size".to_string())?;
    Ok(Some((size, nl + 1)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked,
    UntilClose,
}

/// How a parsed response head frames its body (length, chunked, or until the connection
/// closes) and whether the connection stays open after it.
#[inline]
fn framing(
    resp: &httparse::Response<'_, '_>,
    head_request: bool,
) -> Result<(u16, Body, bool), ReadError> {
    let status = resp.code.unwrap_or(0);
    let mut keep = resp.version == Some(1);
    let mut length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            if length.is_none() {
                return Err(ReadError::Protocol("bad content-length".into()));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                keep = false;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                keep = true;
            }
        }
    }
    let no_body = head_request || status == 204 || status == 304 || status < 200;
    let body = if no_body {
        Body::Length(0)
    } else if chunked {
        Body::Chunked
    } else if let Some(l) = length {
        Body::Length(l)
    } else {
        keep = false;
        Body::UntilClose
    };
    Ok((status, body, keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `parts` one read at a time into a buffer of `cap` bytes; the response, or the
    /// error, and whether the head was seen before the last part.
    fn feed(parts: &[&[u8]], cap: usize, head: bool) -> Result<Response, ReadError> {
        let mut buf = vec![0u8; cap];
        let mut end = 0;
        let mut d = Decoder::new(head);
        for p in parts {
            let mut p: &[u8] = p;
            // A part larger than the room left arrives over several reads, as from a socket.
            while !p.is_empty() {
                let n = p.len().min(cap - end);
                buf[end..end + n].copy_from_slice(&p[..n]);
                end += n;
                p = &p[n..];
                if let Progress::Done(r) = d.advance(&mut buf, &mut end)? {
                    assert!(p.is_empty(), "done before the input ended");
                    return Ok(r);
                }
            }
        }
        d.eof(end)
    }

    fn ok(status: u16, body_bytes: u64, keep: bool) -> Response {
        Response {
            status,
            body_bytes,
            keep,
        }
    }

    #[test]
    fn every_framing_split_anywhere() {
        let cases: [(&[u8], Response); 5] = [
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                ok(200, 5, true),
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\n",
                ok(200, 21, true),
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil close", ok(200, 11, false)),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                ok(204, 0, true),
            ),
            (
                b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 3\r\n\r\nabc",
                ok(404, 3, false),
            ),
        ];
        for (wire, want) in cases {
            for split in 1..wire.len() {
                let (a, b) = wire.split_at(split);
                let got = feed(&[a, b], 4096, false).unwrap_or_else(|e| panic!("{split}: {e:?}"));
                assert_eq!(got, want, "split at {split}");
            }
            // A buffer smaller than the body: the body streams through it.
            assert_eq!(feed(&[wire], 72, false).unwrap(), want);
        }
    }

    #[test]
    fn a_head_response_has_no_body_whatever_it_says() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n";
        assert_eq!(feed(&[wire], 4096, true).unwrap(), ok(200, 0, true));
    }

    #[test]
    fn cut_off_and_malformed_responses() {
        let closed = |r| matches!(r, Err(ReadError::ClosedBeforeResponse(_)));
        assert!(closed(feed(&[], 4096, false)));
        let cut = feed(&[b"HTTP/1.1 200 OK\r\ncont"], 4096, false);
        assert!(matches!(cut, Err(ReadError::Io(m)) if m.contains("head")));
        let cut = feed(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc"],
            4096,
            false,
        );
        assert!(matches!(cut, Err(ReadError::Io(m)) if m.contains("body")));
        let extra = feed(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nab"],
            4096,
            false,
        );
        assert!(matches!(extra, Err(ReadError::Protocol(m)) if m.contains("after")));
        let bad = feed(
            &[b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"],
            4096,
            false,
        );
        assert!(matches!(bad, Err(ReadError::Protocol(m)) if m.contains("content-length")));
        let big = [b"HTTP/1.1 200 OK\r\nx: ".as_slice(), &[b'a'; 200]].concat();
        let big = feed(&[&big], 64, false);
        assert!(matches!(big, Err(ReadError::Protocol(m)) if m.contains("larger")));
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(chunk_size(b"1a\r\nxx").unwrap(), Some((26, 4)));
        assert_eq!(chunk_size(b"0;ext=1\r\n").unwrap(), Some((0, 9)));
        assert_eq!(chunk_size(b"1a").unwrap(), None);
        assert!(chunk_size(b"zz\r\n").is_err());
    }
}
