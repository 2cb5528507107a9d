//! Handlers need not be written in Rust: any component that targets the
//! 0.2 `handler` world runs. `handlers/python-audit` is one written in
//! Python and built with componentize-py; here it runs in the host on the
//! embedded broker, audits user events and dead-letters bad data.
//!
//! Needs `componentize-py` on PATH: the test is ignored unless run with
//! `cargo test --workspace -- --include-ignored`, and then fails without it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::json;

use crate::support::{TestHost, config, message_count, read_until, temp_handlers_dir, workspace};

const INSTALL: &str = "pip install componentize-py==0.25.1";

/// Builds the Python handler with its build.sh, once per test process, and
/// returns the component's path.
fn python_audit() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let found = Command::new("componentize-py")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "this test needs componentize-py, and it is not on PATH; install it with \
                 `{INSTALL}`, or run the tests without --include-ignored / --ignored to leave it out"
            );
            // One file, rebuilt by each test run (build.sh renames it into
            // place), rather than 18 MB left behind per run.
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-audit.wasm");
            let status = Command::new("sh")
                .arg(workspace().join("handlers/python-audit/build.sh"))
                .env("OUT", &out)
                .status()
                .expect("run handlers/python-audit/build.sh");
            assert!(status.success(), "building the Python handler failed");
            out
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs componentize-py on PATH (pip install componentize-py==0.25.1); run with: cargo test --workspace -- --include-ignored"]
async fn a_python_handler_audits_user_events_and_dead_letters_bad_data() {
    let dir = temp_handlers_dir("polyglot-python");
    std::fs::copy(python_audit(), dir.join("python-audit.wasm")).unwrap();
    let host = TestHost::start(config(&dir, None)).await;
    let bootstrap = host.bootstrap().await;

    let (status, h) = host.get("/handlers/python-audit").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "running", "{h}");
    assert_eq!(h["contract"], "event-host:handler@0.2.0", "{h}");
    assert_eq!(h["stateless"], true, "{h}");
    assert_eq!(
        h["subscriptions"],
        json!([{"topic": "user-events", "format": "envelope", "eventTypes": ["USER_PROFILE_UPDATED", "USER_REGISTERED"]}])
    );

    let user = host.register("Ada").await;
    let user_id = user["id"].as_str().unwrap();
    let registered = read_until(&bootstrap, "user-events", "the registration", |s| {
        !s.is_empty()
    })
    .await;
    let event_id = registered[0].value["id"].as_str().unwrap();
    host.wait_for_handler("python-audit", "audit the registration", |h| {
        h["stats"]["handled"] == 1
    })
    .await;

    let audits = read_until(&bootstrap, "audit-events", "the audit record", |s| {
        !s.is_empty()
    })
    .await;
    let audit = &audits[0];
    assert_eq!(audit.value["type"], "AUDIT_RECORDED");
    assert_eq!(audit.value["userId"], user_id);
    assert_eq!(
        audit.value["data"],
        json!({"eventId": event_id, "eventType": "USER_REGISTERED", "userId": user_id})
    );
    assert_eq!(audit.key.as_deref(), Some(user_id), "keyed by the user");
    assert_eq!(audit.header("audit.source"), Some("python"));
    assert_eq!(audit.header("eventType"), Some("AUDIT_RECORDED"));

    // Data that is not an object is fatal: dead-lettered at once, with the
    // handler's reason, and nothing audited.
    let bad = json!({"type": "USER_PROFILE_UPDATED", "data": [1, 2]});
    assert_eq!(host.post("/events/user-events", &bad).await.0, 201);
    host.wait_for_handler("python-audit", "dead-letter the bad event", |h| {
        h["stats"]["deadLettered"] == 1
    })
    .await;
    let dead = read_until(&bootstrap, "user-events.dlq", "the dead letter", |s| {
        !s.is_empty()
    })
    .await;
    let error = dead[0].header("dlq.error").unwrap_or_default();
    assert!(error.contains("not a JSON object"), "{error}");
    assert_eq!(message_count(&bootstrap, "audit-events").await, 1);
    assert_eq!(host.stats("python-audit").await["handled"], 1);
    host.stop().await;
    // Not left behind as the small Rust components are: 18 MB a run.
    let _ = std::fs::remove_dir_all(&dir);
}
