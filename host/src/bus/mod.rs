//! Kafka: the connection to the cluster (or the embedded broker), the
//! producer, topic creation, and one consume loop per handler.
//!
//! Nothing here knows about files, the folder watcher or HTTP.

mod consumer;
mod embedded;
mod publisher;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

pub use consumer::{ConsumerSettings, HandlerLoop};
use embedded::EmbeddedBroker;
pub use publisher::{PublishError, Publisher, Stored};

use crate::config::Config;
use crate::event::Topic;

/// Which broker the host talks to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerInfo {
    /// `embedded` (in-process, in-memory, for development) or `external`.
    pub mode: &'static str,
    pub bootstrap_servers: String,
}

pub struct Bus {
    info: BrokerInfo,
    publisher: Publisher,
    topics: TopicAdmin,
    settings: ConsumerSettings,
    /// Topics known to exist, so each is created once.
    known: Mutex<BTreeSet<Topic>>,
    partitions: i32,
}

enum TopicAdmin {
    Cluster(AdminClient<DefaultClientContext>, i32),
    // Dropped last (field order of `Bus` drops the publisher first).
    Embedded(EmbeddedBroker),
}

impl Bus {
    /// Connects to `KAFKA_BROKERS`, or starts the embedded broker.
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let (info, topics) = match &config.kafka_brokers {
            Some(brokers) => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .create()
                    .context("cannot create the Kafka admin client")?;
                let info = BrokerInfo {
                    mode: "external",
                    bootstrap_servers: brokers.clone(),
                };
                (info, TopicAdmin::Cluster(admin, config.topic_replication))
            }
            None => {
                let broker = EmbeddedBroker::start()?;
                let info = BrokerInfo {
                    mode: "embedded",
                    bootstrap_servers: broker.bootstrap_servers().to_string(),
                };
                (info, TopicAdmin::Embedded(broker))
            }
        };
        let publisher = Publisher::new(&info.bootstrap_servers, config.publish_timeout())?;
        let settings = ConsumerSettings {
            brokers: info.bootstrap_servers.clone(),
            offset_reset: config.offset_reset,
            max_attempts: config.max_attempts.max(1),
            retry_backoff: config.retry_backoff(),
        };
        Ok(Self {
            info,
            publisher,
            topics,
            settings,
            known: Mutex::new(BTreeSet::new()),
            partitions: config.topic_partitions,
        })
    }

    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    pub fn consumer_settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    /// Creates the topics that do not exist yet, each with its dead-letter
    /// topic. Creating an existing topic is not an error.
    pub async fn ensure_topics(&self, topics: &[Topic]) -> anyhow::Result<()> {
        let wanted: Vec<Topic> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            topics
                .iter()
                .flat_map(|t| [t.clone(), t.dead_letters()])
                .filter(|t| !known.contains(t))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        match &self.topics {
            TopicAdmin::Embedded(broker) => {
                for t in &wanted {
                    broker.create_topic(t.as_str(), self.partitions).await?;
                }
            }
            TopicAdmin::Cluster(admin, replication) => {
                let new: Vec<NewTopic> = wanted
                    .iter()
                    .map(|t| {
                        NewTopic::new(
                            t.as_str(),
                            self.partitions,
                            TopicReplication::Fixed(*replication),
                        )
                    })
                    .collect();
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                let results = admin.create_topics(&new, &options).await.with_context(|| {
                    format!("cannot create topics on {}", self.info.bootstrap_servers)
                })?;
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
                    }
                }
            }
        }
        tracing::info!(topics = ?wanted.iter().map(Topic::as_str).collect::<Vec<_>>(), "topics ready");
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(wanted);
        Ok(())
    }

    /// Waits until queued events are delivered, at shut-down.
    pub fn flush(&self, timeout: Duration) {
        self.publisher.flush(timeout);
    }
}
