//! What the cluster crate's tests share: a runtime and a fresh cluster on
//! the NATS server at 127.0.0.1:4222.
#![allow(dead_code)] // each test file uses its own part

use weiquan_cluster::Cluster;

/// The NATS server the tests use.
pub const URL: &str = "nats://127.0.0.1:4222";

/// A multi-threaded runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A cluster of `partitions` under a name no earlier run used, R1.
pub async fn fresh_cluster(what: &str, partitions: u32) -> Cluster {
    let client = weiquan_cluster::connect(URL).await.expect("connects");
    Cluster::set_up(client, &weiquan_testkit::unique(&format!("t-{what}")), partitions, 1)
        .await
        .expect("set up")
}
