//! What a long-lived process (a server, a notebook, a benchmark) keeps between queries:
//! opened Delta tables, brought up to date with one log listing instead of a full open, and
//! the decoded rows of table versions queried more than once, within a memory budget.
//!
//! A one-shot CLI query never fills the row cache: a version is cached on its second query,
//! and one-shot CLI processes that query a table several times (a monitor run) turn it off.
//! Filling stops as soon as the rows pass half the budget, and a version found too big is
//! never read for the cache again: a table larger than the budget costs no more memory than
//! a scan of it.

use crate::cached::CachedRows;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    tables: HashMap<String, DeltaTable>,
    queried: HashMap<(String, i64), u32>,
    rows: HashMap<(String, i64), Arc<CachedRows>>,
    order: VecDeque<(String, i64)>,
    bytes: usize,
    /// Versions whose rows passed [`QueryCache::fill_limit`] while being read.
    too_big: HashSet<(String, i64)>,
}

/// Caches shared by every query of an [`crate::Engine`] and its successors.
#[derive(Debug)]
pub struct QueryCache {
    state: Mutex<State>,
    budget: usize,
}

impl Default for QueryCache {
    fn default() -> Self {
        let mb = std::env::var("TARN_QUERY_CACHE_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1024);
        QueryCache::with_budget(mb * 1024 * 1024)
    }
}

impl QueryCache {
    /// A cache that keeps at most `budget` bytes of decoded rows (0 turns rows caching off).
    pub fn with_budget(budget: usize) -> Self {
        QueryCache {
            state: Mutex::new(State::default()),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A previously opened table at `location`, to be brought up to date by the caller.
    pub(crate) fn table(&self, location: &str) -> Option<DeltaTable> {
        self.lock().tables.get(location).cloned()
    }

    pub(crate) fn put_table(&self, location: &str, table: DeltaTable) {
        self.lock().tables.insert(location.to_string(), table);
    }

    /// Cached rows of a version, and whether this query is a repeat (worth caching).
    pub(crate) fn rows(&self, location: &str, version: i64) -> (Option<Arc<CachedRows>>, bool) {
        let mut s = self.lock();
        let key = (location.to_string(), version);
        if let Some(r) = s.rows.get(&key).cloned() {
            return (Some(r), true);
        }
        if s.too_big.contains(&key) {
            return (None, false);
        }
        let n = s.queried.entry(key).or_insert(0);
        *n += 1;
        (None, *n >= 2 && self.budget > 0)
    }

    /// Bytes of decoded rows held now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The most bytes of decoded rows one version may fill the cache with (half the budget):
    /// reading for the cache stops past it.
    pub(crate) fn fill_limit(&self) -> usize {
        self.budget / 2
    }

    /// Remembers that a version's rows passed [`QueryCache::fill_limit`]: it is scanned from
    /// its files from now on, never read for the cache again.
    fn too_big(&self, location: &str, version: i64) {
        self.lock().too_big.insert((location.to_string(), version));
    }

    /// Keeps rows of a version, evicting the oldest versions beyond the budget.
    pub(crate) fn put_rows(
        &self,
        location: &str,
        version: i64,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        parts: usize,
    ) -> Option<Arc<CachedRows>> {
        let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
        if bytes > self.fill_limit() {
            self.too_big(location, version);
            return None;
        }
        let rows = Arc::new(CachedRows::new(
            (location, version),
            schema,
            batches,
            bytes,
            parts,
        ));
        let mut s = self.lock();
        let key = (location.to_string(), version);
        s.bytes += bytes;
        s.rows.insert(key.clone(), rows.clone());
        s.order.push_back(key);
        while s.bytes > self.budget {
            let Some(old) = s.order.pop_front() else {
                break;
            };
            if let Some(r) = s.rows.remove(&old) {
                s.bytes -= r.bytes;
                r.evict();
            }
        }
        Some(rows)
    }
}
