//! Reading ONNX files: a small protobuf decoder for the messages of `onnx.proto` a model
//! needs to run (model, graph, node, attribute, tensor, value info).

use crate::OnnxError;
use std::collections::BTreeMap;

enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> OnnxError {
    OnnxError::Format(format!("not a valid ONNX file: {what}"))
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, OnnxError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], OnnxError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| bad("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<(u32, Field<'a>)>, OnnxError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Field::Fixed64(u64::from_le_bytes(
                    b.try_into().map_err(|_| bad("fixed64"))?,
                ))
            }
            2 => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(bad(&format!("wire type {w}"))),
        };
        Ok(Some((field, f)))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Repeated int64 (packed or not).
fn push_ints(out: &mut Vec<i64>, f: Field<'_>) -> Result<(), OnnxError> {
    match f {
        Field::Varint(v) => out.push(v as i64),
        Field::Bytes(b) => {
            let mut r = Reader::new(b);
            while r.pos < b.len() {
                out.push(r.varint()? as i64);
            }
        }
        _ => return Err(bad("an int list")),
    }
    Ok(())
}

/// Repeated float (packed or not).
fn push_floats(out: &mut Vec<f32>, f: Field<'_>) -> Result<(), OnnxError> {
    match f {
        Field::Fixed32(v) => out.push(f32::from_bits(v)),
        Field::Bytes(b) => out.extend(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        _ => return Err(bad("a float list")),
    }
    Ok(())
}

/// A constant tensor.
#[derive(Debug, Clone, Default)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i64,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub strings: Vec<String>,
    pub doubles: Vec<f64>,
    pub raw: Vec<u8>,
}

fn tensor(b: &[u8]) -> Result<TensorProto, OnnxError> {
    let mut t = TensorProto::default();
    let mut r = Reader::new(b);
    while let Some((field, f)) = r.next()? {
        match (field, f) {
            (1, f) => push_ints(&mut t.dims, f)?,
            (2, Field::Varint(v)) => t.data_type = v as i64,
            (4, f) => push_floats(&mut t.floats, f)?,
            (5, f) | (7, f) => push_ints(&mut t.ints, f)?,
            (6, Field::Bytes(s)) => t.strings.push(text(s)),
            (8, Field::Bytes(s)) => t.name = text(s),
            (9, Field::Bytes(s)) => t.raw = s.to_vec(),
            (10, Field::Fixed64(v)) => t.doubles.push(f64::from_bits(v)),
            (10, Field::Bytes(b)) => t.doubles.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
            ),
            _ => {}
        }
    }
    Ok(t)
}

/// A node attribute.
#[derive(Debug, Clone, Default)]
pub struct Attribute {
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<String>,
    pub t: Option<TensorProto>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub strings: Vec<String>,
}

/// One operator application.
#[derive(Debug, Clone, Default)]
pub struct NodeProto {
    pub op: String,
    pub domain: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: BTreeMap<String, Attribute>,
}

fn attribute(b: &[u8]) -> Result<(String, Attribute), OnnxError> {
    let mut a = Attribute::default();
    let mut name = String::new();
    let mut r = Reader::new(b);
    while let Some((field, f)) = r.next()? {
        match (field, f) {
            (1, Field::Bytes(s)) => name = text(s),
            (2, Field::Fixed32(v)) => a.f = Some(f32::from_bits(v)),
            (3, Field::Varint(v)) => a.i = Some(v as i64),
            (4, Field::Bytes(s)) => a.s = Some(text(s)),
            (5, Field::Bytes(s)) => a.t = Some(tensor(s)?),
            (7, f) => push_floats(&mut a.floats, f)?,
            (8, f) => push_ints(&mut a.ints, f)?,
            (9, Field::Bytes(s)) => a.strings.push(text(s)),
            _ => {}
        }
    }
    Ok((name, a))
}

fn node(b: &[u8]) -> Result<NodeProto, OnnxError> {
    let mut n = NodeProto::default();
    let mut r = Reader::new(b);
    while let Some((field, f)) = r.next()? {
        match (field, f) {
            (1, Field::Bytes(s)) => n.inputs.push(text(s)),
            (2, Field::Bytes(s)) => n.outputs.push(text(s)),
            (3, Field::Bytes(s)) => n.name = text(s),
            (4, Field::Bytes(s)) => n.op = text(s),
            (5, Field::Bytes(s)) => {
                let (k, v) = attribute(s)?;
                n.attrs.insert(k, v);
            }
            (7, Field::Bytes(s)) => n.domain = text(s),
            _ => {}
        }
    }
    Ok(n)
}

/// A graph input or output: its name, element type and shape (`None`: a symbolic dimension).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    /// ONNX element type (1 float, 7 int64, 8 string, 11 double, ...; 0 when not a tensor).
    pub elem_type: i64,
    pub dims: Vec<Option<i64>>,
}

fn value_info(b: &[u8]) -> Result<ValueInfo, OnnxError> {
    let mut v = ValueInfo::default();
    let mut r = Reader::new(b);
    while let Some((field, f)) = r.next()? {
        match (field, f) {
            (1, Field::Bytes(s)) => v.name = text(s),
            (2, Field::Bytes(ty)) => {
                let mut tr = Reader::new(ty);
                while let Some((tf, tv)) = tr.next()? {
                    if let (1, Field::Bytes(tensor)) = (tf, tv) {
                        let mut t = Reader::new(tensor);
                        while let Some((k, x)) = t.next()? {
                            match (k, x) {
                                (1, Field::Varint(e)) => v.elem_type = e as i64,
                                (2, Field::Bytes(shape)) => {
                                    let mut sr = Reader::new(shape);
                                    while let Some((_, Field::Bytes(dim))) = sr.next()? {
                                        let mut dr = Reader::new(dim);
                                        let mut d = None;
                                        while let Some((dk, dv)) = dr.next()? {
                                            if let (1, Field::Varint(n)) = (dk, dv) {
                                                d = Some(n as i64);
                                            }
                                        }
                                        v.dims.push(d);
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

/// A whole model file.
#[derive(Debug, Clone, Default)]
pub struct ModelProto {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub metadata: BTreeMap<String, String>,
    pub producer: String,
}

/// Parses an ONNX file's bytes.
pub fn parse(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    let mut m = ModelProto::default();
    let mut r = Reader::new(bytes);
    let mut saw_graph = false;
    while let Some((field, f)) = r.next()? {
        match (field, f) {
            (2, Field::Bytes(s)) => m.producer = text(s),
            (7, Field::Bytes(g)) => {
                saw_graph = true;
                let mut gr = Reader::new(g);
                while let Some((gf, gv)) = gr.next()? {
                    match (gf, gv) {
                        (1, Field::Bytes(n)) => m.nodes.push(node(n)?),
                        (5, Field::Bytes(t)) => m.initializers.push(tensor(t)?),
                        (11, Field::Bytes(v)) => m.inputs.push(value_info(v)?),
                        (12, Field::Bytes(v)) => m.outputs.push(value_info(v)?),
                        _ => {}
                    }
                }
            }
            (14, Field::Bytes(kv)) => {
                let mut kr = Reader::new(kv);
                let (mut k, mut v) = (String::new(), String::new());
                while let Some((kf, x)) = kr.next()? {
                    match (kf, x) {
                        (1, Field::Bytes(s)) => k = text(s),
                        (2, Field::Bytes(s)) => v = text(s),
                        _ => {}
                    }
                }
                m.metadata.insert(k, v);
            }
            _ => {}
        }
    }
    if !saw_graph {
        return Err(bad("it has no graph"));
    }
    // Initializers are constants, not inputs a caller feeds.
    let constants: Vec<String> = m.initializers.iter().map(|t| t.name.clone()).collect();
    m.inputs.retain(|i| !constants.contains(&i.name));
    Ok(m)
}
