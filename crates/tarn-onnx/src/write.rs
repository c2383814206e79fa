//! Writing ONNX models: a small protobuf encoder for the parts of `onnx.proto` tarn's built-in
//! models use (graph, nodes with attributes, typed inputs and outputs, initializers, metadata),
//! so no protobuf compiler is needed at build time.

/// One protobuf message being written.
#[derive(Default, Clone)]
pub struct Msg(Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

impl Msg {
    fn key(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, ((field as u64) << 3) | wire as u64);
    }

    pub fn int(mut self, field: u32, v: i64) -> Msg {
        self.key(field, 0);
        varint(&mut self.0, v as u64);
        self
    }

    pub fn float(mut self, field: u32, v: f32) -> Msg {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(mut self, field: u32, b: &[u8]) -> Msg {
        self.key(field, 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn str(self, field: u32, s: &str) -> Msg {
        self.bytes(field, s.as_bytes())
    }

    pub fn msg(self, field: u32, m: &Msg) -> Msg {
        self.bytes(field, &m.0)
    }

    pub fn floats(self, field: u32, v: &[f32]) -> Msg {
        let b: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.bytes(field, &b)
    }

    pub fn ints(self, field: u32, v: &[i64]) -> Msg {
        let mut b = Vec::new();
        for i in v {
            varint(&mut b, *i as u64);
        }
        self.bytes(field, &b)
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// ONNX tensor element types.
pub const FLOAT: i64 = 1;
pub const INT64: i64 = 7;

/// An attribute of a node.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Float(&'a str, f32),
    Str(&'a str, &'a str),
    Ints(&'a str, Vec<i64>),
    Floats(&'a str, Vec<f32>),
    Strs(&'a str, Vec<String>),
}

fn attribute(a: &Attr<'_>) -> Msg {
    // AttributeProto: name=1, f=2, i=3, s=4, floats=7, ints=8, strings=9, type=20.
    match a {
        Attr::Int(n, v) => Msg::default().str(1, n).int(3, *v).int(20, 2),
        Attr::Float(n, v) => Msg::default().str(1, n).float(2, *v).int(20, 1),
        Attr::Str(n, v) => Msg::default().str(1, n).str(4, v).int(20, 3),
        Attr::Floats(n, v) => Msg::default().str(1, n).floats(7, v).int(20, 6),
        Attr::Ints(n, v) => Msg::default().str(1, n).ints(8, v).int(20, 7),
        Attr::Strs(n, v) => {
            let mut m = Msg::default().str(1, n);
            for s in v {
                m = m.str(9, s);
            }
            m.int(20, 8)
        }
    }
}

/// A node: `op_type` in `domain` (empty: the default domain) from `inputs` to `outputs`.
pub fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attr<'_>]) -> Msg {
    // NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7.
    let mut m = Msg::default();
    for i in inputs {
        m = m.str(1, i);
    }
    for o in outputs {
        m = m.str(2, o);
    }
    m = m.str(
        3,
        &format!("{op}_{}", outputs.first().copied().unwrap_or("out")),
    );
    m = m.str(4, op);
    for a in attrs {
        m = m.msg(5, &attribute(a));
    }
    if !domain.is_empty() {
        m = m.str(7, domain);
    }
    m
}

/// A typed graph input or output; a `None` dimension is the batch (`N`).
pub fn value_info(name: &str, elem: i64, dims: &[Option<i64>]) -> Msg {
    // ValueInfoProto: name=1, type=2; TypeProto: tensor_type=1; Tensor: elem_type=1, shape=2;
    // TensorShapeProto: dim=1; Dimension: dim_value=1, dim_param=2.
    let mut shape = Msg::default();
    for d in dims {
        let dim = match d {
            Some(v) => Msg::default().int(1, *v),
            None => Msg::default().str(2, "N"),
        };
        shape = shape.msg(1, &dim);
    }
    let tensor = Msg::default().int(1, elem).msg(2, &shape);
    let ty = Msg::default().msg(1, &tensor);
    Msg::default().str(1, name).msg(2, &ty)
}

/// An int64 constant tensor.
pub fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> Msg {
    // TensorProto: dims=1, data_type=2, int64_data=7, name=8.
    Msg::default()
        .ints(1, dims)
        .int(2, INT64)
        .ints(7, values)
        .str(8, name)
}

/// A whole model: opsets `("", 13)` and `("ai.onnx.ml", 3)`, metadata as key/value pairs.
pub fn model(
    graph_name: &str,
    nodes: &[Msg],
    initializers: &[Msg],
    inputs: &[Msg],
    outputs: &[Msg],
    metadata: &[(&str, String)],
) -> Vec<u8> {
    // GraphProto: node=1, name=2, initializer=5, input=11, output=12.
    let mut g = Msg::default();
    for n in nodes {
        g = g.msg(1, n);
    }
    g = g.str(2, graph_name);
    for t in initializers {
        g = g.msg(5, t);
    }
    for i in inputs {
        g = g.msg(11, i);
    }
    for o in outputs {
        g = g.msg(12, o);
    }
    // ModelProto: ir_version=1, producer_name=2, producer_version=3, graph=7, opset_import=8,
    // metadata_props=14.
    let mut m = Msg::default()
        .int(1, 8)
        .str(2, "tarn")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, &g)
        .msg(8, &Msg::default().str(1, "").int(2, 13))
        .msg(8, &Msg::default().str(1, "ai.onnx.ml").int(2, 3));
    for (k, v) in metadata {
        m = m.msg(14, &Msg::default().str(1, k).str(2, v));
    }
    m.into_bytes()
}

/// The graph's front: one 1-D float input per feature (as the mlflow client feeds a
/// DataFrame's columns), stacked into an `[N, F]` matrix called `features`. A single feature
/// is one `[N, 1]` input (the client feeds a one-input model the whole frame).
pub fn feature_inputs(features: &[String]) -> (Vec<Msg>, Vec<Msg>, Vec<Msg>) {
    if features.len() == 1 {
        let input = value_info(&features[0], FLOAT, &[None, Some(1)]);
        let id = node("Identity", "", &[&features[0]], &["features"], &[]);
        return (vec![input], vec![id], vec![]);
    }
    let inputs = features
        .iter()
        .map(|f| value_info(f, FLOAT, &[None]))
        .collect();
    let mut nodes = Vec::new();
    let mut cols = Vec::new();
    for f in features {
        let col = format!("{f}__col");
        nodes.push(node("Unsqueeze", "", &[f, "unsqueeze_axes"], &[&col], &[]));
        cols.push(col);
    }
    let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    nodes.push(node(
        "Concat",
        "",
        &refs,
        &["features"],
        &[Attr::Int("axis", 1)],
    ));
    (
        inputs,
        nodes,
        vec![int64_tensor("unsqueeze_axes", &[1], &[1])],
    )
}
