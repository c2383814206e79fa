//! The web UI's view of the endpoints this server hosts: their live versions, the minute
//! counters they keep, and scoring a request from the UI's form through the same path an
//! HTTP client's request takes (counted, logged to the inference table).

use std::sync::Arc;
use tarn_ui::endpoints::{Answer, Live, Serving, Traffic};

/// The largest answer the UI shows (a bigger one is cut, with a note).
const ANSWER_LIMIT: usize = 1 << 20;

pub(crate) struct Hosted(pub Arc<tarn_serving::Endpoints>);

impl Serving for Hosted {
    fn live(&self, name: &str) -> Option<Live> {
        self.0.status(name).map(|s| Live {
            version: s.version,
            canary_version: s.canary_version,
            runtime: s.runtime,
            state: s.state,
        })
    }

    fn traffic(&self, name: &str) -> Vec<Traffic> {
        self.0
            .minutes(name)
            .into_iter()
            .map(|m| Traffic {
                start: m.start,
                version: m.version,
                requests: m.requests,
                client_errors: m.client_errors,
                server_errors: m.server_errors,
                latency_mean_ms: m.latency_mean_ms,
                latency_p95_ms: m.latency_p95_ms,
            })
            .collect()
    }

    fn invoke(&self, name: &str, body: Vec<u8>) -> Answer {
        let endpoints = self.0.clone();
        let name = name.to_string();
        Box::pin(async move {
            let answer = endpoints.invoke(&name, body).await;
            let status = answer.status().as_u16();
            match axum::body::to_bytes(answer.into_body(), ANSWER_LIMIT).await {
                Ok(b) => (status, String::from_utf8_lossy(&b).into_owned()),
                Err(_) => (
                    status,
                    format!("(the answer is larger than {ANSWER_LIMIT} bytes; send fewer rows)"),
                ),
            }
        })
    }
}
