//! What `broker_server::start` refuses before it opens a listener, for a `Config` built
//! in code (files, `--set` and the environment are checked when they are loaded).

use crate::common::test_config;

#[tokio::test]
async fn a_cluster_node_without_nats_does_not_start_alone() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = test_config();
    config.cluster.backend = broker_server::cluster::config::ClusterBackend::Nats;
    config.cluster.node = Some("n1".into());
    config.cluster.nats.urls = vec![format!("nats://127.0.0.1:{port}")];
    let err = broker_server::start(config)
        .await
        .expect_err("a broker meant for a cluster must not run as a single node");
    let text = format!("{err:#}");
    assert!(text.contains("cannot join the cluster"), "{text}");
    assert!(
        text.contains(&port.to_string()),
        "names the server it tried: {text}"
    );

    let mut config = test_config();
    config.cluster.backend = broker_server::cluster::config::ClusterBackend::Nats;
    let err = broker_server::start(config)
        .await
        .expect_err("no node name");
    assert!(format!("{err:#}").contains("cluster.node"), "{err:#}");
}
