//! The host's rules for topic names (Kafka's) and event types, checked at
//! compile time so that a handler never describes a name the host refuses.

use proc_macro2::Span;
use syn::LitStr;

/// The topic in `lit`, or an error on it saying what a topic may be.
pub fn topic(lit: &LitStr) -> syn::Result<String> {
    let topic = lit.value();
    let legal = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let fits = (1..=249).contains(&topic.len()) && topic.chars().all(legal);
    if !fits || topic == "." || topic == ".." {
        return Err(syn::Error::new(
            lit.span(),
            "a topic name is 1 to 249 letters, digits, '.', '_' or '-' (and not `.` or `..`)",
        ));
    }
    Ok(topic)
}

/// Checks `event_type`, written at `span`, against the host's rule.
pub fn event_type(event_type: &str, span: Span) -> syn::Result<()> {
    let legal = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
    if !(1..=128).contains(&event_type.len()) || !event_type.chars().all(legal) {
        return Err(syn::Error::new(
            span,
            format!(
                "event type {event_type:?}: an event type is 1 to 128 letters, digits, '_', '.', ':' or '-'"
            ),
        ));
    }
    Ok(())
}
