//! The host on its embedded broker, driven over real HTTP with the real
//! handler components: the demo's behaviour, and what it does with bad input.

use serde_json::{Value, json};

use crate::support::{
    self, TestHost, config, install_demo_handlers, message_count, temp_handlers_dir,
};

const DEMO: [&str; 3] = ["user-handler", "order-handler", "notification-analytics"];

async fn demo_host(test: &str) -> TestHost {
    let dir = temp_handlers_dir(test);
    install_demo_handlers(&dir, &DEMO);
    TestHost::start(config(&dir, None)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_flows_run_end_to_end_on_the_embedded_broker() {
    let host = demo_host("flows").await;
    support::flows::check_demo_flows(&host).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_says_ready_and_that_the_broker_is_embedded() {
    let host = demo_host("health").await;
    let (status, health) = host.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["broker"]["mode"], "embedded");
    assert!(
        health["warning"].as_str().unwrap().contains("lost"),
        "{health}"
    );
    assert_eq!(
        health["handlers"],
        json!({"running": 3, "idle": 0, "total": 3})
    );
    support::flows::assert_timestamp(&health["timestamp"]);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_are_listed_with_their_subscriptions() {
    let host = demo_host("list").await;
    let (status, list) = host.get("/handlers").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["notification-analytics", "order-handler", "user-handler"]
    );
    let user = &list[2];
    assert_eq!(user["status"], "running");
    assert_eq!(
        user["subscriptions"],
        json!([{"topic": "user-events", "format": "envelope", "eventTypes": ["USER_PROFILE_UPDATED", "USER_REGISTERED"]}])
    );
    let mut stats = user["stats"].as_object().unwrap().clone();
    let lag = stats.remove("lag").unwrap();
    let lag_by_partition = stats.remove("lagByPartition").unwrap();
    assert_eq!(
        Value::Object(stats),
        json!({"handled": 0, "failed": 0, "skipped": 0, "deadLettered": 0, "inFlight": 0, "waitingForCapacity": 0, "handedOverUnfinished": 0, "instancesCreated": 0, "partitions": 3})
    );
    assert_eq!(user["instances"], "reused", "it declares stateless");
    // Nothing published yet: the lag is not reported yet, or 0 everywhere.
    assert!(lag.is_null() || lag == 0, "{user}");
    assert!(
        lag_by_partition
            .as_object()
            .unwrap()
            .values()
            .all(|l| *l == 0),
        "{user}"
    );
    assert_eq!(user["version"].as_str().unwrap().len(), 64);
    let (status, missing) = host.get("/handlers/nope").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"], "not_found");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_any_type_can_be_published_to_any_topic() {
    let host = demo_host("events").await;
    let bootstrap = host.bootstrap().await;
    let (status, event) = host
        .post(
            "/events/audit-log",
            &json!({"type": "LOGIN", "userId": "u-7", "data": {"ip": "10.0.0.1"}}),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(event["type"], "LOGIN");
    assert_eq!(event["userId"], "u-7");
    let seen = support::read_until(&bootstrap, "audit-log", "the LOGIN event", |s| {
        !s.is_empty()
    })
    .await;
    assert_eq!(seen[0].value, event);

    let (status, anonymous) = host
        .post("/events/audit-log", &json!({"type": "PING", "data": null}))
        .await;
    assert_eq!(status, 201, "{anonymous}");
    assert_eq!(anonymous["userId"], Value::Null);
    let seen =
        support::read_until(&bootstrap, "audit-log", "the PING event", |s| s.len() >= 2).await;
    let ping = seen
        .iter()
        .find(|m| m.value["id"] == anonymous["id"])
        .expect("the PING event");
    assert_eq!(
        ping.key.as_deref(),
        anonymous["id"].as_str(),
        "keyed by event id"
    );
    assert_eq!(ping.header("userId"), Some("anonymous"));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_unsubscribed_types_are_skipped() {
    let host = demo_host("skip").await;
    let (status, _) = host
        .post(
            "/events/user-events",
            &json!({"type": "USER_DELETED", "userId": "u1", "data": {}}),
        )
        .await;
    assert_eq!(status, 201);
    host.wait_for_handler("user-handler", "skip the event", |h| {
        h["stats"]["skipped"] == 1
    })
    .await;
    assert_eq!(host.stats("user-handler").await["handled"], 0);
    host.stop().await;
}

/// A request the API must refuse, with the status and the field it names.
struct BadRequest {
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: String,
    status: u16,
    field: Option<&'static str>,
}

type Row = (
    &'static str,
    String,
    &'static str,
    String,
    u16,
    Option<&'static str>,
);

fn bad_requests() -> Vec<BadRequest> {
    let j = "application/json";
    let order = |v: Value| v.to_string();
    let rows: Vec<Row> = vec![
        (
            "POST",
            "/users".into(),
            j,
            "{\"name\": \"Ada\",".into(),
            400,
            None,
        ),
        ("POST", "/users".into(), j, "not json".into(), 400, None),
        (
            "POST",
            "/users".into(),
            "text/plain",
            json!({"name":"Ada","email":"a@b.co","age":3}).to_string(),
            415,
            None,
        ),
        (
            "POST",
            "/users".into(),
            j,
            json!({"email":"a@b.co","age":3}).to_string(),
            422,
            Some("name"),
        ),
        (
            "POST",
            "/users".into(),
            j,
            json!({"name":"Ada","email":"nope","age":3}).to_string(),
            422,
            Some("email"),
        ),
        (
            "POST",
            "/users".into(),
            j,
            json!({"name":"Ada","email":"a@b.co","age":"old"}).to_string(),
            422,
            Some("age"),
        ),
        (
            "POST",
            "/users".into(),
            j,
            json!({"name":"Ada","email":"a@b.co","age":-1}).to_string(),
            422,
            Some("age"),
        ),
        (
            "POST",
            "/users".into(),
            j,
            json!({"name":"  ","email":"a@b.co","age":3}).to_string(),
            422,
            Some("name"),
        ),
        (
            "POST",
            "/users".into(),
            j,
            json!({"name":"Ada","email":"a@b.co","age":3,"admin":true}).to_string(),
            422,
            Some("admin"),
        ),
        ("POST", "/users".into(), j, "[]".into(), 422, None),
        ("PUT", "/users/u1".into(), j, "{}".into(), 422, None),
        (
            "PUT",
            "/users/u1".into(),
            j,
            json!({"age": 500}).to_string(),
            422,
            Some("age"),
        ),
        (
            "PUT",
            "/users/u1".into(),
            j,
            json!({"nickname": "x"}).to_string(),
            422,
            Some("nickname"),
        ),
        (
            "POST",
            "/orders".into(),
            j,
            order(json!({"items":[{"name":"a","price":1,"quantity":1}],"total":1})),
            422,
            Some("userId"),
        ),
        (
            "POST",
            "/orders".into(),
            j,
            order(json!({"userId":"u1","items":[],"total":0})),
            422,
            Some("items"),
        ),
        (
            "POST",
            "/orders".into(),
            j,
            order(json!({"userId":"u1","items":[{"name":"a","price":-1,"quantity":1}],"total":1})),
            422,
            Some("items[0].price"),
        ),
        (
            "POST",
            "/orders".into(),
            j,
            order(json!({"userId":"u1","items":[{"name":"a","price":1,"quantity":0}],"total":1})),
            422,
            Some("items[0].quantity"),
        ),
        (
            "POST",
            "/orders".into(),
            j,
            order(json!({"userId":"u1","items":[{"name":"a","price":1,"quantity":1}],"total":"1"})),
            422,
            Some("total"),
        ),
        (
            "POST",
            "/orders".into(),
            j,
            order(json!({"userId":42,"items":[{"name":"a","price":1,"quantity":1}],"total":1})),
            422,
            Some("userId"),
        ),
        (
            "PUT",
            "/orders/o1/complete".into(),
            j,
            "{}".into(),
            422,
            Some("userId"),
        ),
        ("PUT", "/orders/o1/complete".into(), j, "".into(), 400, None),
        (
            "POST",
            "/events/user-events".into(),
            j,
            json!({"type":"X"}).to_string(),
            422,
            Some("data"),
        ),
        (
            "POST",
            "/events/user-events".into(),
            j,
            json!({"type":"has space","data":{}}).to_string(),
            422,
            Some("type"),
        ),
        (
            "POST",
            "/events/bad%20topic".into(),
            j,
            json!({"type":"X","data":{}}).to_string(),
            422,
            Some("topic"),
        ),
        (
            "POST",
            "/users".into(),
            j,
            format!(
                "{{\"name\":\"{}\",\"email\":\"a@b.co\",\"age\":1}}",
                "x".repeat(300 * 1024)
            ),
            413,
            None,
        ),
        ("GET", "/nowhere".into(), j, "".into(), 404, None),
        ("DELETE", "/users".into(), j, "".into(), 405, None),
    ];
    rows.into_iter()
        .map(
            |(method, path, content_type, body, status, field)| BadRequest {
                method,
                path,
                content_type,
                body,
                status,
                field,
            },
        )
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_json_errors_and_publish_nothing() {
    let host = demo_host("bad").await;
    let bootstrap = host.bootstrap().await;
    let topics = ["user-events", "order-events", "notification-events"];
    let mut before = Vec::new();
    for t in topics {
        before.push(message_count(&bootstrap, t).await);
    }
    for BadRequest {
        method,
        path,
        content_type,
        body,
        status,
        field,
    } in bad_requests()
    {
        let r = host
            .http
            .request(method.parse().unwrap(), host.url(&path))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let got = r.status().as_u16();
        let is_json = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        let what = format!("{method} {path} {}", &body[..body.len().min(80)]);
        assert_eq!(got, status, "{what}: {answer}");
        assert!(is_json, "{what}: not JSON");
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{what}: {answer}"
        );
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{what}: {answer}");
        }
    }
    for (t, count) in topics.iter().zip(before) {
        assert_eq!(
            message_count(&bootstrap, t).await,
            count,
            "{t} received an event"
        );
    }
    // The host is still fine.
    let (status, _) = host
        .post(
            "/users",
            &json!({"name": "Ok", "email": "ok@example.com", "age": 1}),
        )
        .await;
    assert_eq!(status, 200);
    host.stop().await;
}
