//! End-to-end tests of the `weiquan` binary and the audit pipeline.

mod accuracy;
mod audit_cli;
mod cases;
mod cluster;
mod draw_cli;
mod ledger_cli;
mod properties;
mod serve_cli;

use std::process::{Command, Output};

/// The repository root.
pub use weiquan_testkit::root;

/// Runs the built binary with `args` (and `stdin` when given).
pub fn weiquan(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weiquan"));
    cmd.args(args).current_dir(root());
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("the weiquan binary runs");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default()).expect("stdin accepts input");
    }
    child.wait_with_output().expect("the weiquan binary finishes")
}

/// Runs the built binary with `args` and no input, and requires it to exit 0
/// (the failure shows the arguments and what it wrote, stderr then stdout).
pub fn succeeds(args: &[&str]) -> Output {
    let out = weiquan(args, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Parses NDJSON output into JSON values.
pub fn ndjson(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

pub use weiquan_testkit::{expected, expected_file, pairs};

/// One HTTP request over a real socket (GET, or POST with `body`), with a
/// bearer `key` when given: its status and body (status 0 and the error
/// when it could not be sent).
pub fn http_bytes(method: &str, url: &str, key: Option<&str>, body: Option<String>) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut r = if method == "POST" { c.post(url) } else { c.get(url) };
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.body(b);
        }
        match r.send().await {
            Ok(resp) => (
                resp.status().as_u16(),
                resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            ),
            Err(e) => (0, e.to_string().into_bytes()),
        }
    })
}
