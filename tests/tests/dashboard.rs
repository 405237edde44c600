//! The web dashboard in Debian's headless Chromium: `tests/ui/dashboard.mjs`
//! (playwright-core, installed with Chromium by `scripts/setup --tests`) signs in
//! to a real coordinator, sees a job enqueued through the API appear,
//! cancels it from the page (the API then says cancelled), opens every
//! page with no console error, and is refused with a wrong token. A
//! missing node or Chromium fails the test: it never skips.
//!
//! - `the_dashboard_works_in_a_real_browser`

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::Cluster;

/// How long the browser's whole run may take.
const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let cluster = Cluster::start(60_000);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/dashboard.mjs");
    let mut node = Command::new("node")
        .arg(&script)
        .env("SKYCLAW_UI_URL", &cluster.url)
        .env("SKYCLAW_UI_TOKEN", &cluster.token)
        .env_remove("SKYCLAW_UI_SCREENSHOTS")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(cluster.path().join("dashboard.log")).unwrap())
        .stderr(std::fs::File::create(cluster.path().join("dashboard.err")).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("node, which drives the browser, must be installed (scripts/setup --tests): {e}")
        });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            node.kill().ok();
            node.wait().ok();
            panic!("the browser test ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |name: &str| std::fs::read_to_string(cluster.path().join(name)).unwrap_or_default();
    assert!(
        status.success(),
        "the browser test failed ({status}):\n{}\n{}\ncoordinator log:\n{}",
        read("dashboard.log"),
        read("dashboard.err"),
        cluster.coordinator.log_text()
    );
}
