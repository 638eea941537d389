//! Whether the services some tests need are here: PostgreSQL and NATS.
//!
//! A stranger's laptop may have neither: there the tests that need one say in
//! one line what they skip, and pass on what they can run. With `CI` set, a
//! missing service fails the run instead, since CI must test everything.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The PostgreSQL the tests use (`WEIQUAN_TEST_PG` overrides).
pub fn pg_url() -> String {
    std::env::var("WEIQUAN_TEST_PG").unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// Whether `name` listens at `addr`; see the module doc for what happens when not.
pub fn available(name: &str, addr: &str) -> bool {
    let up = addr
        .parse::<SocketAddr>()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok());
    if !up {
        missing(name, &format!("nothing listens on {addr}"));
    }
    up
}

/// Says that a test skips the part needing `name` (`why`), or fails under CI.
fn missing(name: &str, why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing ({why}) and CI is set: CI runs every test (install or start {name}, or unset CI to skip)"
    );
    // Written to the terminal itself: the harness captures `eprintln!` of a passing test.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: the {name} part of a test ({why}; with CI set this fails)"
    );
}

/// Whether the `nats-server` program is installed (tests that start their
/// own NATS cluster need it; Debian's package `nats-server`).
pub fn nats_server_installed() -> bool {
    let installed = std::process::Command::new(nats_server())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        missing("nats-server", "not on PATH");
    }
    installed
}

/// PostgreSQL at the default address (a `WEIQUAN_TEST_PG` set by hand is taken as there).
pub fn postgres_available() -> bool {
    std::env::var_os("WEIQUAN_TEST_PG").is_some() || available("PostgreSQL", "127.0.0.1:5432")
}

/// NATS JetStream at the default address.
pub fn nats_available() -> bool {
    available("NATS", "127.0.0.1:4222")
}

/// The `nats-server` program: Debian installs it in /usr/sbin, which a
/// user's PATH may lack.
pub fn nats_server() -> &'static str {
    if std::path::Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    }
}
