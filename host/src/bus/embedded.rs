//! The embedded broker: librdkafka's in-process mock cluster, so the host
//! runs with no Kafka at all. It keeps everything in memory and loses it on
//! exit: for development and tests only.
//!
//! The mock cluster is not `Send`, so it lives on a thread of its own, which
//! takes topic-creation requests over a channel (the mock broker does not
//! answer the CreateTopics admin request) and drops the cluster when the
//! [`EmbeddedBroker`] is dropped.

use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::Context as _;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use tokio::sync::oneshot;

struct CreateTopic {
    name: String,
    partitions: i32,
    done: oneshot::Sender<Result<(), String>>,
}

pub struct EmbeddedBroker {
    bootstrap: String,
    requests: Option<mpsc::Sender<CreateTopic>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    pub fn start() -> anyhow::Result<Self> {
        let (requests, incoming) = mpsc::channel::<CreateTopic>();
        let (started, bootstrap) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(cluster.bootstrap_servers()));
                for req in incoming {
                    let result = match cluster.create_topic(&req.name, req.partitions, 1) {
                        Err(rdkafka::error::KafkaError::MockCluster(
                            RDKafkaErrorCode::TopicAlreadyExists,
                        )) => Ok(()),
                        other => other.map_err(|e| e.to_string()),
                    };
                    let _ = req.done.send(result);
                }
            })
            .context("cannot start the embedded broker thread")?;
        let bootstrap = bootstrap
            .recv()
            .context("the embedded broker thread died")?
            .context("cannot start the embedded broker")?;
        Ok(Self {
            bootstrap,
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        let (done, result) = oneshot::channel();
        self.requests
            .as_ref()
            .context("the embedded broker is stopped")?
            .send(CreateTopic {
                name: name.to_string(),
                partitions,
                done,
            })
            .ok()
            .context("the embedded broker is stopped")?;
        result
            .await
            .context("the embedded broker is stopped")?
            .map_err(|e| anyhow::anyhow!("cannot create topic {name}: {e}"))
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
