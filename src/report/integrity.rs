//! Report content hashes (`factorybench verify`).
//!
//! Every report format carries its SHA-256 after the marker `report_sha256` (JSON:
//! `provenance.report_sha256`; HTML: `<meta name="factorybench-report_sha256" content=…>`;
//! CSV and Prometheus: a `# report_sha256: …` comment line). The hash covers the exact bytes
//! of the file in which every occurrence of the hash's own 64 hex digits is replaced by 64
//! `0` characters. So any edited byte (a number, a label, whitespace) changes the hash.

use sha2::{Digest, Sha256};

/// Key that precedes the hash in every format.
pub const MARKER: &str = "report_sha256";
/// What renderers write where the hash goes; [`seal`] replaces it.
pub const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("no `report_sha256` marker with a 64-hex-digit hash: not a factorybench report")]
    NoHash,
    #[error("content hash mismatch: recorded {recorded}, content hashes to {computed} (the report was modified)")]
    Mismatch { recorded: String, computed: String },
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Hash a rendered report that contains [`PLACEHOLDER`] where the hash goes, and put it there.
pub fn seal(rendered: String) -> String {
    debug_assert!(rendered.contains(PLACEHOLDER));
    let h = sha256_hex(rendered.as_bytes());
    rendered.replace(PLACEHOLDER, &h)
}

/// The recorded hash: the first run of 64 hex digits within 40 bytes after the first marker.
pub fn recorded_hash(content: &[u8]) -> Option<String> {
    let at = find(content, MARKER.as_bytes())? + MARKER.len();
    let tail = &content[at..content.len().min(at + 40 + 64)];
    let mut i = 0;
    while i < tail.len().min(40) {
        if tail[i].is_ascii_hexdigit() {
            let run = tail[i..]
                .iter()
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if run == 64 {
                return Some(String::from_utf8_lossy(&tail[i..i + 64]).to_ascii_lowercase());
            }
            i += run;
            continue;
        }
        i += 1;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Recompute the hash of a report file's content. Ok(hash) when it matches.
pub fn verify(content: &[u8]) -> Result<String, VerifyError> {
    let recorded = recorded_hash(content).ok_or(VerifyError::NoHash)?;
    let mut canonical = Vec::with_capacity(content.len());
    let pat = recorded.as_bytes();
    let mut i = 0;
    while i < content.len() {
        if content.len() - i >= 64 && content[i..i + 64].eq_ignore_ascii_case(pat) {
            canonical.extend_from_slice(PLACEHOLDER.as_bytes());
            i += 64;
        } else {
            canonical.push(content[i]);
            i += 1;
        }
    }
    let computed = sha256_hex(&canonical);
    if computed == recorded {
        Ok(recorded)
    } else {
        Err(VerifyError::Mismatch { recorded, computed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_verify_and_detect_edits() {
        for template in [
            format!("{{\"provenance\": {{\"report_sha256\": \"{PLACEHOLDER}\"}}, \"p99_ms\": 1.5}}"),
            format!("# report_sha256: {PLACEHOLDER}\nop,p99_ms\nGET,1.5\n"),
            format!("<meta name=\"factorybench-report_sha256\" content=\"{PLACEHOLDER}\"><p>{PLACEHOLDER}</p>"),
        ] {
            let sealed = seal(template);
            assert!(verify(sealed.as_bytes()).is_ok(), "{sealed}");
            let tampered = sealed.replace("1.5", "1.4").replace("<p>", "<p> ");
            assert!(matches!(verify(tampered.as_bytes()), Err(VerifyError::Mismatch { .. })));
        }
        assert_eq!(verify(b"hello"), Err(VerifyError::NoHash));
    }
}
