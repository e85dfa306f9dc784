//! A small client for the local CometBFT node's JSON-RPC
//! (`broadcast_tx_sync`). HTTP/1.0 over a fresh loopback connection per call keeps it
//! free of an HTTP stack; the node is always local.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("CometBFT RPC url {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach CometBFT RPC at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("CometBFT RPC at {addr} did not answer within {CALL_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("CometBFT RPC I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("CometBFT RPC answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("CometBFT RPC answer is not understood: {0}")]
    Decode(String),
    #[error("CometBFT RPC error {code}: {message} {data}")]
    Rpc {
        code: i64,
        message: String,
        data: String,
    },
}

/// CheckTx's verdict as `broadcast_tx_sync` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastResult {
    pub code: u32,
    pub log: String,
    pub hash: String,
}

#[derive(Clone, Debug)]
pub struct RpcClient {
    addr: String,
}

impl RpcClient {
    /// `url` is `http://host:port` (a trailing `/` is allowed).
    pub fn new(url: &str) -> Result<RpcClient, RpcError> {
        let bad = |reason: &str| RpcError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| bad("must start with http://"))?;
        let addr = rest.trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') || !addr.contains(':') {
            return Err(bad("must be http://host:port"));
        }
        Ok(RpcClient {
            addr: addr.to_string(),
        })
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let exchange = async {
            let mut stream =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| RpcError::Connect {
                        addr: self.addr.clone(),
                        source,
                    })?;
            let request = format!(
                "POST / HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                self.addr,
                body.len(),
                body
            );
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            (&mut stream)
                .take(MAX_RESPONSE_BYTES as u64)
                .read_to_end(&mut response)
                .await?;
            Ok::<_, RpcError>(response)
        };
        let response = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| RpcError::Timeout {
                addr: self.addr.clone(),
            })??;
        parse_response(&response)
    }

    pub async fn broadcast_tx_sync(&self, tx: &[u8]) -> Result<BroadcastResult, RpcError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx);
        let result = self
            .call("broadcast_tx_sync", json!({ "tx": encoded }))
            .await?;
        let code = result
            .get("code")
            .and_then(Value::as_u64)
            .ok_or_else(|| RpcError::Decode(format!("no code in {result}")))?;
        Ok(BroadcastResult {
            code: u32::try_from(code).map_err(|_| RpcError::Decode(format!("code {code}")))?,
            log: result
                .get("log")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            hash: result
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

fn parse_response(raw: &[u8]) -> Result<Value, RpcError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| RpcError::Decode("no HTTP header end".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| RpcError::Decode(format!("bad status line in {head:?}")))?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        if status != 200 {
            RpcError::Http {
                status,
                body: String::from_utf8_lossy(body).chars().take(500).collect(),
            }
        } else {
            RpcError::Decode(e.to_string())
        }
    })?;
    if let Some(error) = value.get("error") {
        return Err(RpcError::Rpc {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            data: error
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
    }
    value
        .get("result")
        .cloned()
        .ok_or_else(|| RpcError::Decode(format!("no result in {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(RpcClient::new("http://127.0.0.1:26657").is_ok());
        assert!(RpcClient::new("http://127.0.0.1:26657/").is_ok());
        assert!(RpcClient::new("127.0.0.1:26657").is_err());
        assert!(RpcClient::new("http://host").is_err());
    }

    #[test]
    fn responses_and_errors_parse() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"code\":6,\"log\":\"nonce\",\"hash\":\"AB\"}}";
        let value = parse_response(ok).expect("parses");
        assert_eq!(value["code"], 6);
        let err = b"HTTP/1.0 500 Internal Server Error\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"Internal error\",\"data\":\"tx already exists in cache\"}}";
        match parse_response(err) {
            Err(RpcError::Rpc { data, .. }) => assert!(data.contains("already exists")),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A real loopback server answering like CometBFT does.
    #[tokio::test]
    async fn broadcast_talks_http_to_a_real_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.expect("read");
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"code\":0,\"log\":\"\",\"hash\":\"FF\"}}";
            let response = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(response.as_bytes()).await.expect("write");
            request
        });
        let client = RpcClient::new(&format!("http://{addr}")).expect("client");
        let result = client.broadcast_tx_sync(b"abc").await.expect("broadcast");
        assert_eq!(result.code, 0);
        assert_eq!(result.hash, "FF");
        let request = server.await.expect("server");
        assert!(request.contains("broadcast_tx_sync") && request.contains("YWJj"));
    }
}
