//! The KServe v2 (Open Inference Protocol) tensor side, pure: model metadata → concrete input
//! tensors, request bodies (binary tensor extension and JSON), and response checks.

use super::images::Image;
use crate::rng::Rng;
use serde::Deserialize;

/// The header that carries the JSON part's length in the binary tensor extension.
pub const HEADER_LEN: &str = "Inference-Header-Content-Length";

/// The tensor element types this client generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bool,
    Uint8,
    Int8,
    Int32,
    Int64,
    Fp32,
    Fp64,
}

impl DataType {
    pub fn parse(s: &str) -> Option<DataType> {
        Some(match s {
            "BOOL" => DataType::Bool,
            "UINT8" => DataType::Uint8,
            "INT8" => DataType::Int8,
            "INT32" => DataType::Int32,
            "INT64" => DataType::Int64,
            "FP32" => DataType::Fp32,
            "FP64" => DataType::Fp64,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Int8 => "INT8",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
        }
    }

    pub fn size_bytes(self) -> usize {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Int32 | DataType::Fp32 => 4,
            DataType::Int64 | DataType::Fp64 => 8,
        }
    }
}

/// One tensor of `GET /v2/models/{m}`.
#[derive(Debug, Clone, Deserialize)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{m}` (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelMeta {
    pub name: String,
    #[serde(default)]
    pub inputs: Vec<TensorMeta>,
    #[serde(default)]
    pub outputs: Vec<TensorMeta>,
}

/// An input with every dimension known.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DataType,
    /// The shape sent (the batch dimension set to `batch_size`).
    pub shape: Vec<usize>,
    /// The first dimension is the batch (`-1` in the metadata).
    pub batched: bool,
}

impl InputSpec {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// (height, width, channels, channels-first) when the input is an image (per batch item
    /// `[C,H,W]` or `[H,W,C]` with C = 1 or 3).
    pub fn image_layout(&self) -> Option<(usize, usize, usize, bool)> {
        let d = if self.batched {
            &self.shape[1..]
        } else {
            &self.shape[..]
        };
        let d = match d.len() {
            3 => d,
            4 if !self.batched && d[0] == 1 => &d[1..],
            _ => return None,
        };
        match (d[0], d[2]) {
            (1 | 3, _) => Some((d[1], d[2], d[0], true)),
            (_, 1 | 3) => Some((d[0], d[1], d[2], false)),
            _ => None,
        }
    }
}

/// The inputs to send, from the metadata: a leading `-1` is the batch (set to `batch`); any
/// other unknown dimension, an unknown datatype or a batch on a model without one is an error.
pub fn resolve_inputs(meta: &ModelMeta, batch: u32) -> Result<Vec<InputSpec>, String> {
    if meta.inputs.is_empty() {
        return Err(format!(
            "model `{}` lists no inputs in its metadata",
            meta.name
        ));
    }
    meta.inputs
        .iter()
        .map(|t| {
            let dtype = DataType::parse(&t.datatype).ok_or_else(|| {
                format!(
                    "input `{}` has datatype {}: factorybench generates BOOL, UINT8, INT8, INT32, INT64, FP32 and FP64",
                    t.name, t.datatype
                )
            })?;
            let batched = t.shape.first() == Some(&-1);
            if !batched && batch > 1 {
                return Err(format!(
                    "input `{}` has no batch dimension (shape {:?}): use batch_size: 1",
                    t.name, t.shape
                ));
            }
            let mut shape = Vec::with_capacity(t.shape.len());
            for (i, d) in t.shape.iter().enumerate() {
                shape.push(match (*d, i) {
                    (-1, 0) => batch as usize,
                    (d, _) if d > 0 => d as usize,
                    _ => {
                        return Err(format!(
                            "input `{}` has a variable dimension {i} (shape {:?}): only the first (batch) dimension may be -1",
                            t.name, t.shape
                        ))
                    }
                });
            }
            let spec = InputSpec {
                name: t.name.clone(),
                dtype,
                shape,
                batched,
            };
            if spec.elements() * dtype.size_bytes() > 1 << 30 {
                return Err(format!("input `{}` would be larger than 1 GiB per request", t.name));
            }
            Ok(spec)
        })
        .collect()
}

/// Raw little-endian values of one input.
pub fn random_tensor(spec: &InputSpec, rng: &mut Rng) -> Vec<u8> {
    let n = spec.elements();
    let mut out = Vec::with_capacity(n * spec.dtype.size_bytes());
    for _ in 0..n {
        match spec.dtype {
            DataType::Bool => out.push(rng.below(2) as u8),
            DataType::Uint8 | DataType::Int8 => out.push(rng.below(256) as u8),
            DataType::Int32 => out.extend((rng.below(1000) as i32).to_le_bytes()),
            DataType::Int64 => out.extend((rng.below(1000) as i64).to_le_bytes()),
            DataType::Fp32 => out.extend((rng.next_f64() as f32).to_le_bytes()),
            DataType::Fp64 => out.extend(rng.next_f64().to_le_bytes()),
        }
    }
    out
}

/// One input filled from images (`first` = the index of the batch's first image; the images
/// cycle). FP32/FP64 samples are scaled to [0, 1], integers sent as they are.
pub fn image_tensor(spec: &InputSpec, images: &[Image], first: usize) -> Result<Vec<u8>, String> {
    let (h, w, c, chw) = spec.image_layout().ok_or_else(|| {
        format!(
            "input `{}` (shape {:?}) is not an image ([C,H,W] or [H,W,C] with C = 1 or 3): use random inputs",
            spec.name, spec.shape
        )
    })?;
    let items = if spec.batched { spec.shape[0] } else { 1 };
    let mut out = Vec::with_capacity(spec.elements() * spec.dtype.size_bytes());
    for b in 0..items {
        let im = images[(first + b) % images.len()].resized(w, h, c);
        let sample = |y: usize, x: usize, ch: usize| im.pixels[(y * w + x) * c + ch];
        let mut push = |v: u8| match spec.dtype {
            DataType::Fp32 => out.extend((f32::from(v) / 255.0).to_le_bytes()),
            DataType::Fp64 => out.extend((f64::from(v) / 255.0).to_le_bytes()),
            DataType::Int32 => out.extend(i32::from(v).to_le_bytes()),
            DataType::Int64 => out.extend(i64::from(v).to_le_bytes()),
            DataType::Uint8 | DataType::Int8 | DataType::Bool => out.push(v),
        };
        if chw {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        push(sample(y, x, ch));
                    }
                }
            }
        } else {
            im.pixels.iter().for_each(|v| push(*v));
        }
    }
    Ok(out)
}

/// The JSON `data` array of raw little-endian values.
fn json_values(dtype: DataType, raw: &[u8]) -> Vec<serde_json::Value> {
    let sz = dtype.size_bytes();
    raw.chunks_exact(sz)
        .map(|b| match dtype {
            DataType::Bool => serde_json::Value::Bool(b[0] != 0),
            DataType::Uint8 => b[0].into(),
            DataType::Int8 => (b[0] as i8).into(),
            DataType::Int32 => i32::from_le_bytes(b.try_into().expect("4 bytes")).into(),
            DataType::Int64 => i64::from_le_bytes(b.try_into().expect("8 bytes")).into(),
            DataType::Fp32 => f64::from(f32::from_le_bytes(b.try_into().expect("4 bytes"))).into(),
            DataType::Fp64 => f64::from_le_bytes(b.try_into().expect("8 bytes")).into(),
        })
        .collect()
}

/// A request body with the binary tensor extension: (body, JSON header length). Outputs are
/// asked for in binary too.
pub fn binary_body(
    id: &str,
    inputs: &[InputSpec],
    raw: &[Vec<u8>],
    outputs: &[String],
) -> (Vec<u8>, usize) {
    let header = serde_json::json!({
        "id": id,
        "inputs": inputs.iter().zip(raw).map(|(s, r)| serde_json::json!({
            "name": s.name,
            "shape": s.shape,
            "datatype": s.dtype.as_str(),
            "parameters": {"binary_data_size": r.len()},
        })).collect::<Vec<_>>(),
        "outputs": outputs.iter().map(|o| serde_json::json!({
            "name": o,
            "parameters": {"binary_data": true},
        })).collect::<Vec<_>>(),
    });
    let mut body = serde_json::to_vec(&header).expect("JSON");
    let header_len = body.len();
    for r in raw {
        body.extend_from_slice(r);
    }
    (body, header_len)
}

/// A JSON request body (`data` arrays; outputs come back as JSON).
pub fn json_body(id: &str, inputs: &[InputSpec], raw: &[Vec<u8>]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "inputs": inputs.iter().zip(raw).map(|(s, r)| serde_json::json!({
            "name": s.name,
            "shape": s.shape,
            "datatype": s.dtype.as_str(),
            "data": json_values(s.dtype, r),
        })).collect::<Vec<_>>(),
    }))
    .expect("JSON")
}

#[derive(Deserialize)]
struct RespOutput {
    name: String,
    #[serde(default)]
    shape: Vec<i64>,
    #[serde(default)]
    parameters: Option<serde_json::Value>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    outputs: Vec<RespOutput>,
    #[serde(default)]
    error: Option<String>,
}

/// Check an infer response (`header_len` from its `Inference-Header-Content-Length`): every
/// output has its data (JSON `data` or the binary bytes that follow the header) and, when the
/// request was batched, `batch` rows. Returns the number of outputs.
pub fn check_response(
    body: &[u8],
    header_len: Option<usize>,
    batch: Option<usize>,
) -> Result<usize, String> {
    let json = match header_len {
        Some(n) => body.get(..n).ok_or_else(|| {
            format!(
                "{HEADER_LEN} {n} is longer than the body ({} bytes)",
                body.len()
            )
        })?,
        None => body,
    };
    let r: Response = serde_json::from_slice(json)
        .map_err(|e| format!("infer response is not KServe v2 JSON: {e}"))?;
    if let Some(e) = r.error {
        return Err(format!("the server says: {e}"));
    }
    if r.outputs.is_empty() {
        return Err("infer response has no outputs".into());
    }
    let mut binary = 0usize;
    for o in &r.outputs {
        if let (Some(b), Some(first)) = (batch, o.shape.first()) {
            if *first != b as i64 {
                return Err(format!(
                    "output `{}` has {first} rows for a batch of {b}",
                    o.name
                ));
            }
        }
        let size = o
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
            .and_then(|v| v.as_u64());
        match (size, &o.data) {
            (Some(s), _) => binary += s as usize,
            (None, Some(serde_json::Value::Array(a))) if !a.is_empty() => {}
            _ => return Err(format!("output `{}` has no data", o.name)),
        }
    }
    let have = body.len() - json.len();
    if have != binary {
        return Err(format!(
            "the binary outputs announce {binary} bytes, the body carries {have}"
        ));
    }
    Ok(r.outputs.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(shape: &[i64], dt: &str) -> ModelMeta {
        ModelMeta {
            name: "m".into(),
            inputs: vec![TensorMeta {
                name: "input".into(),
                datatype: dt.into(),
                shape: shape.to_vec(),
            }],
            outputs: vec![],
        }
    }

    #[test]
    fn batch_dimension_and_refusals() {
        let s = resolve_inputs(&meta(&[-1, 3, 224, 224], "FP32"), 8).unwrap();
        assert_eq!(s[0].shape, vec![8, 3, 224, 224]);
        assert_eq!(s[0].image_layout(), Some((224, 224, 3, true)));
        let s = resolve_inputs(&meta(&[-1, 224, 224, 3], "UINT8"), 1).unwrap();
        assert_eq!(s[0].image_layout(), Some((224, 224, 3, false)));
        assert!(resolve_inputs(&meta(&[3, 224, 224], "FP32"), 4)
            .unwrap_err()
            .contains("no batch dimension"));
        assert!(resolve_inputs(&meta(&[-1, -1, 3], "FP32"), 1)
            .unwrap_err()
            .contains("variable dimension 1"));
        assert!(resolve_inputs(&meta(&[-1, 3], "BYTES"), 1)
            .unwrap_err()
            .contains("BYTES"));
    }

    #[test]
    fn bodies_and_responses() {
        let s = resolve_inputs(&meta(&[-1, 2], "FP32"), 2).unwrap();
        let raw = vec![[1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()];
        let (b, n) = binary_body("1", &s, &raw, &["out".into()]);
        assert_eq!(b.len(), n + 16);
        let h: serde_json::Value = serde_json::from_slice(&b[..n]).unwrap();
        assert_eq!(h["inputs"][0]["parameters"]["binary_data_size"], 16);
        let j: serde_json::Value = serde_json::from_slice(&json_body("1", &s, &raw)).unwrap();
        assert_eq!(
            j["inputs"][0]["data"],
            serde_json::json!([1.0, 2.0, 3.0, 4.0])
        );

        let ok =
            br#"{"outputs":[{"name":"out","shape":[2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}"#;
        assert_eq!(check_response(ok, None, Some(2)), Ok(1));
        assert!(check_response(ok, None, Some(4))
            .unwrap_err()
            .contains("2 rows"));
        let mut bin =
            br#"{"outputs":[{"name":"out","shape":[1,1],"parameters":{"binary_data_size":4}}]}"#
                .to_vec();
        let n = bin.len();
        bin.extend(1.0f32.to_le_bytes());
        assert_eq!(check_response(&bin, Some(n), Some(1)), Ok(1));
        assert!(check_response(&bin[..n + 2], Some(n), Some(1))
            .unwrap_err()
            .contains("announce 4"));
        assert!(check_response(br#"{"error":"bad"}"#, None, None)
            .unwrap_err()
            .contains("bad"));
    }
}
