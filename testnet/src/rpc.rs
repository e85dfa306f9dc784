//! A small CometBFT JSON-RPC client (HTTP POST over loopback): `status`,
//! `net_info`, `blockchain` headers and `broadcast_tx_sync`, which is all a
//! testnet needs to watch and poke its nodes.

use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::error::{Result, TestnetError};

/// What `/status` reports about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    pub moniker: String,
    pub height: u64,
    /// Hex (upper case, as CometBFT prints it).
    pub app_hash: String,
    pub catching_up: bool,
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

/// CheckTx verdict from `broadcast_tx_sync`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BroadcastResult {
    pub code: u32,
    pub log: String,
    pub codespace: String,
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

impl CometRpc {
    /// `addr` is `host:port` (for example `127.0.0.1:26657`).
    pub fn new(addr: impl Into<String>) -> CometRpc {
        CometRpc {
            addr: addr.into(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> CometRpc {
        self.timeout = timeout;
        self
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn error(&self, method: &str, reason: impl std::fmt::Display) -> TestnetError {
        TestnetError::Rpc {
            addr: self.addr.clone(),
            method: method.to_string(),
            reason: reason.to_string(),
        }
    }

    async fn post(&self, body: Vec<u8>) -> std::result::Result<(u16, Bytes), String> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::post("/")
            .header(hyper::header::HOST, self.addr.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("read body: {e}"))?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        driver.abort();
        result
    }

    /// Calls `method` with `params` and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body = serde_json::to_vec(&json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": method,
            "params": params,
        }))
        .map_err(|e| self.error(method, e))?;
        let (status, bytes) = tokio::time::timeout(self.timeout, self.post(body))
            .await
            .map_err(|_| self.error(method, format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| self.error(method, e))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(
                method,
                format!(
                    "HTTP {status}, body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            )
        })?;
        if let Some(err) = value.get("error") {
            let message = err.get("message").and_then(Value::as_str).unwrap_or("");
            let data = err.get("data").and_then(Value::as_str).unwrap_or("");
            return Err(self.error(method, format!("{message} {data}").trim().to_string()));
        }
        value
            .get("result")
            .cloned()
            .ok_or_else(|| self.error(method, format!("HTTP {status}, no result in {value}")))
    }

    pub async fn status(&self) -> Result<NodeStatus> {
        let r = self.call("status", json!({})).await?;
        let field = |pointer: &str| r.pointer(pointer).cloned().unwrap_or(Value::Null);
        Ok(NodeStatus {
            node_id: field("/node_info/id").as_str().unwrap_or("").to_string(),
            moniker: field("/node_info/moniker")
                .as_str()
                .unwrap_or("")
                .to_string(),
            height: as_u64(&field("/sync_info/latest_block_height"))
                .ok_or_else(|| self.error("status", "no sync_info.latest_block_height"))?,
            app_hash: field("/sync_info/latest_app_hash")
                .as_str()
                .unwrap_or("")
                .to_string(),
            catching_up: field("/sync_info/catching_up").as_bool().unwrap_or(false),
        })
    }

    /// Number of connected peers.
    pub async fn peers(&self) -> Result<u64> {
        let r = self.call("net_info", json!({})).await?;
        r.get("n_peers")
            .and_then(as_u64)
            .ok_or_else(|| self.error("net_info", "no n_peers"))
    }

    /// Headers of heights `min..=max` (CometBFT returns at most 20 per call;
    /// this pages through), ascending.
    pub async fn headers(&self, min: u64, max: u64) -> Result<Vec<HeaderInfo>> {
        let mut out = Vec::new();
        let mut hi = max;
        while hi >= min && hi > 0 {
            let lo = hi.saturating_sub(19).max(min);
            let r = self
                .call(
                    "blockchain",
                    json!({"minHeight": lo.to_string(), "maxHeight": hi.to_string()}),
                )
                .await?;
            let metas = r
                .get("block_metas")
                .and_then(Value::as_array)
                .ok_or_else(|| self.error("blockchain", "no block_metas"))?;
            for meta in metas {
                let header = meta.get("header").cloned().unwrap_or(Value::Null);
                out.push(HeaderInfo {
                    height: header.get("height").and_then(as_u64).unwrap_or(0),
                    block_hash: meta
                        .pointer("/block_id/hash")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    app_hash: header
                        .get("app_hash")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    num_txs: meta.get("num_txs").and_then(as_u64).unwrap_or(0),
                });
            }
            if lo == min {
                break;
            }
            hi = lo - 1;
        }
        out.sort_by_key(|h| h.height);
        Ok(out)
    }

    /// The transactions of the block at `height`, in block order.
    pub async fn block_txs(&self, height: u64) -> Result<Vec<Vec<u8>>> {
        let r = self
            .call("block", json!({ "height": height.to_string() }))
            .await?;
        let txs = match r.pointer("/block/data/txs") {
            Some(Value::Array(txs)) => txs.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(self.error("block", format!("data.txs is {other}"))),
        };
        txs.iter()
            .map(|tx| {
                let text = tx.as_str().unwrap_or("");
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| self.error("block", format!("tx is not base64: {e}")))
            })
            .collect()
    }

    /// Submits raw transaction bytes and returns CheckTx's verdict.
    pub async fn broadcast_tx_sync(&self, tx: &[u8]) -> Result<BroadcastResult> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tx);
        let r = self
            .call("broadcast_tx_sync", json!({ "tx": encoded }))
            .await?;
        Ok(BroadcastResult {
            code: r
                .get("code")
                .and_then(as_u64)
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
            log: r
                .get("log")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            codespace: r
                .get("codespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            hash: r
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }
}
