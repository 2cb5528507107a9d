use super::*;

#[test]
fn counts_and_gauges_render_with_their_labels() {
    let metrics = Arc::new(Metrics::new());
    let user = metrics.handler("user-handler");
    let t = user.topic("user-events");
    t.consumed(Some(Duration::from_millis(3)));
    t.call(CallOutcome::Retryable, Duration::from_millis(2));
    t.retried();
    t.call(CallOutcome::Ok, Duration::from_millis(1));
    t.handled();
    assert!(Arc::ptr_eq(&t, &user.topic("user-events")), "resolved once");
    metrics.reload("user-handler", Reload::Replaced);
    metrics.sent(Source::Api, true, Duration::from_millis(1));
    metrics.http_request("POST", "/users", 201, Duration::from_millis(4));
    let snapshot = Snapshot {
        handlers: vec![HandlerSnapshot {
            name: "user-handler".into(),
            status: "running",
            version: Some("abc".into()),
            contract: Some("0.2.0"),
            instances: "fresh",
            lag: [("user-events/0".to_string(), 5)].into(),
            ..HandlerSnapshot::default()
        }],
        producer_queue: 2,
        librdkafka: "2.12.1".into(),
        cluster: Some(crate::metrics::ClusterSnapshot {
            instances: 3,
            converged: vec![("user-handler".into(), true), ("audit".into(), false)],
        }),
    };
    let text = metrics.render(&snapshot).unwrap();
    for line in [
        r#"event_host_events_total{handler="user-handler",topic="user-events",outcome="handled"} 1"#,
        r#"event_host_events_total{handler="user-handler",topic="user-events",outcome="skipped"} 0"#,
        r#"event_host_handler_failures_total{handler="user-handler",topic="user-events",kind="retryable"} 1"#,
        r#"event_host_retries_total{handler="user-handler",topic="user-events"} 1"#,
        r#"messaging_client_consumed_messages_total{handler="user-handler",topic="user-events"} 1"#,
        r#"messaging_process_duration_seconds_count{handler="user-handler",topic="user-events",outcome="ok"} 1"#,
        r#"event_host_reloads_total{handler="user-handler",result="replaced"} 1"#,
        r#"messaging_client_sent_messages_total{source="api",result="ok"} 1"#,
        r#"http_server_request_duration_seconds_count{method="POST",route="/users",status="201"} 1"#,
        r#"event_host_consumer_lag{handler="user-handler",topic="user-events",partition="0"} 5"#,
        r#"event_host_handler_version{handler="user-handler",version="abc",contract="0.2.0",status="running",instances="fresh"} 1"#,
        r#"event_host_producer_queue_messages 2"#,
        r#"event_host_cluster_instances 3"#,
        r#"event_host_cluster_handler_converged{handler="user-handler"} 1"#,
        r#"event_host_cluster_handler_converged{handler="audit"} 0"#,
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.contains(r#"event_host_build_info{version=""#),
        "{text}"
    );
}
