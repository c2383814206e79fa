//! What became of each notification the lake sent: every delivery of a message to a topic's
//! subscriptions (delivered or not, after how many attempts) recorded in the metadata store,
//! for pipelines' failures, monitors' alerts and `tarn notify` alike.

use crate::Lake;

impl Lake {
    /// Records each delivery of `subject` to `topic` (and logs those that failed); a store that
    /// cannot record is logged, never an error of the notification.
    pub async fn record_deliveries(
        &self,
        topic: &str,
        subject: &str,
        report: &[tarn_notify::Delivery],
    ) {
        for d in report {
            if !d.delivered {
                tracing::warn!(topic, protocol = d.protocol, endpoint = d.endpoint, error = ?d.error, "notification not delivered");
            }
            let record = tarn_metadata::DeliveryRecord {
                id: String::new(),
                topic: topic.to_string(),
                protocol: d.protocol.clone(),
                endpoint: d.endpoint.clone(),
                subject: subject.to_string(),
                delivered: d.delivered,
                attempts: d.attempts as i64,
                error: d.error.clone(),
                created_at: String::new(),
            };
            if let Err(e) = self.deliveries().record_delivery(&record).await {
                tracing::warn!("recording a delivery: {e}");
            }
        }
    }
}
