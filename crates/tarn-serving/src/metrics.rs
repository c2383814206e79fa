//! `/metrics` in Prometheus' text format: requests by endpoint, version and status code,
//! latency histograms by endpoint and version, queue depth, shed requests and the inference
//! log's written and buffered records.

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

/// Counters of every endpoint.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
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
