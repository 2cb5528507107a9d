use super::*;

fn call(handler: &str, event: &str, trace: u128, published: &[&str]) -> Call {
    Call {
        handler: handler.into(),
        version: "v1".into(),
        topic: "t".into(),
        partition: 0,
        offset: 0,
        event_id: Some(event.into()),
        event_type: Some("T".into()),
        trace_id: Some(trace),
        attempts: 1,
        outcome: Outcome::Handled,
        error: None,
        started_at: SystemTime::UNIX_EPOCH,
        duration: Duration::from_millis(1),
        published: published
            .iter()
            .map(|id| Published {
                event_id: Some(id.to_string()),
                event_type: Some("P".into()),
                topic: "p".into(),
            })
            .collect(),
    }
}

#[test]
fn a_chain_follows_published_events_to_the_calls_they_caused() {
    let calls = Calls::new(100);
    calls.record(call("user-handler", "reg", 1, &["welcome"]));
    calls.record(call("audit", "reg", 1, &[]));
    calls.record(call("notifications", "welcome", 1, &[]));
    let chain = calls.chain("reg").unwrap();
    assert_eq!(chain.calls.len(), 2, "two handlers took the registration");
    let user = &chain.calls[0];
    assert_eq!(&*user.call.handler, "user-handler");
    let (welcome, caused) = &user.published[0];
    assert_eq!(welcome.event_id.as_deref(), Some("welcome"));
    assert_eq!(caused.len(), 1);
    assert_eq!(&*caused[0].call.handler, "notifications");
    assert!(calls.chain("nothing").is_none());
}

#[test]
fn a_trace_starts_at_the_events_no_recorded_call_published() {
    let calls = Calls::new(100);
    calls.record(call("notifications", "welcome", 1, &[]));
    calls.record(call("user-handler", "reg", 1, &["welcome"]));
    calls.record(call("user-handler", "other", 2, &[]));
    let roots = calls.trace(1);
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].event_id, "reg");
    assert_eq!(
        &*roots[0].calls[0].published[0].1[0].call.handler,
        "notifications"
    );
    assert!(calls.trace(99).is_empty());
}

#[test]
fn the_oldest_calls_give_way_and_leave_no_index_behind() {
    let calls = Calls::new(2);
    calls.record(call("h", "a", 1, &[]));
    calls.record(call("h", "b", 1, &[]));
    calls.record(call("h", "c", 1, &[]));
    assert!(calls.chain("a").is_none(), "evicted");
    assert!(calls.chain("c").is_some());
    let recent: Vec<_> = calls
        .recent(10)
        .iter()
        .map(|c| c.event_id.clone().unwrap())
        .collect();
    assert_eq!(recent, ["c", "b"], "newest first");
    let inner = calls.lock();
    assert!(!inner.by_event.contains_key(&hash("a")));
    assert_eq!(inner.by_event.len(), 2);
    assert_eq!(
        inner.calls_in(1).len(),
        2,
        "the trace's evicted call is gone"
    );
}

#[test]
fn a_handler_that_republishes_what_it_consumes_does_not_make_the_chain_endless() {
    let calls = Calls::new(100);
    calls.record(call("loop", "a", 1, &["b"]));
    calls.record(call("loop", "b", 1, &["a"]));
    let chain = calls.chain("a").unwrap();
    let (_, caused) = &chain.calls[0].published[0];
    assert_eq!(caused[0].call.event_id.as_deref(), Some("b"));
    assert!(
        caused[0].published[0].1.is_empty(),
        "a is not followed twice"
    );
}

#[test]
fn no_history_keeps_nothing() {
    let calls = Calls::new(0);
    calls.record(call("h", "a", 1, &[]));
    assert!(calls.recent(10).is_empty());
}

#[test]
fn calls_on_one_event_are_found_oldest_first_after_others_came_between() {
    let calls = Calls::new(100);
    calls.record(call("a", "e", 1, &[]));
    calls.record(call("x", "other", 2, &[]));
    calls.record(call("b", "e", 1, &[]));
    let chain = calls.chain("e").unwrap();
    let handlers: Vec<&str> = chain.calls.iter().map(|c| &*c.call.handler).collect();
    assert_eq!(handlers, ["a", "b"]);
}

#[test]
fn trace_ids_are_read_as_32_hex_digits() {
    assert_eq!(
        parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"),
        Some(0x4bf92f3577b34da6a3ce929d0e0e4736)
    );
    assert_eq!(parse_trace_id("4bf92f"), None);
    assert_eq!(parse_trace_id("00000000000000000000000000000000"), None);
    assert_eq!(parse_trace_id("zzf92f3577b34da6a3ce929d0e0e4736"), None);
}
