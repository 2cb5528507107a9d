//! The producer, with its delivery reports read on tokio.
//!
//! rdkafka's `FutureProducer` runs a thread of its own that waits on
//! librdkafka's main queue and completes each send's future from there. On
//! the way from the broker's acknowledgement to the task awaiting it, every
//! report then wakes that thread and then a tokio worker: at 500 demo chains
//! a second the thread alone took ~10 % of the host's CPU (BENCHMARKS.md,
//! "Performance, round 2"). Here the queue's non-empty callback (called on
//! librdkafka's broker thread when the queue fills) wakes one tokio task,
//! which serves the reports: one wake-up fewer per report, and no thread.
//! The same queue carries the client's log lines and errors (rdkafka sets
//! `log.queue`), which the task serves too.

use std::ffi::c_void;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext};
use rdkafka::{ClientConfig, Message as _};
use tokio::sync::{Notify, oneshot};

use super::publisher::Stored;

/// What the broker said of one message.
pub type Acked = oneshot::Receiver<Result<Stored, KafkaError>>;

type Reply = Box<oneshot::Sender<Result<Stored, KafkaError>>>;

/// Completes each message's [`Acked`] from its delivery report.
pub struct Replies;

impl ClientContext for Replies {}

impl ProducerContext for Replies {
    type DeliveryOpaque = Reply;

    fn delivery(&self, result: &DeliveryResult<'_>, reply: Reply) {
        let result = match result {
            Ok(m) => Ok(Stored {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        // The sender may have stopped waiting: nothing to tell then.
        let _ = reply.send(result);
    }
}

/// A producer whose delivery reports a tokio task serves. Clones share it.
#[derive(Clone)]
pub struct Producer(Arc<Inner>);

struct Inner {
    // Declared first, so dropped first: the callback is off before the
    // client goes.
    reports: Reports,
    producer: BaseProducer<Replies>,
}

impl Producer {
    /// Creates the producer and spawns the task that serves its reports;
    /// needs a tokio runtime. The task ends when the last clone is dropped.
    pub fn new(config: &ClientConfig) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the producer needs a tokio runtime"))?;
        let producer: BaseProducer<Replies> = config.create_with_context(Replies)?;
        let notify = Arc::new(Notify::new());
        let reports = Reports::enable(&producer, notify.clone());
        // What came before the callback (the client's first log lines)
        // would never turn the queue non-empty again: serve it now.
        notify.notify_one();
        let inner = Arc::new(Inner { reports, producer });
        runtime.spawn(serve(Arc::downgrade(&inner), notify));
        Ok(Self(inner))
    }

    /// Hands a message to librdkafka; the result says when the broker took
    /// it (or why it never will). Fails at once if librdkafka refuses it
    /// (its queue is full, the topic name is invalid).
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<Acked, KafkaError> {
        let (tx, rx) = oneshot::channel();
        let mut record = BaseRecord::<[u8], [u8], Reply>::with_opaque_to(topic, Box::new(tx));
        record.key = key;
        record.payload = value;
        record.headers = headers;
        match self.0.producer.send(record) {
            Ok(()) => Ok(rx),
            Err((e, _)) => Err(e),
        }
    }

    /// Messages handed over and not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.0.producer.in_flight_count()
    }

    /// Waits for every message handed over to be delivered, serving their
    /// reports on this thread meanwhile.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.0.producer.flush(timeout)
    }
}

/// Serves delivery reports whenever librdkafka says some arrived, until the
/// producer is gone.
async fn serve(inner: Weak<Inner>, notify: Arc<Notify>) {
    /// Reports (each maybe a batch of messages) served before other tasks
    /// get their turn.
    const TURN: usize = 64;
    loop {
        notify.notified().await;
        // The callback fires when the queue turns non-empty, so empty it;
        // a report that comes in meanwhile leaves a permit in `notify`.
        loop {
            let Some(inner) = inner.upgrade() else { return };
            let mut served = 0;
            while served < TURN && inner.reports.queued() > 0 {
                inner.producer.poll(Duration::ZERO);
                served += 1;
            }
            if served < TURN {
                break;
            }
            drop(inner);
            tokio::task::yield_now().await;
        }
    }
}

/// librdkafka's main queue of one producer, with its non-empty callback
/// set to wake [`serve`]. Safe to use from any thread: librdkafka's queues
/// are, and `Notify` is.
struct Reports {
    queue: *mut rdsys::rd_kafka_queue_t,
    notify: Arc<Notify>,
}

// SAFETY: the queue handle is librdkafka's reference-counted queue, which
// it documents as safe to use from any thread.
unsafe impl Send for Reports {}
unsafe impl Sync for Reports {}

impl Reports {
    fn enable(producer: &BaseProducer<Replies>, notify: Arc<Notify>) -> Self {
        // SAFETY: the client is alive (we borrow its producer), and the
        // queue reference we take is released in `drop`. The callback's
        // opaque points into `notify`, which `self` keeps alive until the
        // callback is removed.
        let queue = unsafe {
            let queue = rdsys::rd_kafka_queue_get_main(producer.client().native_ptr());
            rdsys::rd_kafka_queue_cb_event_enable(
                queue,
                Some(wake),
                Arc::as_ptr(&notify).cast_mut().cast::<c_void>(),
            );
            queue
        };
        Self { queue, notify }
    }

    fn queued(&self) -> usize {
        // SAFETY: `queue` is a live reference until `drop`.
        unsafe { rdsys::rd_kafka_queue_length(self.queue) }
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        // SAFETY: librdkafka takes the queue's lock to remove the callback,
        // the lock it calls the callback under, so no call is running once
        // this returns and `notify` may go. Then our reference is released.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
        // Lets `serve` see that the producer is gone.
        self.notify.notify_one();
    }
}

/// Called by librdkafka, on one of its threads, when the main queue turns
/// non-empty; it must not block or call into librdkafka.
unsafe extern "C" fn wake(_: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` that `Reports` keeps alive while
    // the callback is set.
    let notify = unsafe { &*opaque.cast_const().cast::<Notify>() };
    notify.notify_one();
}
