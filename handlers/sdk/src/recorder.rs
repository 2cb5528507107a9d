//! Natively, the host's side of publishing and logging: what a handler
//! publishes and logs is kept per thread, for `testing` to hand back. It
//! refuses what the host would refuse at once (a malformed topic name), so
//! a test sees the same error.

use std::cell::RefCell;

use crate::Level;
use crate::wit::event_host::handler::types::{OutgoingEvent, OutgoingMessage};

/// What one thread's handler calls have queued and logged so far.
#[derive(Default)]
pub struct Recording {
    /// Each event with the id `publish` returned for it.
    pub events: Vec<(String, OutgoingEvent)>,
    pub messages: Vec<OutgoingMessage>,
    pub logs: Vec<(Level, String)>,
}

thread_local! {
    static RECORDING: RefCell<Recording> = RefCell::default();
}

/// Everything recorded on this thread since the last take.
pub fn take() -> Recording {
    RECORDING.with_borrow_mut(std::mem::take)
}

pub fn publish(event: OutgoingEvent) -> Result<String, String> {
    check_topic(&event.topic)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&event.data)
        .map_err(|e| format!("data is not JSON: {e}"))?;
    let id = crate::new_id();
    RECORDING.with_borrow_mut(|r| r.events.push((id.clone(), event)));
    Ok(id)
}

pub fn publish_message(message: OutgoingMessage) -> Result<(), String> {
    check_topic(&message.topic)?;
    RECORDING.with_borrow_mut(|r| r.messages.push(message));
    Ok(())
}

pub fn log(level: Level, message: &str) {
    eprintln!("{level:?}: {message}");
    RECORDING.with_borrow_mut(|r| r.logs.push((level, message.to_string())));
}

/// Kafka's rule for topic names, as the host applies it.
fn check_topic(topic: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let fits = (1..=249).contains(&topic.len()) && topic.chars().all(legal);
    if !fits || topic == "." || topic == ".." {
        return Err(format!(
            "bad topic name {topic:?}: 1 to 249 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}
