//! Images for tensor inputs: binary PPM (`P6`, RGB) and PGM (`P5`, grey) with 8-bit samples —
//! formats every image tool writes (`convert x.jpg x.ppm`, `pnmtools`) and that need no decoder
//! crate — resized (nearest neighbour) to the model's input.

use std::path::Path;

/// An 8-bit image, samples row-major, `channels` interleaved (HWC).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{dir}: no .ppm or .pgm images (convert others with e.g. `convert x.jpg x.ppm`)")]
    Empty { dir: String },
}

/// Decode a binary PPM/PGM file's bytes.
pub fn decode_pnm(bytes: &[u8]) -> Result<Image, String> {
    let channels = match bytes.get(..2) {
        Some(b"P6") => 3,
        Some(b"P5") => 1,
        _ => return Err("not a binary PPM (P6) or PGM (P5) image".into()),
    };
    // Header: magic, width, height, maxval, separated by whitespace (comments start with #),
    // then exactly one whitespace byte before the samples.
    let mut fields: Vec<usize> = Vec::new();
    let mut i = 2;
    while fields.len() < 3 {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'#') {
            if bytes[i] == b'#' {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err("truncated header".into());
        }
        let v = std::str::from_utf8(&bytes[start..i])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad header number")?;
        fields.push(v);
    }
    let (width, height, maxval) = (fields[0], fields[1], fields[2]);
    if maxval == 0 || maxval > 255 {
        return Err(format!("maxval {maxval}: only 8-bit images are read"));
    }
    if width == 0 || height == 0 || width.saturating_mul(height) > 64 << 20 {
        return Err(format!("size {width}x{height} out of range"));
    }
    i += 1; // the single whitespace byte
    let n = width * height * channels;
    let pixels = bytes
        .get(i..i + n)
        .ok_or_else(|| {
            format!(
                "{} bytes of samples, expected {n}",
                bytes.len().saturating_sub(i)
            )
        })?
        .to_vec();
    Ok(Image {
        width,
        height,
        channels,
        pixels,
    })
}

impl Image {
    /// Nearest-neighbour resize to `width`×`height` with `channels` (grey → RGB repeats the
    /// sample; RGB → grey averages).
    pub fn resized(&self, width: usize, height: usize, channels: usize) -> Image {
        let mut pixels = Vec::with_capacity(width * height * channels);
        for y in 0..height {
            let sy = y * self.height / height;
            for x in 0..width {
                let sx = x * self.width / width;
                let px = &self.pixels[(sy * self.width + sx) * self.channels..][..self.channels];
                for c in 0..channels {
                    pixels.push(match (self.channels, channels) {
                        (a, b) if a == b => px[c],
                        (1, _) => px[0],
                        _ => {
                            (px.iter().map(|v| u32::from(*v)).sum::<u32>() / px.len() as u32) as u8
                        }
                    });
                }
            }
        }
        Image {
            width,
            height,
            channels,
            pixels,
        }
    }
}

/// The `.ppm`/`.pgm` images of `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Image>, ImageError> {
    let d = dir.display().to_string();
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| ImageError::Io { path, source }
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("ppm") || e.eq_ignore_ascii_case("pgm"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ImageError::Empty { dir: d });
    }
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(io(p))?;
            decode_pnm(&bytes).map_err(|message| ImageError::Format {
                path: p.display().to_string(),
                message,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_and_pgm_decode_and_resize() {
        let mut b = b"P6\n# a comment\n2 1\n255\n".to_vec();
        b.extend([10, 20, 30, 200, 210, 220]);
        let im = decode_pnm(&b).unwrap();
        assert_eq!((im.width, im.height, im.channels), (2, 1, 3));
        let r = im.resized(4, 2, 3);
        assert_eq!(&r.pixels[..6], &[10, 20, 30, 10, 20, 30]);
        assert_eq!(&r.pixels[6..12], &[200, 210, 220, 200, 210, 220]);
        let grey = im.resized(1, 1, 1);
        assert_eq!(grey.pixels, vec![20]);
        let mut g = b"P5 1 1 255 ".to_vec();
        g.push(7);
        assert_eq!(
            decode_pnm(&g).unwrap().resized(1, 1, 3).pixels,
            vec![7, 7, 7]
        );
    }

    #[test]
    fn bad_images_are_named() {
        assert!(decode_pnm(b"P3\n1 1\n255\n0 0 0").is_err());
        assert!(decode_pnm(b"P6\n2 2\n255\n\x00\x00")
            .unwrap_err()
            .contains("expected 12"));
        assert!(decode_pnm(b"P6\n1 1\n65535\n")
            .unwrap_err()
            .contains("8-bit"));
    }
}
