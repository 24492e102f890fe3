//! What `broker_server::start` refuses before it opens a listener, for a `Config` built
//! in code (files, `--set` and the environment are checked when they are loaded).

use crate::common::test_config;

#[tokio::test]
async fn a_cluster_backend_is_refused_until_it_is_built() {
    let mut config = test_config();
    config.cluster.backend = broker_server::cluster::config::ClusterBackend::Nats;
    config.cluster.node = Some("n1".into());
    let err = broker_server::start(config)
        .await
        .expect_err("a broker meant for a cluster must not run as a single node");
    assert!(
        err.to_string().contains("cluster backend not built yet"),
        "{err}"
    );
}
