//! What the server benchmarks share: a real `weiquan serve` process and a
//! client posting to it.
#![allow(dead_code)] // each bench uses a part

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `weiquan serve`: the process and its base URL; killed when dropped.
pub struct Server(pub Child, pub String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release binary (or `WEIQUAN_BIN`).
pub fn weiquan() -> String {
    std::env::var("WEIQUAN_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/weiquan").into())
}

/// Starts `weiquan serve` with `args` on a free port; returns once it prints
/// its address. Its log lines about snapshots, its warnings, errors and
/// panics go to this process's stderr.
pub fn start(args: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = Command::new(weiquan())
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--rate-limit", "1000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weiquan serve starts (build it with cargo build --release)");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let l = lines.next().expect("address").expect("utf-8");
        if let Some(rest) = l.split("serving on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_owned();
        }
    };
    // The server's log is dropped, but for its snapshots (their encode and
    // write times) and whatever went wrong (why a run stopped).
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if ["snapshot", "WARN", "ERROR", "panicked"].iter().any(|w| l.contains(w)) {
                eprintln!("server: {l}");
            }
        }
    });
    Server(child, base)
}

/// The server's resident memory, in MiB.
pub fn rss_mib(server: &Server) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap_or_default();
    let kib: f64 = (status.lines())
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Creates a platform key with `args` (the data folder, the database).
pub fn key(args: &[&str]) -> String {
    let out = Command::new(weiquan())
        .args(["keys", "create", "--role", "platform"])
        .args(args)
        .output()
        .expect("keys create");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Posts one body of events; panics unless accepted. Returns the time taken.
pub async fn post(client: &reqwest::Client, base: &str, key: &str, body: String) -> Duration {
    let t = Instant::now();
    let r = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = r.status();
    assert!(status.is_success(), "{status}: {}", r.text().await.unwrap_or_default());
    t.elapsed()
}
