//! Incremental framing of streamed HTTP bodies: server-sent events (OpenAI, Triton
//! generate_stream) and newline-delimited JSON (Ollama). Bytes go in as they arrive from the
//! socket; complete frames come out. Pure code, no I/O.

/// How a response body is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: events separated by a blank line, payload in `data:` lines.
    Sse,
    /// One JSON document per line.
    Ndjson,
    /// The whole body is one JSON document (non-streamed responses).
    Whole,
}

/// One complete frame: an SSE event (its `event:` name, if any, and the joined `data:` lines)
/// or one NDJSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    buf: Vec<u8>,
    /// Start of the not yet scanned part of `buf` (for lines).
    scan_from: usize,
    event: Option<String>,
    data: Option<String>,
}

impl Framer {
    pub fn new(framing: Framing) -> Self {
        Framer {
            framing,
            buf: Vec::new(),
            scan_from: 0,
            event: None,
            data: None,
        }
    }

    /// Feed bytes; append every frame they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        self.buf.extend_from_slice(bytes);
        if self.framing == Framing::Whole {
            return;
        }
        let mut start = 0;
        while let Some(off) = self.buf[self.scan_from..].iter().position(|b| *b == b'\n') {
            let end = self.scan_from + off;
            let line = trim_cr(&self.buf[start..end]);
            let line = String::from_utf8_lossy(line).into_owned();
            self.line(&line, out);
            start = end + 1;
            self.scan_from = start;
        }
        self.buf.drain(..start);
        self.scan_from = self.buf.len();
    }

    /// End of body: flush a trailing frame that was not terminated.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        let rest = std::mem::take(&mut self.buf);
        self.scan_from = 0;
        match self.framing {
            Framing::Whole => {
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    out.push(Frame {
                        event: None,
                        data: String::from_utf8_lossy(&rest).into_owned(),
                    });
                }
            }
            Framing::Ndjson | Framing::Sse => {
                if !rest.is_empty() {
                    let line = String::from_utf8_lossy(trim_cr(&rest)).into_owned();
                    self.line(&line, out);
                }
                if self.framing == Framing::Sse {
                    self.dispatch(out);
                }
            }
        }
    }

    /// Bytes received that are not part of a complete frame yet.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len() + self.data.as_ref().map_or(0, String::len)
    }

    fn line(&mut self, line: &str, out: &mut Vec<Frame>) {
        match self.framing {
            Framing::Ndjson => {
                if !line.trim().is_empty() {
                    out.push(Frame {
                        event: None,
                        data: line.to_string(),
                    });
                }
            }
            Framing::Sse => {
                if line.is_empty() {
                    self.dispatch(out);
                    return;
                }
                if line.starts_with(':') {
                    return; // comment / keep-alive
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "data" => match &mut self.data {
                        Some(d) => {
                            d.push('\n');
                            d.push_str(value);
                        }
                        None => self.data = Some(value.to_string()),
                    },
                    "event" => self.event = Some(value.to_string()),
                    _ => {} // id, retry, unknown fields
                }
            }
            Framing::Whole => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Frame>) {
        let event = self.event.take();
        if let Some(data) = self.data.take() {
            out.push(Frame { event, data });
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framing: Framing, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = Framer::new(framing);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    #[test]
    fn sse_split_anywhere() {
        let body = b"data: {\"a\":1}\n\n: keep-alive\n\nevent: error\ndata: x\ndata: y\r\n\r\ndata: [DONE]\n\n";
        let whole = frames(Framing::Sse, &[body]);
        assert_eq!(
            whole,
            vec![
                Frame {
                    event: None,
                    data: "{\"a\":1}".into()
                },
                Frame {
                    event: Some("error".into()),
                    data: "x\ny".into()
                },
                Frame {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
        // Every split point gives the same frames.
        for i in 0..body.len() {
            assert_eq!(
                frames(Framing::Sse, &[&body[..i], &body[i..]]),
                whole,
                "split {i}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(frames(Framing::Sse, &bytes), whole);
    }

    #[test]
    fn sse_unterminated_last_event_is_flushed() {
        assert_eq!(
            frames(Framing::Sse, &[b"data:{\"b\":2}"]),
            vec![Frame {
                event: None,
                data: "{\"b\":2}".into()
            }]
        );
    }

    #[test]
    fn ndjson_lines() {
        let out = frames(
            Framing::Ndjson,
            &[b"{\"x\":1}\n\n{\"x\"", b":2}\r\n{\"x\":3}"],
        );
        let data: Vec<_> = out.iter().map(|f| f.data.as_str()).collect();
        assert_eq!(data, ["{\"x\":1}", "{\"x\":2}", "{\"x\":3}"]);
    }

    #[test]
    fn whole_body() {
        assert_eq!(
            frames(Framing::Whole, &[b"{\"o\"", b":1}"])[0].data,
            "{\"o\":1}"
        );
        assert!(frames(Framing::Whole, &[b"  \n"]).is_empty());
    }
}
