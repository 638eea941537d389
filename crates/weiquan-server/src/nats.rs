//! Ingest from NATS JetStream: at-least-once, acknowledged only once durable,
//! deduplicated by event id (a redelivered event is a duplicate, not a second fact).

use crate::AppState;
use futures::StreamExt;
use std::sync::Arc;

/// Durable consumer name.
pub const CONSUMER: &str = "weiquan";

/// The JetStream stream weiquan creates for `subject` (one stream per subject).
pub fn stream_name(subject: &str) -> String {
    let safe: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("WEIQUAN_{safe}")
}

/// Consumes `subject` until the task is dropped; each message is one event or NDJSON.
pub async fn consume(url: String, subject: String, app: Arc<AppState>) {
    loop {
        if let Err(e) = run(&url, &subject, &app).await {
            tracing::warn!(error = %e, %url, "NATS ingest stopped; retrying in 1 s");
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn run(url: &str, subject: &str, app: &Arc<AppState>) -> anyhow::Result<()> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream_name(subject),
            subjects: vec![subject.to_owned()],
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    tracing::info!(%url, %subject, "consuming events from NATS JetStream");
    let mut messages = consumer.messages().await?;
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        // Framed as a file is; a line that is not UTF-8 is refused here
        // (replacing its bad bytes would log an event nobody sent).
        let mut items = Vec::new();
        for (line, text) in weiquan_events::body_lines(&msg.payload) {
            match std::str::from_utf8(text) {
                Ok(text) => items.push(text.to_owned()),
                Err(e) => tracing::warn!(
                    line,
                    column = e.valid_up_to() + 1,
                    "NATS event rejected: the line is not valid UTF-8; re-encode it as UTF-8"
                ),
            }
        }
        // The stream is the platform's: its events are submitted as the platform's.
        let platform = crate::acts::Submitter::Party(crate::acts::Party {
            role: crate::Role::Platform,
            key: None,
        });
        match app.sequencer.ingest(platform, items).await {
            Ok(results) => {
                for r in results
                    .iter()
                    .filter(|r| matches!(r, crate::ItemResult::Rejected { .. }))
                {
                    tracing::warn!(?r, "NATS event rejected");
                }
                msg.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
            }
            // Not durable: leave it unacknowledged so that JetStream redelivers it.
            Err(crate::sequencer::IngestError::NotWritten(e)) => {
                tracing::error!(error = %e, "NATS batch not written; it will be redelivered")
            }
            Err(crate::sequencer::IngestError::Stopped(_)) => return Ok(()),
        }
    }
    Ok(())
}
