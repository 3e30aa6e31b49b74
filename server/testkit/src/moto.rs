//! A local S3-compatible server for the photo-store tests: moto (`pip install 'moto[server]'`),
//! one per test run, shared by the test processes like the PostgreSQL cluster, stopped when the
//! test runner exits. Each test makes its own bucket.

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::pg::{run_dir, when_runner_exits};

static ENDPOINT: OnceLock<String> = OnceLock::new();

fn start() -> String {
    let (root, _lock) = run_dir("moto");
    let ready = root.join("endpoint");
    if let Ok(endpoint) = std::fs::read_to_string(&ready) {
        return endpoint;
    }
    let available = Command::new("python3")
        .args(["-c", "import moto.server"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        available,
        "the S3 photo-store tests need moto's server: pip install 'moto[server]' (.ci/run installs it)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let pid_file = root.join("moto.pid");
    let script = format!(
        "python3 -m moto.server -H 127.0.0.1 -p {port} >{log} 2>&1 & echo $! > {pid}",
        log = root.join("moto.log").display(),
        pid = pid_file.display()
    );
    let status = Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .status()
        .expect("start moto");
    assert!(status.success());
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "moto did not start; see {}",
            root.join("moto.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    when_runner_exits(&format!(
        "kill $(cat {}) 2>/dev/null; rm -rf {}",
        pid_file.display(),
        root.display()
    ));
    let endpoint = format!("http://127.0.0.1:{port}");
    std::fs::File::create(&ready)
        .and_then(|mut f| f.write_all(endpoint.as_bytes()))
        .expect("mark moto ready");
    endpoint
}

/// The endpoint of the shared moto server and a new, empty bucket on it.
pub async fn fresh_bucket() -> (String, String) {
    let endpoint = tokio::task::spawn_blocking(|| ENDPOINT.get_or_init(start).clone())
        .await
        .expect("moto start");
    let bucket = format!("photos-{}", uuid::Uuid::new_v4().simple());
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("create bucket");
    assert!(
        response.status().is_success(),
        "creating bucket: {}",
        response.status()
    );
    (endpoint, bucket)
}
