//! `/metrics` in Prometheus' text format: requests by endpoint, version and status code,
//! latency histograms by endpoint and version, queue depth, shed requests and the inference
//! log's written and buffered records; and the last hour minute by minute (requests, errors,
//! latency by version), which the web UI charts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Minutes of history kept per endpoint.
pub const MINUTES: i64 = 60;

/// One endpoint's requests to one version in one minute.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Minute {
    /// The minute's start, seconds since the epoch.
    pub start: i64,
    pub version: String,
    pub requests: u64,
    /// Answers with a 4xx status (the request was refused).
    pub client_errors: u64,
    /// Answers with a 5xx status (the endpoint failed, was busy or timed out).
    pub server_errors: u64,
    /// Mean time to answer, in milliseconds.
    pub latency_mean_ms: f64,
    /// The 95th percentile's bucket bound, in milliseconds (the histogram's resolution).
    pub latency_p95_ms: f64,
    #[serde(skip)]
    counts: [u64; BUCKETS.len() + 1],
    #[serde(skip)]
    sum: f64,
}

impl Minute {
    fn add(&mut self, status: u16, seconds: f64) {
        self.requests += 1;
        match status {
            400..=499 => self.client_errors += 1,
            500.. => self.server_errors += 1,
            _ => {}
        }
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.latency_mean_ms = self.sum / self.requests as f64 * 1000.0;
        let rank = (self.requests as f64 * 0.95).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                self.latency_p95_ms = BUCKETS.get(i).map(|b| b * 1000.0).unwrap_or(f64::INFINITY);
                break;
            }
        }
    }
}

/// One endpoint's last hour, by (minute, version).
type Hour = BTreeMap<(i64, String), Minute>;

/// Counters of every endpoint.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// Per endpoint, the last [`MINUTES`] minutes, by (minute, version).
    minutes: Mutex<BTreeMap<String, Hour>>,
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe(&self, endpoint: &str, version: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((endpoint.to_string(), version.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l
                .entry((endpoint.to_string(), version.to_string()))
                .or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
        let minute = chrono::Utc::now().timestamp().div_euclid(60) * 60;
        if let Ok(mut m) = self.minutes.lock() {
            let series = m.entry(endpoint.to_string()).or_default();
            series
                .entry((minute, version.to_string()))
                .or_insert_with(|| Minute {
                    start: minute,
                    version: version.to_string(),
                    ..Default::default()
                })
                .add(status, seconds);
            let oldest = minute - (MINUTES - 1) * 60;
            while series
                .first_key_value()
                .is_some_and(|((t, _), _)| *t < oldest)
            {
                series.pop_first();
            }
        }
    }

    /// Endpoint `endpoint`'s last hour on this node, oldest minute first (a minute without
    /// requests has no entry).
    pub fn minutes(&self, endpoint: &str) -> Vec<Minute> {
        self.minutes
            .lock()
            .ok()
            .and_then(|m| m.get(endpoint).map(|s| s.values().cloned().collect()))
            .unwrap_or_default()
    }

    /// The text of `/metrics`; `gauges` are per-endpoint values read at the time of the call
    /// (name, help, endpoint, value).
    pub fn render(&self, gauges: &[(&str, &str, String, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP tarn_endpoint_requests_total Requests answered, by endpoint, model version and HTTP status.\n# TYPE tarn_endpoint_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((e, v, s), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "tarn_endpoint_requests_total{{endpoint=\"{e}\",version=\"{v}\",code=\"{s}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP tarn_endpoint_request_duration_seconds Time from request to answer.\n# TYPE tarn_endpoint_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for ((e, v), h) in l.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "tarn_endpoint_request_duration_seconds_bucket{{endpoint=\"{e}\",version=\"{v}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "tarn_endpoint_request_duration_seconds_bucket{{endpoint=\"{e}\",version=\"{v}\",le=\"+Inf\"}} {}\ntarn_endpoint_request_duration_seconds_sum{{endpoint=\"{e}\",version=\"{v}\"}} {}\ntarn_endpoint_request_duration_seconds_count{{endpoint=\"{e}\",version=\"{v}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        let mut last = "";
        for (name, help, endpoint, value) in gauges {
            if *name != last {
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name;
            }
            let _ = writeln!(out, "{name}{{endpoint=\"{endpoint}\"}} {value}");
        }
        out
    }
}
