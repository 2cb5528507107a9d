//! Kafka: the connection to the cluster (or the embedded broker), the
//! producer, topic creation, and one consume loop per handler.
//!
//! Nothing here knows about files, the folder watcher or HTTP.

mod consume;
mod delivery;
mod embedded;
mod publisher;
mod redrive;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

#[cfg(test)]
pub use consume::test_hooks;
pub use consume::{
    ConsumerSettings, HandlerLoop, LoopFailed, ReplayFrom, Rewound, consumer_config,
};
use embedded::EmbeddedBroker;
pub use publisher::{Pending, PublishError, Publisher, Stored};
pub use redrive::{Redriven, redrive};

use crate::calls::Calls;
use crate::config::Config;
use crate::event::Topic;
use crate::kafka_config::KafkaProperties;
use crate::metrics::Metrics;
use crate::runtime::RetryPolicy;

/// Which broker the host talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `embedded` (in-process, in-memory, for development) or `external`.
    pub mode: &'static str,
    pub bootstrap_servers: String,
}

pub struct Bus {
    info: BrokerInfo,
    publisher: Publisher,
    metrics: Arc<Metrics>,
    calls: Arc<Calls>,
    topics: Arc<Topics>,
    settings: ConsumerSettings,
    properties: KafkaProperties,
}

/// Creates topics (each with its dead-letter topic) on first use. Shared
/// by the API and the consume loops, which publish what handlers publish.
pub struct Topics {
    admin: TopicAdmin,
    /// Topics created (or found) together with their dead-letter topics,
    /// so each is created once.
    known: Mutex<BTreeSet<Topic>>,
    partitions: i32,
    bootstrap: String,
}

enum TopicAdmin {
    Cluster(AdminClient<DefaultClientContext>, i32),
    /// Dropped with the last user of [`Topics`], after the consume loops.
    Embedded(EmbeddedBroker),
}

impl Bus {
    /// Connects to `KAFKA_BROKERS`, or starts the embedded broker.
    pub fn connect(config: &Config) -> anyhow::Result<Self> {
        let properties = KafkaProperties::load(
            config.kafka_config_file.as_deref(),
            &config.kafka_client_vars,
        )?;
        let brokers = match (&config.kafka_brokers, properties.bootstrap_servers()) {
            (Some(a), Some(b)) if a != b => anyhow::bail!(
                "KAFKA_BROKERS ({a}) and bootstrap.servers in KAFKA_CONFIG_FILE ({b}) differ: keep one"
            ),
            (Some(a), _) => Some(a.clone()),
            (None, b) => b.map(str::to_string),
        };
        let (info, topics) = match &brokers {
            Some(brokers) => {
                let admin: AdminClient<DefaultClientContext> = properties
                    .client(brokers)
                    // Looking a topic up must not create it with the
                    // broker's defaults.
                    .set("allow.auto.create.topics", "false")
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
        let metrics = Arc::new(Metrics::new());
        let publisher = Publisher::new(
            properties.client(&info.bootstrap_servers),
            config.publish_timeout(),
            config.linger,
            metrics.clone(),
        )?;
        let settings = ConsumerSettings::new(config, properties.client(&info.bootstrap_servers));
        Ok(Self {
            topics: Arc::new(Topics {
                admin: topics,
                known: Mutex::new(BTreeSet::new()),
                partitions: config.topic_partitions,
                bootstrap: info.bootstrap_servers.clone(),
            }),
            info,
            publisher,
            metrics,
            calls: Arc::new(Calls::new(config.call_history)),
            settings,
            properties,
        })
    }

    /// A new client's base configuration: the bootstrap servers and the
    /// operator's librdkafka properties. Every client starts from it.
    pub fn client_config(&self) -> ClientConfig {
        self.properties.client(&self.info.bootstrap_servers)
    }

    /// The operator's librdkafka properties, secrets redacted.
    pub fn properties(&self) -> std::collections::BTreeMap<String, String> {
        self.properties.redacted()
    }

    /// The host's metrics, counted by the API and the consume loops.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The record of recent handler calls.
    pub fn calls(&self) -> &Arc<Calls> {
        &self.calls
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

    pub fn topics(&self) -> &Arc<Topics> {
        &self.topics
    }

    /// Creates the topics that do not exist yet; see [`Topics::ensure`].
    pub async fn ensure_topics(&self, topics: &[Topic]) -> anyhow::Result<()> {
        self.topics.ensure(topics).await
    }

    /// Waits until queued events are delivered, at shut-down.
    pub fn flush(&self, timeout: Duration) {
        self.publisher.flush(timeout);
    }
}

impl ConsumerSettings {
    /// The consume loops' settings from the host's configuration.
    pub fn new(config: &Config, client: ClientConfig) -> Self {
        Self {
            client,
            offset_reset: config.offset_reset,
            retry: RetryPolicy {
                max_attempts: config.max_attempts.max(1),
                backoff: config.retry_backoff(),
            },
            session_timeout: Duration::from_millis(config.session_timeout_ms),
            fetch_wait: Duration::from_millis(config.fetch_wait_ms),
            prefetch_kib: config.prefetch_kib,
            lag_interval: Duration::from_millis(config.lag_interval_ms),
            max_retry_time: Duration::from_millis(config.max_retry_time_ms),
            partition_concurrency: config.partition_concurrency,
            revoke_grace: config.handler_timeout() + config.publish_timeout(),
        }
    }
}

impl Topics {
    /// Creates the topics that do not exist yet, each with its dead-letter
    /// topic. Creating an existing topic is not an error.
    pub async fn ensure(&self, topics: &[Topic]) -> anyhow::Result<()> {
        // Every API publish passes here: when all were ensured before, return
        // without allocating.
        let missing: BTreeSet<Topic> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            topics
                .iter()
                .filter(|t| !known.contains(*t))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let wanted: Vec<Topic> = missing
            .iter()
            .flat_map(|t| [t.clone(), t.dead_letters()])
            .collect();
        match &self.admin {
            TopicAdmin::Embedded(broker) => {
                for t in &wanted {
                    broker.create_topic(t.as_str(), self.partitions).await?;
                }
            }
            TopicAdmin::Cluster(admin, replication) => {
                // Topics an operator created beforehand are used as they
                // are, so a client without the right to create topics works.
                let wanted = {
                    let client = admin.inner();
                    tokio::task::block_in_place(|| missing_topics(client, &wanted))
                        .with_context(|| format!("cannot look topics up on {}", self.bootstrap))?
                };
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
                if !new.is_empty() {
                    let options = AdminOptions::new()
                        .operation_timeout(Some(Duration::from_secs(10)))
                        .request_timeout(Some(Duration::from_secs(10)));
                    let results = admin
                        .create_topics(&new, &options)
                        .await
                        .with_context(|| format!("cannot create topics on {}", self.bootstrap))?;
                    for result in results {
                        match result {
                            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                            Err((topic, code)) => {
                                anyhow::bail!("cannot create topic {topic}: {code}")
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(topics = ?missing.iter().map(Topic::as_str).collect::<Vec<_>>(), "topics ready");
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(missing);
        Ok(())
    }
}

impl Bus {
    /// Creates the host's own topic `name` if it does not exist: one
    /// partition (one order for every reader), compacted (the latest
    /// record of each key is what counts).
    pub async fn ensure_compacted(&self, name: &str) -> anyhow::Result<()> {
        let topics = &self.topics;
        match &topics.admin {
            TopicAdmin::Embedded(broker) => broker.create_topic(name, 1).await,
            TopicAdmin::Cluster(admin, replication) => {
                let missing = {
                    let client = admin.inner();
                    tokio::task::block_in_place(|| missing_topics(client, &[name]))
                        .with_context(|| format!("cannot look {name} up on {}", topics.bootstrap))?
                };
                if missing.is_empty() {
                    return Ok(());
                }
                let topic = NewTopic::new(name, 1, TopicReplication::Fixed(*replication))
                    .set("cleanup.policy", "compact");
                let options = AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(10)))
                    .request_timeout(Some(Duration::from_secs(10)));
                let results = admin
                    .create_topics([&topic], &options)
                    .await
                    .with_context(|| format!("cannot create {name} on {}", topics.bootstrap))?;
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
                    }
                }
                tracing::info!(topic = name, "compacted topic created");
                Ok(())
            }
        }
    }
}

/// Which of `topics` the cluster does not have.
fn missing_topics<T: AsRef<str> + Clone>(
    client: &rdkafka::client::Client<DefaultClientContext>,
    topics: &[T],
) -> anyhow::Result<Vec<T>> {
    let mut missing = Vec::new();
    for topic in topics {
        let topic_name = topic.as_ref();
        let metadata = client.fetch_metadata(Some(topic_name), Duration::from_secs(10))?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic_name && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            missing.push(topic.clone());
        }
    }
    Ok(missing)
}
