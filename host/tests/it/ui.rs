//! The web view at `/ui`: served by the host beside its API, and used in a
//! real browser. The browser test starts the `event-host` binary on the
//! embedded broker with the demo handlers and an admin token, and runs
//! `host/tests/ui/ui.test.mjs` (playwright-core driving Debian's chromium)
//! against it.
//!
//! The browser test needs chromium, node and `npm ci --prefix host/tests/ui`:
//! it is ignored unless run with `cargo test --workspace -- --include-ignored`
//! (as CI does, where `.ci/run` installs them), and then fails without them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    HostProcess, TestHost, built_handlers, config, install_demo_handlers, temp_handlers_dir,
    workspace,
};

const DEMO: [&str; 3] = ["user-handler", "order-handler", "notification-analytics"];
/// The token the browser test's host requires, so that the page's token
/// form is exercised too.
const ADMIN_TOKEN: &str = "ui-test-admin-token";
/// Longest the browser script may run (it limits itself to 4 minutes).
const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread")]
async fn the_web_view_is_served_beside_the_api() {
    let dir = temp_handlers_dir("ui-served");
    let host = TestHost::start(config(&dir, None)).await;
    let page = host.http.get(host.url("/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()[name].to_str().unwrap_or_default().to_string()
    };
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/ui/main.js">"#));

    let script = host.http.get(host.url("/ui/main.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(
        header(&script, "content-type"),
        "text/javascript; charset=utf-8"
    );
    let (status, missing) = host.get("/ui/nope.js").await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"], "not_found");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium and node; run with: cargo test --workspace -- --include-ignored"]
async fn in_a_browser_the_web_view_shows_handlers_and_chains_and_pauses_a_handler() {
    let scripts = workspace().join("host/tests/ui");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    require_browser_tools(&scripts, &chromium);

    let dir = temp_handlers_dir("ui-browser");
    install_demo_handlers(&dir, &DEMO);
    let handlers = dir.to_string_lossy().into_owned();
    let mut host = tokio::task::spawn_blocking(move || {
        let mut host =
            HostProcess::spawn(&[("HANDLERS_DIR", &handlers), ("ADMIN_TOKEN", ADMIN_TOKEN)]);
        host.wait_for("ready: every handler is consuming");
        host
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    let run = tokio::process::Command::new("node")
        .arg(scripts.join("ui.test.mjs"))
        .current_dir(&scripts)
        .env("EVENT_HOST_URL", format!("http://{}", host.addr))
        .env("EVENT_HOST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "EVENT_HOST_COMPONENT",
            built_handlers().join("user-handler.wasm"),
        )
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SCRIPT_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("ui.test.mjs did not finish in {SCRIPT_LIMIT:?}"))
        .expect("run node");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        host.drain();
        panic!(
            "the browser test failed ({}): see its output above; the host's log:\n{}",
            output.status,
            host.log.join("\n")
        );
    }
}

/// Fails, saying how to install what is missing: a test asked to run must
/// not pass without having run.
fn require_browser_tools(scripts: &Path, chromium: &Path) {
    let how = "CI installs them in .ci/run; by hand: `apt-get install chromium nodejs npm` and \
               `npm ci --prefix host/tests/ui`; or run the tests without --include-ignored / \
               --ignored to leave this one out";
    assert!(
        chromium.is_file(),
        "this test needs chromium at {} (or set CHROMIUM), and it is not there; {how}",
        chromium.display()
    );
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(node, "this test needs node on PATH, and it is not; {how}");
    let playwright = scripts.join("node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "this test needs playwright-core in {}, and it is not installed; {how}",
        scripts.join("node_modules").display()
    );
}
