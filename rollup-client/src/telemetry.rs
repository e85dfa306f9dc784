//! Telemetry every seqnet binary sets up the same way: `tracing` logs
//! (filter from the argument, else `RUST_LOG`, else a default; text or JSON
//! on stderr) and a small HTTP listener serving Prometheus text on
//! `/metrics` and `ok` on `/health`.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How log lines are written.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log filter {filter:?} is not valid: {reason}")]
    BadFilter { filter: String, reason: String },
}

/// Installs the global `tracing` subscriber. `filter` wins over `RUST_LOG`,
/// which wins over `default`. Installing twice (tests) keeps the first.
pub fn init_logs(
    filter: Option<&str>,
    default: &str,
    format: LogFormat,
) -> Result<(), TelemetryError> {
    let filter = match filter {
        Some(text) => {
            tracing_subscriber::EnvFilter::try_new(text).map_err(|e| TelemetryError::BadFilter {
                filter: text.to_string(),
                reason: e.to_string(),
            })?
        }
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `try_init` fails only when a subscriber is already installed.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// Renders the Prometheus text exposition of a binary's registry.
pub type RenderMetrics = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Serves `/metrics` (what `render` returns) and `/health` on `listener`
/// until `shutdown` turns true or its sender goes away.
pub async fn serve_metrics(
    listener: TcpListener,
    render: RenderMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let Ok(n) = socket.read(&mut buf).await else {
                return;
            };
            let request = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", render()),
                "/health" => ("200 OK", "text/plain", b"ok\n".to_vec()),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    b"try /metrics or /health\n".to_vec(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        socket
            .write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut response = String::new();
        socket.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn metrics_and_health_are_served_until_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve_metrics(
            listener,
            Arc::new(|| b"seqnet_test_total 3\n".to_vec()),
            shutdown,
        ));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(metrics.ends_with("seqnet_test_total 3\n"), "{metrics}");
        assert!(get(addr, "/health").await.ends_with("ok\n"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        stop.send_replace(true);
        server.await.expect("server stops");
    }

    #[test]
    fn a_bad_filter_is_refused_with_its_text() {
        let error = init_logs(Some("=[bad"), "info", LogFormat::Text).expect_err("bad filter");
        assert!(error.to_string().contains("=[bad"), "{error}");
    }
}
