//! The one CometBFT JSON-RPC client every seqnet binary uses: `status`,
//! `net_info`, `blockchain` headers, `block` transactions, `abci_query` and
//! `broadcast_tx_sync`. HTTP/1.0 over a fresh connection per call keeps it
//! free of an HTTP stack; CometBFT's RPC answers and closes.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Default time one call may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read (a block of CometBFT's default 21 MiB limit would
/// not fit; this client reads blocks of this network's 4 MiB limit).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// `blockchain` returns at most this many headers per call.
const HEADERS_PER_CALL: u64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("CometBFT RPC address {addr:?} is not valid: {reason}")]
    BadAddress { addr: String, reason: &'static str },
    #[error("CometBFT RPC at {addr}, {method}: cannot connect: {source}")]
    Connect {
        addr: String,
        method: String,
        source: std::io::Error,
    },
    #[error("CometBFT RPC at {addr}, {method}: no answer within {timeout:?}")]
    Timeout {
        addr: String,
        method: String,
        timeout: Duration,
    },
    #[error("CometBFT RPC at {addr}, {method}: {detail}")]
    Io {
        addr: String,
        method: String,
        detail: String,
    },
    #[error("CometBFT RPC at {addr}, {method}: HTTP {status}: {body}")]
    Http {
        addr: String,
        method: String,
        status: u16,
        body: String,
    },
    #[error("CometBFT RPC at {addr}, {method}: answer not understood: {detail}")]
    Decode {
        addr: String,
        method: String,
        detail: String,
    },
    #[error("CometBFT RPC at {addr}, {method}: error {code}: {message} {data}")]
    Rpc {
        addr: String,
        method: String,
        code: i64,
        message: String,
        data: String,
    },
    #[error("CometBFT RPC at {addr}, abci_query {path}: code {code}: {log}")]
    Query {
        addr: String,
        path: String,
        code: u32,
        log: String,
    },
}

/// What `/status` reports about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    pub moniker: String,
    pub height: u64,
    /// Hex (upper case, as CometBFT prints it).
    pub app_hash: String,
    pub catching_up: bool,
    /// The lowest height it holds a block of (above 1 after state sync or
    /// pruning).
    pub earliest_height: u64,
}

/// One block header's identity, from `/blockchain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    pub height: u64,
    pub block_hash: String,
    /// App hash after the previous block (CometBFT's header semantics).
    pub app_hash: String,
    pub num_txs: u64,
}

/// CheckTx's verdict as `broadcast_tx_sync` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastResult {
    pub code: u32,
    pub log: String,
    pub codespace: String,
    /// Hex (upper case).
    pub hash: String,
}

/// JSON-RPC client for one node.
#[derive(Clone, Debug)]
pub struct CometRpc {
    addr: String,
    timeout: Duration,
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl CometRpc {
    /// A client for `addr`, a `host:port` this program made itself (for
    /// addresses from users or config, use [`CometRpc::parse`]).
    pub fn new(addr: impl Into<String>) -> CometRpc {
        CometRpc {
            addr: addr.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client for `addr` as users write it: `host:port`, optionally behind
    /// `http://` or `tcp://` and with a trailing `/` (CometBFT's `laddr`).
    pub fn parse(addr: &str) -> Result<CometRpc, RpcError> {
        let rest = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("tcp://"))
            .unwrap_or(addr)
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || !rest.contains(':') {
            return Err(RpcError::BadAddress {
                addr: addr.to_string(),
                reason: "expected host:port or http://host:port",
            });
        }
        Ok(CometRpc::new(rest))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> CometRpc {
        self.timeout = timeout;
        self
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn decode_error(&self, method: &str, detail: impl std::fmt::Display) -> RpcError {
        RpcError::Decode {
            addr: self.addr.clone(),
            method: method.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Calls `method` with `params` and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let exchange = async {
            let mut stream =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| RpcError::Connect {
                        addr: self.addr.clone(),
                        method: method.to_string(),
                        source,
                    })?;
            let request = format!(
                "POST / HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                self.addr,
                body.len(),
                body
            );
            let io = |e: std::io::Error| RpcError::Io {
                addr: self.addr.clone(),
                method: method.to_string(),
                detail: e.to_string(),
            };
            stream.write_all(request.as_bytes()).await.map_err(io)?;
            let mut response = Vec::new();
            (&mut stream)
                .take(MAX_RESPONSE_BYTES)
                .read_to_end(&mut response)
                .await
                .map_err(io)?;
            Ok::<_, RpcError>(response)
        };
        let response = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| RpcError::Timeout {
                addr: self.addr.clone(),
                method: method.to_string(),
                timeout: self.timeout,
            })??;
        self.parse_response(method, &response)
    }

    fn parse_response(&self, method: &str, raw: &[u8]) -> Result<Value, RpcError> {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.decode_error(method, "no end of HTTP header"))?;
        let (head, body) = raw.split_at(split);
        let body = body.get(4..).unwrap_or_default();
        let head = String::from_utf8_lossy(head);
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.decode_error(method, format!("bad status line in {head:?}")))?;
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            if status != 200 {
                RpcError::Http {
                    addr: self.addr.clone(),
                    method: method.to_string(),
                    status,
                    body: String::from_utf8_lossy(body).chars().take(500).collect(),
                }
            } else {
                self.decode_error(method, e)
            }
        })?;
        if let Some(error) = value.get("error") {
            return Err(RpcError::Rpc {
                addr: self.addr.clone(),
                method: method.to_string(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: text(error, "/message"),
                data: text(error, "/data"),
            });
        }
        value
            .get("result")
            .cloned()
            .ok_or_else(|| self.decode_error(method, format!("no result in {value}")))
    }

    pub async fn status(&self) -> Result<NodeStatus, RpcError> {
        let r = self.call("status", json!({})).await?;
        Ok(NodeStatus {
            node_id: text(&r, "/node_info/id"),
            moniker: text(&r, "/node_info/moniker"),
            height: r
                .pointer("/sync_info/latest_block_height")
                .and_then(as_u64)
                .ok_or_else(|| self.decode_error("status", "no sync_info.latest_block_height"))?,
            app_hash: text(&r, "/sync_info/latest_app_hash"),
            catching_up: r
                .pointer("/sync_info/catching_up")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            earliest_height: r
                .pointer("/sync_info/earliest_block_height")
                .and_then(as_u64)
                .unwrap_or(1)
                .max(1),
        })
    }

    /// Number of connected peers.
    pub async fn peers(&self) -> Result<u64, RpcError> {
        let r = self.call("net_info", json!({})).await?;
        r.get("n_peers")
            .and_then(as_u64)
            .ok_or_else(|| self.decode_error("net_info", "no n_peers"))
    }

    /// Headers of heights `min..=max`, ascending (pages through
    /// `blockchain`, which returns at most 20 per call).
    pub async fn headers(&self, min: u64, max: u64) -> Result<Vec<HeaderInfo>, RpcError> {
        let mut out = Vec::new();
        let mut hi = max;
        while hi >= min && hi > 0 {
            let lo = hi.saturating_sub(HEADERS_PER_CALL - 1).max(min);
            let r = self
                .call(
                    "blockchain",
                    json!({"minHeight": lo.to_string(), "maxHeight": hi.to_string()}),
                )
                .await?;
            let metas = r
                .get("block_metas")
                .and_then(Value::as_array)
                .ok_or_else(|| self.decode_error("blockchain", "no block_metas"))?;
            for meta in metas {
                out.push(HeaderInfo {
                    height: meta.pointer("/header/height").and_then(as_u64).unwrap_or(0),
                    block_hash: text(meta, "/block_id/hash"),
                    app_hash: text(meta, "/header/app_hash"),
                    num_txs: meta.get("num_txs").and_then(as_u64).unwrap_or(0),
                });
            }
            if lo == min {
                break;
            }
            hi = lo.saturating_sub(1);
        }
        out.sort_by_key(|h| h.height);
        Ok(out)
    }

    /// The transactions of the block at `height`, in block order.
    pub async fn block_txs(&self, height: u64) -> Result<Vec<Vec<u8>>, RpcError> {
        let r = self
            .call("block", json!({ "height": height.to_string() }))
            .await?;
        let txs = match r.pointer("/block/data/txs") {
            Some(Value::Array(txs)) => txs.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(self.decode_error("block", format!("data.txs is {other}"))),
        };
        txs.iter()
            .map(|tx| {
                base64::engine::general_purpose::STANDARD
                    .decode(tx.as_str().unwrap_or_default())
                    .map_err(|e| self.decode_error("block", format!("tx is not base64: {e}")))
            })
            .collect()
    }

    /// `abci_query` of the app at the latest height: the raw value, or the
    /// app's refusal as [`RpcError::Query`].
    pub async fn abci_query(&self, path: &str) -> Result<Vec<u8>, RpcError> {
        let r = self
            .call(
                "abci_query",
                json!({ "path": path, "data": "", "prove": false }),
            )
            .await?;
        let code = r.pointer("/response/code").and_then(as_u64).unwrap_or(0);
        if code != 0 {
            return Err(RpcError::Query {
                addr: self.addr.clone(),
                path: path.to_string(),
                code: u32::try_from(code).unwrap_or(u32::MAX),
                log: text(&r, "/response/log"),
            });
        }
        base64::engine::general_purpose::STANDARD
            .decode(text(&r, "/response/value"))
            .map_err(|e| self.decode_error("abci_query", format!("value is not base64: {e}")))
    }

    /// Submits raw transaction bytes and returns CheckTx's verdict.
    pub async fn broadcast_tx_sync(&self, tx: &[u8]) -> Result<BroadcastResult, RpcError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx);
        let r = self
            .call("broadcast_tx_sync", json!({ "tx": encoded }))
            .await?;
        let code = r
            .get("code")
            .and_then(as_u64)
            .ok_or_else(|| self.decode_error("broadcast_tx_sync", format!("no code in {r}")))?;
        Ok(BroadcastResult {
            code: u32::try_from(code)
                .map_err(|_| self.decode_error("broadcast_tx_sync", format!("code {code}")))?,
            log: text(&r, "/log"),
            codespace: text(&r, "/codespace"),
            hash: text(&r, "/hash"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn addresses_are_checked() {
        for good in [
            "127.0.0.1:26657",
            "http://127.0.0.1:26657",
            "http://127.0.0.1:26657/",
            "tcp://127.0.0.1:26657",
        ] {
            assert_eq!(CometRpc::parse(good).expect(good).addr(), "127.0.0.1:26657");
        }
        for bad in ["http://host", "", "http://h:1/path"] {
            assert!(CometRpc::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_and_errors_parse() {
        let rpc = CometRpc::new("127.0.0.1:1");
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"code\":6,\"log\":\"nonce\",\"hash\":\"AB\"}}";
        assert_eq!(rpc.parse_response("m", ok).expect("parses")["code"], 6);
        let err = b"HTTP/1.0 500 Internal Server Error\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"Internal error\",\"data\":\"tx already exists in cache\"}}";
        match rpc.parse_response("m", err) {
            Err(RpcError::Rpc { data, .. }) => assert!(data.contains("already exists")),
            other => panic!("unexpected {other:?}"),
        }
        let html = b"HTTP/1.0 502 Bad Gateway\r\n\r\n<html>";
        assert!(matches!(
            rpc.parse_response("m", html),
            Err(RpcError::Http { status: 502, .. })
        ));
        assert!(rpc.parse_response("m", b"garbage").is_err());
    }

    /// A real loopback server answering each call like CometBFT does.
    async fn server(answers: Vec<String>) -> (CometRpc, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = tokio::spawn(async move {
            let mut requests = Vec::new();
            for body in answers {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.expect("read");
                requests.push(String::from_utf8_lossy(&buf[..n]).to_string());
                let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{body}}}");
                let response = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.expect("write");
            }
            requests
        });
        (CometRpc::new(addr.to_string()), handle)
    }

    #[tokio::test]
    async fn calls_talk_http_to_a_real_socket() {
        let (rpc, handle) = server(vec![
            r#"{"code":0,"log":"","codespace":"","hash":"FF"}"#.into(),
            r#"{"response":{"code":0,"value":"AQI="}}"#.into(),
            r#"{"response":{"code":1,"log":"bad query: unknown path"}}"#.into(),
            r#"{"node_info":{"id":"ab","moniker":"n0"},"sync_info":{"latest_block_height":"12","latest_app_hash":"CD","catching_up":false}}"#.into(),
            r#"{"block":{"data":{"txs":["YWJj"]}}}"#.into(),
        ])
        .await;
        let result = rpc.broadcast_tx_sync(b"abc").await.expect("broadcast");
        assert_eq!((result.code, result.hash.as_str()), (0, "FF"));
        assert_eq!(rpc.abci_query("/x").await.expect("query"), vec![1, 2]);
        match rpc.abci_query("/y").await {
            Err(RpcError::Query { code: 1, log, .. }) => assert!(log.contains("unknown path")),
            other => panic!("unexpected {other:?}"),
        }
        let status = rpc.status().await.expect("status");
        assert_eq!((status.height, status.moniker.as_str()), (12, "n0"));
        assert_eq!(
            rpc.block_txs(12).await.expect("block"),
            vec![b"abc".to_vec()]
        );
        let requests = handle.await.expect("server");
        assert!(requests[0].contains("broadcast_tx_sync") && requests[0].contains("YWJj"));
        assert!(requests[1].contains("abci_query") && requests[1].contains("/x"));
    }

    #[tokio::test]
    async fn a_silent_node_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let rpc = CometRpc::new(addr.to_string()).with_timeout(Duration::from_millis(200));
        let held = tokio::spawn(async move { listener.accept().await });
        assert!(matches!(rpc.status().await, Err(RpcError::Timeout { .. })));
        drop(held);
    }
}
