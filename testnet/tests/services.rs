//! What a node serves besides ordering, checked on a real one-validator
//! network: gRPC health and server reflection (what `grpcurl` relies on),
//! Prometheus metrics, and ABCI queries through CometBFT's RPC.

use std::time::Duration;

use prost::Message;
use seqnet_proto::pb;
use seqnet_testnet::{Binaries, InitOptions, Testnet};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_metrics_and_queries_answer() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("seqnet-services-")
        .tempdir()?;
    let opts = InitOptions {
        validators: 1,
        rollups: 2,
        base_port: seqnet_testnet::pick_free_base_port(1)?,
        chain_id: "seqnet-services".into(),
        ..InitOptions::default()
    };
    let mut net = Testnet::init(&dir.path().join("net"), &opts, Binaries::locate()?)?;
    net.start(Duration::from_secs(120)).await?;
    let url = net.grpc_url(0)?;
    let channel = tonic::transport::Endpoint::from_shared(url.clone())?
        .connect()
        .await?;

    // Health: the whole server and RollupService both serve.
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "seqnet.v1.RollupService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status;
        assert_eq!(
            status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }

    // Reflection lists the services, as `grpcurl list` does.
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    let answer = answers
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no reflection answer"))?;
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        anyhow::bail!("unexpected reflection answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["seqnet.v1.RollupService", "grpc.health.v1.Health"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // Metrics: height and per-method gRPC latency are exported.
    seqnet_rollup_client::RollupClient::new(vec![url.clone()])?
        .status()
        .await?;
    let metrics = http_get(net.node(0)?.ports.metrics, "/metrics").await?;
    assert!(metrics.contains("seqnet_block_height"), "{metrics}");
    assert!(metrics.contains("seqnet_grpc_request_seconds"), "{metrics}");
    assert!(metrics.contains("method=\"finalize_block\""), "{metrics}");
    assert!(http_get(net.node(0)?.ports.metrics, "/health")
        .await?
        .contains("ok"));

    // ABCI query through CometBFT: the app's status decodes and names the chain.
    let answer = net
        .rpc(0)?
        .call("abci_query", serde_json::json!({"path": "/status"}))
        .await?;
    let value = answer
        .pointer("/response/value")
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow::anyhow!("no value in {answer}"))?;
    use base64::Engine;
    let status = pb::NodeStatus::decode(
        base64::engine::general_purpose::STANDARD
            .decode(value)?
            .as_slice(),
    )?;
    assert_eq!(status.chain_id, "seqnet-services");
    assert_eq!(status.rollups.len(), 2);
    let unknown = net
        .rpc(0)?
        .call("abci_query", serde_json::json!({"path": "/nothing"}))
        .await?;
    assert!(unknown
        .pointer("/response/log")
        .and_then(|l| l.as_str())
        .unwrap_or_default()
        .contains("unknown path"));
    net.stop();
    Ok(())
}

async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    socket.read_to_string(&mut text).await?;
    Ok(text)
}
