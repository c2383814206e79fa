//! Grouping by small integers without hashing, and by short strings. `GROUP BY year, month,
//! day` over a table of flights has 365 groups among hundreds of thousands of rows;
//! DataFusion interns each row's key columns in a hash table (about half of such a query's time). When every key is an
//! integer column, the keys of a row pack into one small number (each key's offset from the
//! smallest value seen, a few bits each, 0 for null) that indexes a table of group ids
//! directly, as DuckDB's perfect hash aggregate does.
//!
//! One string key whose values are short (a carrier, an airport: a string view of 12 bytes
//! or less holds the string itself) is interned by its 16-byte view in a small table of its
//! own, without reading string buffers. `count`, `sum` and `avg` of numbers are kept by the
//! operator itself ([`Fast`]): an integer argument is read without the cast to float the
//! plan puts on it, and rows sorted by their keys are added a run at a time.
//!
//! The rule replaces only the partial stage of an aggregation (the one that sees every row)
//! and only for plain aggregates (`count`, `sum`, `avg`, `min`, `max`, no `DISTINCT`, no
//! `ORDER BY` inside them); the operator answers the same partial states as DataFusion's, so
//! the final stage merges them as before. The ranges are learnt from the rows: a value past
//! the range seen so far widens it (the groups found keep their ids), and keys whose ranges
//! need more than [`MAX_BITS`] bits go on through DataFusion's own hash table, seeded with
//! the groups found so far. Memory is reserved from the query's pool; when the pool refuses,
//! the groups so far are emitted and the table starts again, as DataFusion's partial stage
//! does. As it also does, a table that has found a group for nearly every row of its first
//! 100,000 stops grouping and passes each row on as its own partial state.

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray, RecordBatch};
use deltalake::arrow::compute::{cast, max, min};
use deltalake::arrow::datatypes::{
    ArrowNumericType, ArrowPrimitiveType, DataType, Int16Type, Int32Type, Int64Type, Int8Type,
    SchemaRef, UInt16Type, UInt32Type, UInt8Type,
};
use deltalake::datafusion::common::config::ConfigOptions;
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use deltalake::datafusion::common::{DataFusionError, Result};
use deltalake::datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use deltalake::datafusion::execution::TaskContext;
use deltalake::datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use deltalake::datafusion::physical_plan::aggregates::group_values::{
    new_group_values, GroupValues,
};
use deltalake::datafusion::physical_plan::aggregates::order::GroupOrdering;
use deltalake::datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use std::sync::Arc;

/// The most bits the packed keys may take: a table of 2^16 group ids (256 KiB).
pub(crate) const MAX_BITS: u32 = 16;

/// The aggregates whose partial state this operator builds (their group accumulators keep
/// a few numbers per group).
const PLAIN: [&str; 5] = ["count", "sum", "avg", "min", "max"];

/// The physical optimizer rule that puts [`SmallGroupsExec`] in place of the partial stage
/// of an aggregation grouped by integer columns.
#[derive(Debug)]
pub(crate) struct SmallGroups;

impl PhysicalOptimizerRule for SmallGroups {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            if !fits(agg) {
                return Ok(Transformed::no(node));
            }
            let agg = Arc::new(agg.clone());
            Ok(Transformed::yes(
                Arc::new(SmallGroupsExec { agg }) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tarn_small_groups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `agg` is a partial stage this operator can take: two or more integer keys, or
/// one string key; no grouping sets or limit, plain aggregates only.
fn fits(agg: &AggregateExec) -> bool {
    let schema = agg.input().schema();
    let group = agg.group_expr();
    let types: Vec<Option<DataType>> = group
        .expr()
        .iter()
        .map(|(e, _)| e.data_type(&schema).ok())
        .collect();
    let keys = matches!(types.as_slice(), [Some(DataType::Utf8View)])
        || types.len() >= 2 && types.iter().all(|t| t.as_ref().is_some_and(integer));
    matches!(agg.mode(), AggregateMode::Partial)
        && group.is_single()
        && keys
        && agg.limit_options().is_none()
        && agg.aggr_expr().iter().all(|a| {
            PLAIN.contains(&a.fun().name())
                && !a.is_distinct()
                && a.order_bys().is_empty()
                && a.groups_accumulator_supported()
        })
}

/// The partial stage of an aggregation grouped by small integers (what it replaces is kept
/// for its schema, properties and expressions).
#[derive(Debug)]
pub(crate) struct SmallGroupsExec {
    agg: Arc<AggregateExec>,
}

impl DisplayAs for SmallGroupsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "SmallGroups ")?;
        self.agg.fmt_as(t, f)
    }
}

impl ExecutionPlan for SmallGroupsExec {
    fn name(&self) -> &str {
        "SmallGroupsExec"
    }

    fn schema(&self) -> SchemaRef {
        self.agg.schema()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.agg.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let agg = Arc::clone(&self.agg).with_new_children(children)?;
        match agg.downcast_ref::<AggregateExec>() {
            Some(a) => Ok(Arc::new(SmallGroupsExec {
                agg: Arc::new(a.clone()),
            })),
            None => Ok(agg),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let agg = Arc::clone(&self.agg);
        let schema = agg.schema();
        let input = agg.input().execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("SmallGroupsExec[{partition}]"))
            .register(context.memory_pool());
        let table = Table::new(&agg, reservation)?;
        let state = (input, Some(table));
        let stream = futures::stream::try_unfold(state, |(mut input, table)| async move {
            let Some(mut table) = table else {
                return Ok(None);
            };
            while let Some(batch) = input.next().await {
                if let Some(full) = table.add(&batch?)? {
                    return Ok(Some((Some(full), (input, Some(table)))));
                }
            }
            Ok(Some((table.emit()?, (input, None))))
        })
        .filter_map(|b| async move { b.transpose() });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One partition's groups and their accumulators.
struct Table {
    agg: Arc<AggregateExec>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Accumulator>,
    groups: Groups,
    ids: Vec<usize>,
    reservation: MemoryReservation,
    /// Rows taken so far, until the probe below has looked.
    rows: usize,
    /// Whether each row now goes on as its own partial state (see [`PROBE_ROWS`]).
    passing: bool,
}

/// After this many rows, a table whose groups are [`PROBE_RATIO`] of its rows or more stops
/// grouping and passes each row on as its own partial state (the final stage groups them),
/// as DataFusion's partial stage does: with nearly one group a row, grouping twice costs
/// twice.
const PROBE_ROWS: usize = 100_000;
const PROBE_RATIO: f64 = 0.8;

impl Table {
    fn new(agg: &Arc<AggregateExec>, reservation: MemoryReservation) -> Result<Self> {
        let keys = agg
            .group_expr()
            .expr()
            .iter()
            .map(|(e, _)| Arc::clone(e))
            .collect::<Vec<_>>();
        let schema = agg.input().schema();
        let types = keys
            .iter()
            .map(|k| k.data_type(&schema))
            .collect::<Result<Vec<_>>>()?;
        Ok(Table {
            agg: Arc::clone(agg),
            keys,
            args: agg.aggr_expr().iter().map(|a| a.expressions()).collect(),
            accumulators: Self::accumulators(agg)?,
            groups: if types == [DataType::Utf8View] {
                Groups::Short(Short::default())
            } else {
                Groups::Small(Packed::new(types))
            },
            ids: Vec::new(),
            reservation,
            rows: 0,
            passing: false,
        })
    }

    fn accumulators(agg: &AggregateExec) -> Result<Vec<Accumulator>> {
        let schema = agg.input().schema();
        agg.aggr_expr()
            .iter()
            .zip(agg.filter_expr())
            .map(|(a, filter)| {
                if filter.is_none() {
                    if let Some(fast) = Fast::new(a, &schema)? {
                        return Ok(Accumulator::Fast(fast));
                    }
                }
                Ok(Accumulator::DataFusion(a.create_groups_accumulator()?))
            })
            .collect()
    }

    /// Adds a batch; answers the groups so far (and starts again) when the memory pool
    /// refuses the table more room.
    fn add(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        if self.passing {
            return self.pass(batch).map(Some);
        }
        if self.rows < PROBE_ROWS {
            self.rows += n;
            if self.rows >= PROBE_ROWS
                && self.groups.len() as f64 >= PROBE_RATIO * (self.rows - n) as f64
            {
                self.passing = true;
                let before = self.emit()?;
                let this = self.pass(batch)?;
                return Ok(Some(match before {
                    Some(b) => {
                        deltalake::arrow::compute::concat_batches(&self.agg.schema(), [&b, &this])?
                    }
                    None => this,
                }));
            }
        }
        let keys = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        self.groups.intern(&keys, &mut self.ids)?;
        let total = self.groups.len();
        // Rows in runs of one group (data sorted by its keys) are added a run at a time;
        // rows whose groups change every few rows, one by one.
        let fast = self
            .accumulators
            .iter()
            .any(|a| matches!(a, Accumulator::Fast(_)));
        let runs = fast && self.ids.windows(2).filter(|w| w[0] != w[1]).count() * 8 < n;
        for (i, acc) in self.accumulators.iter_mut().enumerate() {
            let acc = match acc {
                Accumulator::Fast(fast) => {
                    fast.update(batch, &self.ids, total, runs)?;
                    continue;
                }
                Accumulator::DataFusion(acc) => acc,
            };
            let (values, filter) = inputs(&self.agg, &self.args[i], i, batch)?;
            acc.update_batch(&values, &self.ids, filter.as_ref(), total)?;
        }
        let size = self.groups.size()
            + self
                .accumulators
                .iter()
                .map(Accumulator::size)
                .sum::<usize>()
            + self.ids.capacity() * std::mem::size_of::<usize>();
        if self.reservation.try_resize(size).is_err() {
            return self.emit();
        }
        Ok(None)
    }

    /// Each row of `batch` as its own partial state: its keys, and each aggregate's state of
    /// that one row.
    fn pass(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns = self
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(n))
            .collect::<Result<Vec<_>>>()?;
        for (i, acc) in self.accumulators.iter().enumerate() {
            match acc {
                Accumulator::Fast(fast) => columns.extend(fast.row_states(batch)?),
                Accumulator::DataFusion(acc) => {
                    let (values, filter) = inputs(&self.agg, &self.args[i], i, batch)?;
                    columns.extend(acc.convert_to_state(&values, filter.as_ref())?);
                }
            }
        }
        Ok(RecordBatch::try_new(self.agg.schema(), columns)?)
    }

    /// The partial states of every group so far (none when no row came), and an empty table.
    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        if self.groups.len() == 0 {
            return Ok(None);
        }
        let mut columns = self.groups.emit()?;
        for acc in self.accumulators.iter_mut() {
            match acc {
                Accumulator::Fast(fast) => columns.extend(fast.state()),
                Accumulator::DataFusion(acc) => columns.extend(acc.state(EmitTo::All)?),
            }
        }
        self.accumulators = Self::accumulators(&self.agg)?;
        self.reservation.free();
        Ok(Some(RecordBatch::try_new(self.agg.schema(), columns)?))
    }
}

/// The argument columns of aggregate `i` of `agg` over `batch`, and its filter's.
fn inputs(
    agg: &AggregateExec,
    args: &[Arc<dyn PhysicalExpr>],
    i: usize,
    batch: &RecordBatch,
) -> Result<(Vec<ArrayRef>, Option<deltalake::arrow::array::BooleanArray>)> {
    let n = batch.num_rows();
    let values = args
        .iter()
        .map(|e| e.evaluate(batch)?.into_array(n))
        .collect::<Result<Vec<_>>>()?;
    let filter = match &agg.filter_expr()[i] {
        Some(f) => Some(f.evaluate(batch)?.into_array(n)?.as_boolean().clone()),
        None => None,
    };
    Ok((values, filter))
}

/// An aggregate's partial state: tarn's own for the plain sums and counts, DataFusion's
/// group accumulator for the rest (`min`, `max`, a filtered aggregate, other types).
enum Accumulator {
    Fast(Fast),
    DataFusion(Box<dyn GroupsAccumulator>),
}

impl Accumulator {
    fn size(&self) -> usize {
        match self {
            Accumulator::Fast(f) => f.size(),
            Accumulator::DataFusion(a) => a.size(),
        }
    }
}

/// `count`, `sum` and `avg` of numbers, with the partial states DataFusion's accumulators
/// give. Rows are taken a run of one group at a time: in data sorted by its keys (a day's
/// flights together) a run's sum stays in a register instead of going through memory row
/// by row, and values are added in row order from the group's sum so far, so the sums are
/// the very ones DataFusion's accumulators make. An integer argument cast to the sum's type
/// is read as it is and converted on the way (as the cast does).
struct Fast {
    kind: FastKind,
    /// What is counted or added: the argument, or the integer column under its cast.
    arg: Arc<dyn PhysicalExpr>,
    /// Values counted per group.
    counts: Vec<u64>,
    /// Sums per group (`avg`, `sum` of floats).
    reals: Vec<f64>,
    /// Sums per group (`sum` of integers, wrapping as DataFusion's does).
    ints: Vec<i64>,
}

#[derive(Clone, Copy, PartialEq)]
enum FastKind {
    /// `count(x)`: state `Int64`, the values that are not null (every row for a literal).
    Count { every_row: bool },
    /// `avg(x)` of floats: state `UInt64` count and `Float64` sum, null where no value.
    Avg,
    /// `sum(x)` of floats: state `Float64`, null where no value.
    SumReal,
    /// `sum(x)` of integers: state `Int64`, null where no value.
    SumInt,
}

impl Fast {
    /// The fast state for `a`, when it is one (its argument's type and its state's types
    /// are the ones this builds).
    fn new(
        a: &deltalake::datafusion::physical_expr::aggregate::AggregateFunctionExpr,
        schema: &SchemaRef,
    ) -> Result<Option<Self>> {
        use deltalake::datafusion::physical_expr::expressions::{CastExpr, Literal};
        let args = a.expressions();
        if args.len() != 1 || a.is_distinct() || !a.order_bys().is_empty() {
            return Ok(None);
        }
        let state: Vec<DataType> = a
            .state_fields()?
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let arg = Arc::clone(&args[0]);
        // The column under a cast from an integer type to the state's number type.
        let source = |target: &DataType| -> Result<Option<Arc<dyn PhysicalExpr>>> {
            if let Some(c) = arg.downcast_ref::<CastExpr>() {
                let inner = c.expr().data_type(schema)?;
                if c.cast_type() == target && integer(&inner) {
                    return Ok(Some(Arc::clone(c.expr())));
                }
            }
            let t = arg.data_type(schema)?;
            Ok((&t == target).then(|| Arc::clone(&arg)))
        };
        let (kind, arg) = match (a.fun().name(), state.as_slice()) {
            ("count", [DataType::Int64]) => {
                let every_row = arg
                    .downcast_ref::<Literal>()
                    .is_some_and(|l| !l.value().is_null());
                (FastKind::Count { every_row }, arg)
            }
            ("avg", [DataType::UInt64, DataType::Float64]) => match source(&DataType::Float64)? {
                Some(s) => (FastKind::Avg, s),
                None => return Ok(None),
            },
            ("sum", [DataType::Float64]) => match source(&DataType::Float64)? {
                Some(s) => (FastKind::SumReal, s),
                None => return Ok(None),
            },
            ("sum", [DataType::Int64]) => match source(&DataType::Int64)? {
                Some(s) => (FastKind::SumInt, s),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(Fast {
            kind,
            arg,
            counts: Vec::new(),
            reals: Vec::new(),
            ints: Vec::new(),
        }))
    }

    fn size(&self) -> usize {
        self.counts.capacity() * 8 + self.reals.capacity() * 8 + self.ints.capacity() * 8
    }

    /// Counts or adds the rows of `batch` into the groups `ids` name (`total` groups), a
    /// run of one group's rows at a time when `runs`, else row by row.
    fn update(
        &mut self,
        batch: &RecordBatch,
        ids: &[usize],
        total: usize,
        runs: bool,
    ) -> Result<()> {
        self.counts.resize(total, 0);
        match self.kind {
            FastKind::Count { every_row: true } => {
                count_rows(ids, None, &mut self.counts, runs);
                return Ok(());
            }
            FastKind::Count { every_row: false } => {
                let values = self.arg.evaluate(batch)?.into_array(ids.len())?;
                count_rows(ids, values.logical_nulls().as_ref(), &mut self.counts, runs);
                return Ok(());
            }
            FastKind::Avg | FastKind::SumReal => self.reals.resize(total, 0.0),
            FastKind::SumInt => self.ints.resize(total, 0),
        }
        let values = self.arg.evaluate(batch)?.into_array(ids.len())?;
        let (counts, reals, ints) = (&mut self.counts, &mut self.reals, &mut self.ints);
        macro_rules! add {
            ($t:ty) => {{
                let a = values.as_primitive::<$t>();
                if self.kind == FastKind::SumInt {
                    add_rows(ids, a.values(), a.nulls(), ints, counts, runs, |s, v| {
                        s.wrapping_add(v as i64)
                    })
                } else {
                    let add = |s: f64, v| s + v as f64;
                    add_rows(ids, a.values(), a.nulls(), reals, counts, runs, add)
                }
            }};
        }
        match values.data_type() {
            DataType::Float64 => {
                let a = values.as_primitive::<deltalake::arrow::datatypes::Float64Type>();
                add_rows(ids, a.values(), a.nulls(), reals, counts, runs, |s, v| {
                    s + v
                })
            }
            DataType::Int8 => add!(Int8Type),
            DataType::Int16 => add!(Int16Type),
            DataType::Int32 => add!(Int32Type),
            DataType::Int64 => add!(Int64Type),
            DataType::UInt8 => add!(UInt8Type),
            DataType::UInt16 => add!(UInt16Type),
            DataType::UInt32 => add!(UInt32Type),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "SmallGroupsExec cannot add values of type {other}"
                )))
            }
        }
        Ok(())
    }

    /// Each row's own partial state: count 1 (0 for a null value), the value as the sum
    /// (null for a null value).
    fn row_states(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        use deltalake::arrow::array::UInt64Array;
        let n = batch.num_rows();
        if self.kind == (FastKind::Count { every_row: true }) {
            return Ok(vec![Arc::new(Int64Array::from(vec![1i64; n]))]);
        }
        let values = self.arg.evaluate(batch)?.into_array(n)?;
        let nulls = values.logical_nulls();
        let valid = |i: usize| nulls.as_ref().is_none_or(|b| b.is_valid(i));
        Ok(match self.kind {
            FastKind::Count { .. } => {
                let counts: Vec<i64> = (0..n).map(|i| i64::from(valid(i))).collect();
                vec![Arc::new(Int64Array::from(counts))]
            }
            FastKind::Avg => vec![
                Arc::new(UInt64Array::new(vec![1u64; n].into(), nulls.clone())),
                cast(&values, &DataType::Float64)?,
            ],
            FastKind::SumReal => vec![cast(&values, &DataType::Float64)?],
            FastKind::SumInt => vec![cast(&values, &DataType::Int64)?],
        })
    }

    /// The partial state of every group, as DataFusion's accumulator gives it; the state
    /// starts again empty.
    fn state(&mut self) -> Vec<ArrayRef> {
        use deltalake::arrow::array::{Float64Array, UInt64Array};
        use deltalake::arrow::buffer::NullBuffer;
        let counts = std::mem::take(&mut self.counts);
        let seen = || NullBuffer::from(counts.iter().map(|&c| c > 0).collect::<Vec<_>>());
        match self.kind {
            FastKind::Count { .. } => {
                let counts: Vec<i64> = counts.iter().map(|&c| c as i64).collect();
                vec![Arc::new(Int64Array::from(counts))]
            }
            FastKind::Avg => {
                let nulls = seen();
                let sums = std::mem::take(&mut self.reals);
                vec![
                    Arc::new(UInt64Array::new(counts.into(), Some(nulls.clone()))),
                    Arc::new(Float64Array::new(sums.into(), Some(nulls))),
                ]
            }
            FastKind::SumReal => {
                let nulls = seen();
                let sums = std::mem::take(&mut self.reals);
                vec![Arc::new(Float64Array::new(sums.into(), Some(nulls)))]
            }
            FastKind::SumInt => {
                let nulls = seen();
                let sums = std::mem::take(&mut self.ints);
                vec![Arc::new(Int64Array::new(sums.into(), Some(nulls)))]
            }
        }
    }
}

/// Whether `t` is an integer type that fits `i64` (every one but `UInt64`): the types of the
/// keys this operator packs, and of the arguments whose cast to `Float64` or `Int64` it
/// makes on the way (as Rust's `as` does).
fn integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

/// The rows `ids[i..j]` of one group in a row, from `i`.
fn run_end(ids: &[usize], i: usize) -> usize {
    let g = ids[i];
    let mut j = i + 1;
    while j < ids.len() && ids[j] == g {
        j += 1;
    }
    j
}

/// Counts each group's rows that are not null (every row when `nulls` is none), a run at
/// a time when `runs`.
fn count_rows(
    ids: &[usize],
    nulls: Option<&deltalake::arrow::buffer::NullBuffer>,
    counts: &mut [u64],
    runs: bool,
) {
    if !runs {
        match nulls {
            None => ids.iter().for_each(|&g| counts[g] += 1),
            Some(nulls) => {
                for (i, &g) in ids.iter().enumerate() {
                    counts[g] += u64::from(nulls.is_valid(i));
                }
            }
        }
        return;
    }
    let mut i = 0;
    while i < ids.len() {
        let j = run_end(ids, i);
        let n = match nulls {
            None => j - i,
            Some(nulls) => (i..j).filter(|&k| nulls.is_valid(k)).count(),
        };
        counts[ids[i]] += n as u64;
        i = j;
    }
}

/// Adds each row's value that is not null to its group's sum (`add(sum, value)`, in row
/// order) and counts it: a run of one group's rows at a time when `runs` (the sum stays in
/// a register), else row by row.
fn add_rows<T: Copy, A: Copy>(
    ids: &[usize],
    values: &[T],
    nulls: Option<&deltalake::arrow::buffer::NullBuffer>,
    sums: &mut [A],
    counts: &mut [u64],
    runs: bool,
    add: impl Fn(A, T) -> A,
) {
    if !runs {
        match nulls {
            None => {
                for (&g, &v) in ids.iter().zip(values) {
                    sums[g] = add(sums[g], v);
                    counts[g] += 1;
                }
            }
            Some(nulls) => {
                for (i, (&g, &v)) in ids.iter().zip(values).enumerate() {
                    if nulls.is_valid(i) {
                        sums[g] = add(sums[g], v);
                        counts[g] += 1;
                    }
                }
            }
        }
        return;
    }
    let mut i = 0;
    while i < ids.len() {
        let j = run_end(ids, i);
        let g = ids[i];
        let mut sum = sums[g];
        let n = match nulls {
            None => {
                for &v in &values[i..j] {
                    sum = add(sum, v);
                }
                j - i
            }
            Some(nulls) => {
                let mut n = 0;
                for (k, &v) in values.iter().enumerate().take(j).skip(i) {
                    if nulls.is_valid(k) {
                        sum = add(sum, v);
                        n += 1;
                    }
                }
                n
            }
        };
        sums[g] = sum;
        counts[g] += n as u64;
        i = j;
    }
}

/// The groups: packed small keys, short strings, or DataFusion's hash table once they are
/// neither.
enum Groups {
    Small(Packed),
    Short(Short),
    Hashed(Box<dyn GroupValues>),
}

impl Groups {
    fn len(&self) -> usize {
        match self {
            Groups::Small(p) => p.len,
            Groups::Short(s) => s.len(),
            Groups::Hashed(g) => g.len(),
        }
    }

    fn size(&self) -> usize {
        match self {
            Groups::Small(p) => p.size(),
            Groups::Short(s) => s.size(),
            Groups::Hashed(g) => g.size(),
        }
    }

    fn intern(&mut self, keys: &[ArrayRef], ids: &mut Vec<usize>) -> Result<()> {
        let fits = match self {
            Groups::Small(p) => p.intern(keys, ids)?,
            Groups::Short(s) => s.intern(&keys[0], ids),
            Groups::Hashed(g) => return g.intern(keys, ids),
        };
        if fits {
            return Ok(());
        }
        // The ranges need too many bits, or a string is not short: go on with DataFusion's
        // table, holding the groups found so far under the same ids.
        let fields = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                deltalake::arrow::datatypes::Field::new(
                    format!("k{i}"),
                    k.data_type().clone(),
                    true,
                )
            })
            .collect::<Vec<_>>();
        let mut hashed = new_group_values(
            Arc::new(deltalake::arrow::datatypes::Schema::new(fields)),
            &GroupOrdering::None,
        )?;
        if self.len() > 0 {
            let seen = self.emit()?;
            let mut first = Vec::new();
            hashed.intern(&seen, &mut first)?;
        }
        *self = Groups::Hashed(hashed);
        self.intern(keys, ids)
    }

    /// The key columns of every group, in id order; the groups are cleared.
    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        match self {
            Groups::Small(p) => p.emit(),
            Groups::Short(s) => s.emit(),
            Groups::Hashed(g) => g.emit(EmitTo::All),
        }
    }
}

/// Groups of one string key with few distinct values. A string view of at most 12 bytes
/// holds the string itself, so its 16 bytes are the key, hashed and compared as one number
/// (carriers, airports, country codes) without reading a string buffer. A longer string's
/// view names where its bytes are (buffer and offset): within one batch, rows of one view
/// hold one string (a dimension's name repeated by a join points at the same bytes), so
/// each distinct view of a batch is looked up by its bytes once, and its rows by the view.
#[derive(Default)]
struct Short {
    /// Inline views (the strings themselves) to group ids.
    inline: Views,
    /// This batch's views of longer strings to group ids (cleared for each batch).
    batch: Views,
    /// Longer strings to group ids.
    long: std::collections::HashMap<Box<str>, u32>,
    /// The bytes of the strings in `long` (kept as they come: `size` runs every batch).
    long_bytes: usize,
    /// Each group's string (`None`: the group of null keys), in id order.
    keys: Vec<Option<Box<str>>>,
    /// The group of null keys, when one came.
    null: Option<u32>,
}

/// The most groups [`Short`] keeps before DataFusion's table takes over.
const SHORT_MAX: usize = 1 << 16;

/// An open-addressing table from 16-byte views to group ids.
#[derive(Default)]
struct Views {
    views: Vec<u128>,
    /// Each slot's group id + 1 (0: empty).
    slots: Vec<u32>,
    len: usize,
}

impl Views {
    fn size(&self) -> usize {
        self.views.capacity() * 16 + self.slots.capacity() * 4
    }

    fn clear(&mut self) {
        if self.len > 0 {
            self.slots.iter_mut().for_each(|s| *s = 0);
            self.len = 0;
        }
    }

    /// The slot of `view`: its group's, or the empty one where it goes.
    fn slot(&self, view: u128) -> usize {
        let mask = self.slots.len() - 1;
        // Multiplicative hashing: the product's top bits depend on every bit of the view.
        let h = ((view as u64) ^ ((view >> 64) as u64).rotate_left(29))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut i = (h >> (64 - self.slots.len().trailing_zeros())) as usize & mask;
        while self.slots[i] != 0 && self.views[i] != view {
            i = (i + 1) & mask;
        }
        i
    }

    /// The group of `view`, or `make()`'s, recorded for it.
    fn get_or(&mut self, view: u128, make: impl FnOnce() -> u32) -> u32 {
        if self.len * 2 >= self.slots.len() {
            let old: Vec<(u128, u32)> = self
                .views
                .iter()
                .zip(&self.slots)
                .filter(|(_, &s)| s != 0)
                .map(|(&v, &s)| (v, s))
                .collect();
            let size = (self.slots.len() * 2).max(64);
            self.views = vec![0; size];
            self.slots = vec![0; size];
            for (v, s) in old {
                let i = self.slot(v);
                self.views[i] = v;
                self.slots[i] = s;
            }
        }
        let i = self.slot(view);
        if self.slots[i] == 0 {
            self.views[i] = view;
            self.slots[i] = make() + 1;
            self.len += 1;
        }
        self.slots[i] - 1
    }
}

impl Short {
    fn len(&self) -> usize {
        self.keys.len()
    }

    fn size(&self) -> usize {
        self.inline.size()
            + self.batch.size()
            + self.keys.capacity() * 16
            + self.long.capacity() * 24
            + self.long_bytes * 2
    }

    /// Group ids of the rows of `key`; false (the groups found may have grown, the ids are
    /// not to be used) when the groups would pass [`SHORT_MAX`].
    fn intern(&mut self, key: &ArrayRef, ids: &mut Vec<usize>) -> bool {
        let key = key.as_string_view();
        let views = key.views();
        let nulls = key.logical_nulls();
        self.batch.clear();
        ids.clear();
        ids.reserve(views.len());
        let Short {
            inline,
            batch,
            long,
            long_bytes,
            keys,
            null,
        } = self;
        for (row, &view) in views.iter().enumerate() {
            if keys.len() >= SHORT_MAX {
                return false;
            }
            let id = if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                *null.get_or_insert_with(|| {
                    keys.push(None);
                    keys.len() as u32 - 1
                })
            } else if view as u32 <= 12 {
                inline.get_or(view, || {
                    keys.push(Some(key.value(row).into()));
                    keys.len() as u32 - 1
                })
            } else {
                batch.get_or(view, || {
                    let text = key.value(row);
                    match long.get(text) {
                        Some(&id) => id,
                        None => {
                            let id = keys.len() as u32;
                            keys.push(Some(text.into()));
                            long.insert(text.into(), id);
                            *long_bytes += text.len();
                            id
                        }
                    }
                })
            };
            ids.push(id as usize);
        }
        true
    }

    /// The key column of every group, in id order; the groups are cleared.
    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let taken = std::mem::take(self);
        let keys = taken.keys.iter().map(|k| k.as_deref());
        Ok(vec![Arc::new(
            deltalake::arrow::array::StringViewArray::from_iter(keys),
        )])
    }
}

/// Groups of integer keys packed into an index: key `k` of a row is `value - base[k] + 1`
/// (0 for null) in `bits[k]` bits.
struct Packed {
    types: Vec<DataType>,
    base: Vec<i64>,
    bits: Vec<u32>,
    /// Packed key to group id + 1 (0: no group yet); empty until the first rows.
    table: Vec<u32>,
    /// Each group's keys (None for null), key by key, in id order.
    values: Vec<Vec<Option<i64>>>,
    len: usize,
    /// Each row's packed key (reused between batches).
    packed: Vec<u32>,
}

impl Packed {
    fn new(types: Vec<DataType>) -> Self {
        let k = types.len();
        Packed {
            types,
            base: vec![0; k],
            bits: vec![0; k],
            table: Vec::new(),
            values: vec![Vec::new(); k],
            len: 0,
            packed: Vec::new(),
        }
    }

    fn size(&self) -> usize {
        self.table.capacity() * 4
            + self.packed.capacity() * 4
            + self.values.iter().map(|v| v.capacity() * 16).sum::<usize>()
    }

    /// Group ids of the rows of `keys`; false (nothing interned) when the keys' ranges need
    /// more than [`MAX_BITS`] bits.
    fn intern(&mut self, keys: &[ArrayRef], ids: &mut Vec<usize>) -> Result<bool> {
        // Most batches fall within the ranges already covered: pack them at once, checking
        // each value on the way, and look for the keys' ranges only when one falls outside.
        let fits = !self.table.is_empty() && self.pack_all(keys)?;
        if !fits {
            if !self.widen(keys)? {
                return Ok(false);
            }
            self.pack_all(keys)?;
        }
        let n = keys[0].len();
        ids.clear();
        ids.reserve(n);
        for (row, &p) in self.packed.iter().enumerate() {
            let slot = &mut self.table[p as usize];
            if *slot == 0 {
                self.len += 1;
                *slot = self.len as u32;
                for (k, key) in keys.iter().enumerate() {
                    self.values[k].push(value(key, row));
                }
            }
            ids.push(*slot as usize - 1);
        }
        Ok(true)
    }

    /// Widens the table to cover every value of `keys`; false (nothing changed) when the
    /// ranges would need more than [`MAX_BITS`] bits.
    fn widen(&mut self, keys: &[ArrayRef]) -> Result<bool> {
        // Each key's range in this batch, against the range the table covers.
        let mut wider = self.table.is_empty();
        let mut lo = self.base.clone();
        let mut hi: Vec<i64> = self
            .base
            .iter()
            .zip(&self.bits)
            .map(|(b, bits)| b.saturating_add((1i64 << bits) - 2))
            .collect();
        for (k, key) in keys.iter().enumerate() {
            if let Some((min, max)) = range(key)? {
                if hi[k] < lo[k] {
                    // No value of this key seen yet (only nulls, or no rows).
                    (lo[k], hi[k]) = (min, max);
                    wider = true;
                } else if min < lo[k] || max > hi[k] {
                    lo[k] = lo[k].min(min);
                    hi[k] = hi[k].max(max);
                    wider = true;
                }
            }
        }
        if wider {
            let bits: Vec<u32> = lo
                .iter()
                .zip(&hi)
                .map(|(l, h)| {
                    let span = (*h as i128 - *l as i128 + 2) as u128;
                    span.next_power_of_two().trailing_zeros().max(1)
                })
                .collect();
            if bits.iter().sum::<u32>() > MAX_BITS {
                return Ok(false);
            }
            self.relayout(lo, bits);
        }
        Ok(true)
    }

    /// Packs each row's keys, key by key, into `packed`; false when a value falls outside
    /// the table's ranges (the packed codes are then not to be used).
    fn pack_all(&mut self, keys: &[ArrayRef]) -> Result<bool> {
        self.packed.clear();
        self.packed.resize(keys[0].len(), 0);
        let mut shift = 0;
        let mut fits = true;
        for (k, key) in keys.iter().enumerate() {
            fits &= pack(key, self.base[k], self.bits[k], shift, &mut self.packed)?;
            shift += self.bits[k];
        }
        Ok(fits)
    }

    /// A table for new ranges, holding the groups found so far under their ids.
    fn relayout(&mut self, base: Vec<i64>, bits: Vec<u32>) {
        self.base = base;
        self.bits = bits;
        let total: u32 = self.bits.iter().sum();
        self.table = vec![0; 1usize << total];
        for id in 0..self.len {
            let mut p = 0usize;
            let mut shift = 0;
            for k in 0..self.base.len() {
                let code = match self.values[k][id] {
                    Some(v) => (v - self.base[k] + 1) as usize,
                    None => 0,
                };
                p |= code << shift;
                shift += self.bits[k];
            }
            self.table[p] = id as u32 + 1;
        }
    }

    /// The key columns of every group, in id order, in their own types; the table is left
    /// empty (no groups, no ranges).
    fn emit(&mut self) -> Result<Vec<ArrayRef>> {
        let taken = std::mem::replace(self, Packed::new(self.types.clone()));
        taken
            .values
            .into_iter()
            .zip(&taken.types)
            .map(|(v, t)| {
                let column: ArrayRef = Arc::new(Int64Array::from(v));
                Ok(cast(&column, t)?)
            })
            .collect()
    }
}

/// Calls `$f::<T>` with the arrow type of an integer key column.
macro_rules! by_type {
    ($key:expr, $f:ident ( $($arg:expr),* )) => {
        match $key.data_type() {
            DataType::Int8 => $f::<Int8Type>($key.as_primitive(), $($arg),*),
            DataType::Int16 => $f::<Int16Type>($key.as_primitive(), $($arg),*),
            DataType::Int32 => $f::<Int32Type>($key.as_primitive(), $($arg),*),
            DataType::Int64 => $f::<Int64Type>($key.as_primitive(), $($arg),*),
            DataType::UInt8 => $f::<UInt8Type>($key.as_primitive(), $($arg),*),
            DataType::UInt16 => $f::<UInt16Type>($key.as_primitive(), $($arg),*),
            DataType::UInt32 => $f::<UInt32Type>($key.as_primitive(), $($arg),*),
            other => Err(DataFusionError::Internal(format!(
                "SmallGroupsExec got a key of type {other}"
            ))),
        }
    };
}

/// A primitive integer value as i64 (every type the rule admits fits).
trait Wide: Copy {
    fn wide(self) -> i64;
}

macro_rules! wide {
    ($($t:ty),*) => { $(impl Wide for $t { fn wide(self) -> i64 { self as i64 } })* };
}
wide!(i8, i16, i32, i64, u8, u16, u32);

/// The smallest and largest non-null value of a key column (None when all are null).
fn range(key: &ArrayRef) -> Result<Option<(i64, i64)>> {
    fn typed<T: ArrowNumericType>(a: &PrimitiveArray<T>) -> Result<Option<(i64, i64)>>
    where
        T::Native: Wide,
    {
        Ok(min(a).zip(max(a)).map(|(lo, hi)| (lo.wide(), hi.wide())))
    }
    by_type!(key, typed())
}

/// Adds each row's code for this key (`value - base + 1`, 0 for null) in `bits` bits at
/// `shift`; false when a value falls outside the range (its code would not fit).
fn pack(key: &ArrayRef, base: i64, bits: u32, shift: u32, packed: &mut [u32]) -> Result<bool> {
    fn typed<T: ArrowPrimitiveType>(
        a: &PrimitiveArray<T>,
        base: i64,
        bits: u32,
        shift: u32,
        packed: &mut [u32],
    ) -> Result<bool>
    where
        T::Native: Wide,
    {
        // The offset from the base, wrapped: a value below the base wraps to a huge offset.
        // Checked without comparisons, so that it vectorises on baseline x86-64 (which has
        // no 64-bit compare): an offset fits when neither it nor its code (offset + 1) has a
        // bit at `bits` or above.
        let values = a.values();
        let mut high = 0u64;
        match a.nulls() {
            None => {
                for (p, v) in packed.iter_mut().zip(values.iter()) {
                    let offset = v.wide().wrapping_sub(base) as u64;
                    let code = offset.wrapping_add(1);
                    high |= (offset | code) >> bits;
                    *p |= (code as u32) << shift;
                }
            }
            Some(nulls) => {
                for (i, (p, v)) in packed.iter_mut().zip(values.iter()).enumerate() {
                    if nulls.is_valid(i) {
                        let offset = v.wide().wrapping_sub(base) as u64;
                        let code = offset.wrapping_add(1);
                        high |= (offset | code) >> bits;
                        *p |= (code as u32) << shift;
                    }
                }
            }
        }
        let outside = high != 0;
        Ok(!outside)
    }
    by_type!(key, typed(base, bits, shift, packed))
}

/// A key's value at `row` as i64.
fn value(key: &ArrayRef, row: usize) -> Option<i64> {
    if key.is_null(row) {
        return None;
    }
    fn typed<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, row: usize) -> Result<i64>
    where
        T::Native: Wide,
    {
        Ok(a.value(row).wide())
    }
    by_type!(key, typed(row)).ok()
}

#[cfg(test)]
mod tests {
    use crate::{Engine, QueryOptions};
    use deltalake::arrow::util::pretty::pretty_format_batches;
    use deltalake::datafusion::prelude::SessionContext;

    /// Grouped by integer keys of several types, with nulls, negative values, ranges that
    /// widen from batch to batch, a key whose range outgrows the packed table part way (the
    /// groups go on in DataFusion's hash table), by one string key (short, null, then long),
    /// and a filtered aggregate: tarn's answers are DataFusion's own, and the plans use the
    /// small-groups operator.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouping_by_small_integers_answers_as_datafusion_does() {
        let engine = Engine::new(Vec::new());
        let reference = SessionContext::new();
        // Floats with nulls (every row of group 3 of `a / 700`), sums and averages of
        // integers cast on the way, counts of a column with nulls.
        let real = "CASE WHEN a % 7 = 0 OR a / 700 = 3 THEN NULL ELSE a * 0.37 END";
        let aggregates = format!(
            "count(*) AS n, sum(a) AS s, round(avg(a), 6) AS m, min(a) AS lo, \
             max(a) AS hi, count(*) FILTER (WHERE a % 2 = 0) AS even, \
             round(sum({real}), 4) AS sr, round(avg({real}), 6) AS ar, count({real}) AS cr, \
             sum(CAST(a % 100 AS INT)) AS si, round(avg(CAST(a % 100 AS SMALLINT)), 6) AS ai"
        );
        for (keys, names) in [
            (
                "CAST(a % 12 AS INT) AS month, CAST(a % 31 AS SMALLINT) AS day",
                "month, day",
            ),
            (
                "CASE WHEN a % 11 = 0 THEN NULL ELSE a % 7 - 3 END AS k1, CAST(a % 5 AS TINYINT UNSIGNED) AS k2",
                "k1, k2",
            ),
            ("a / 1000 AS grows, a % 3 AS k2", "grows, k2"),
            // One string key: short strings in runs of three rows, with nulls; then strings
            // longer than a view holds from the middle on, in several batches.
            (
                "CASE WHEN a % 17 = 0 THEN NULL ELSE arrow_cast(CAST((a / 3) % 13 AS VARCHAR), 'Utf8View') END AS code",
                "code",
            ),
            (
                "arrow_cast(CASE WHEN a > 50000 THEN concat('a name past twelve bytes ', CAST(a % 3 AS VARCHAR)) ELSE CAST(a % 5 AS VARCHAR) END, 'Utf8View') AS name",
                "name",
            ),
            // Sorted keys: runs of 700 rows of one group.
            ("a / 700 AS run, a / 20000 AS sorted", "run, sorted"),
            ("a / 2 AS wide, a % 2 AS k2", "wide, k2"),
            (
                "a / 10 + 9223372036854765807 AS top, -9223372036854775807 - a % 3 AS bottom",
                "top, bottom",
            ),
            (
                "CASE WHEN a > 99990 THEN a % 3 - 5 END AS late, a % 4 AS k2",
                "late, k2",
            ),
        ] {
            let sql = format!(
                "SELECT {keys}, {aggregates} FROM generate_series(1, 100000) t(a) \
                 GROUP BY {names} ORDER BY {names}"
            );
            let explained = engine
                .sql(&format!("EXPLAIN {sql}"), &QueryOptions::default())
                .await
                .unwrap();
            let plan = format!("{:?}", explained.batches);
            assert!(plan.contains("SmallGroups"), "{keys}: {plan}");
            let ours = engine.sql(&sql, &QueryOptions::default()).await.unwrap();
            let theirs = reference.sql(&sql).await.unwrap().collect().await.unwrap();
            let ours = pretty_format_batches(&ours.batches).unwrap().to_string();
            let theirs = pretty_format_batches(&theirs).unwrap().to_string();
            assert!(ours.lines().count() > 5, "{keys}: {ours}");
            assert_eq!(ours, theirs, "{keys}");
        }
        // More distinct strings than the short-string table keeps: the groups go on in
        // DataFusion's table, none lost or counted twice.
        let sql = "SELECT count(*) AS groups, sum(n) AS rows, max(m) AS top FROM (\
                   SELECT arrow_cast(CAST(a % 90000 AS VARCHAR), 'Utf8View') AS k, count(*) AS n, \
                   avg(a) AS m FROM generate_series(1, 200000) t(a) GROUP BY k)";
        let explained = engine
            .sql(&format!("EXPLAIN {sql}"), &QueryOptions::default())
            .await
            .unwrap();
        assert!(format!("{:?}", explained.batches).contains("SmallGroups"));
        let ours = engine.sql(sql, &QueryOptions::default()).await.unwrap();
        let theirs = reference.sql(sql).await.unwrap().collect().await.unwrap();
        let ours = pretty_format_batches(&ours.batches).unwrap().to_string();
        assert!(ours.contains("| 90000  | 200000 |"), "{ours}");
        assert_eq!(ours, pretty_format_batches(&theirs).unwrap().to_string());
        // A group for nearly every row, by a string key and by integer keys too wide to
        // pack: past the probe each row goes on as its own state, every aggregate's.
        for keys in [
            "arrow_cast(CAST(a AS VARCHAR), 'Utf8View') AS k",
            "a * 3 AS k, a % 2 AS k2",
        ] {
            let names = if keys.contains("k2") { "k, k2" } else { "k" };
            let sql = format!(
                "SELECT count(*) AS groups, sum(n) AS rows, sum(s) AS s, round(sum(sr), 2) AS sr, \
                 sum(cr) AS cr, min(lo) AS lo, max(hi) AS hi, sum(even) AS even, \
                 round(sum(ar), 2) AS ar, sum(si) AS si FROM (SELECT {keys}, {aggregates} \
                 FROM generate_series(1, 300000) t(a) GROUP BY {names})"
            );
            let explained = engine
                .sql(&format!("EXPLAIN {sql}"), &QueryOptions::default())
                .await
                .unwrap();
            assert!(format!("{:?}", explained.batches).contains("SmallGroups"));
            let ours = engine.sql(&sql, &QueryOptions::default()).await.unwrap();
            let theirs = reference.sql(&sql).await.unwrap().collect().await.unwrap();
            let ours = pretty_format_batches(&ours.batches).unwrap().to_string();
            assert!(ours.contains("| 300000 | 300000 |"), "{keys}: {ours}");
            assert_eq!(
                ours,
                pretty_format_batches(&theirs).unwrap().to_string(),
                "{keys}"
            );
        }
    }

    /// Under a memory pool too small for its groups, the partial stage (grouped by a short
    /// string key) gives its groups out early and starts again, batch after batch: the
    /// partial states it answers hold some groups more than once, and merged they are
    /// exactly the groups and aggregates DataFusion answers with memory to spare.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pool_too_small_for_the_groups_gives_them_out_early_and_loses_none() {
        use deltalake::arrow::array::RecordBatch;
        use deltalake::arrow::datatypes::{Field, Schema};
        use deltalake::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        use deltalake::datafusion::datasource::MemTable;
        use deltalake::datafusion::execution::memory_pool::GreedyMemoryPool;
        use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use deltalake::datafusion::execution::session_state::SessionStateBuilder;
        use deltalake::datafusion::execution::TaskContext;
        use deltalake::datafusion::physical_plan::{collect, ExecutionPlan};
        use deltalake::datafusion::prelude::SessionConfig;
        use std::sync::Arc;
        let rows = "SELECT arrow_cast(CAST(a % 5000 AS VARCHAR), 'Utf8View') AS k, a \
                    FROM generate_series(1, 60000) t(a)";
        let ctx = SessionContext::new_with_state(
            SessionStateBuilder::new()
                .with_config(SessionConfig::new().with_target_partitions(2))
                .with_default_features()
                .with_physical_optimizer_rule(Arc::new(super::SmallGroups))
                .build(),
        );
        let plan = ctx
            .sql(&format!(
                "SELECT k, count(*), sum(a), min(a) FROM ({rows}) GROUP BY k"
            ))
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut partial: Option<Arc<dyn ExecutionPlan>> = None;
        plan.apply(|node| {
            if node.name() == "SmallGroupsExec" {
                partial = Some(node.clone());
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        let partial = partial.expect("the partial stage is the small-groups operator");
        let tight = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(32 * 1024)))
            .build_arc()
            .unwrap();
        let states = collect(
            partial,
            Arc::new(TaskContext::default().with_runtime(tight)),
        )
        .await
        .unwrap();
        let given: usize = states.iter().map(|b| b.num_rows()).sum();
        assert!(
            states.len() > 2 && given > 5000,
            "{} batches, {given} partial groups: the groups were never given out early",
            states.len()
        );
        // The partial states, merged as the final stage merges them.
        let schema = Arc::new(Schema::new(
            ["k", "n", "s", "lo"]
                .iter()
                .zip(states[0].schema().fields())
                .map(|(name, f)| Field::new(*name, f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let states: Vec<RecordBatch> = states
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()).unwrap())
            .collect();
        let merged = SessionContext::new();
        merged
            .register_table(
                "p",
                Arc::new(MemTable::try_new(schema, vec![states]).unwrap()),
            )
            .unwrap();
        let ours = merged
            .sql("SELECT k, sum(n) AS n, sum(s) AS s, min(lo) AS lo FROM p GROUP BY k ORDER BY k")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let theirs = SessionContext::new()
            .sql(&format!(
                "SELECT k, count(*) AS n, sum(a) AS s, min(a) AS lo FROM ({rows}) GROUP BY k ORDER BY k"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let (ours, theirs) = (
            pretty_format_batches(&ours).unwrap().to_string(),
            pretty_format_batches(&theirs).unwrap().to_string(),
        );
        assert_eq!(ours.lines().count(), 5000 + 4);
        let differ = ours.lines().zip(theirs.lines()).find(|(a, b)| a != b);
        assert_eq!(
            differ, None,
            "merged partial states against DataFusion's answer"
        );
    }
}
