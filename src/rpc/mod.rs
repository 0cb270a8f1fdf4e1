//! JSON-RPC client for geth over HTTP or geth's IPC socket (blocking; loopback/private
//! endpoints only). consort controls its own nodes over IPC (a unix socket in the node's
//! 0700 directory, so only the operator can use it); HTTP is what applications get on tx
//! nodes, with no `admin`, `miner`, `personal` or `debug` namespace.
//!
//! `reqwest::blocking` runs its own runtime thread, so it must not be used from inside a
//! tokio runtime: the local provider calls it from plain threads.
//!
//! Errors name the URL and the method, never the parameters (a raw transaction or an
//! unlock password must not end up in a message or a log).

use crate::crypto::Address;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;

/// Per-request timeout unless changed with [`RpcClient::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{url}: {method} failed: cannot reach the node ({reason}); is geth running and listening there?")]
    Transport {
        url: String,
        method: String,
        reason: String,
    },
    #[error("{url}: {method} failed: HTTP {status}")]
    Status {
        url: String,
        method: String,
        status: u16,
    },
    #[error("{url}: {method} failed: node answered error {code}: {message}")]
    Node {
        url: String,
        method: String,
        code: i64,
        message: String,
    },
    #[error("{url}: {method}: unexpected answer ({reason})")]
    Decode {
        url: String,
        method: String,
        reason: String,
    },
}

impl RpcError {
    /// True when the node could not be reached at all (not running, port closed).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RpcError::Transport { .. })
    }
}

/// One shared HTTP client: the blocking client owns a runtime thread, so make it once.
fn http() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // Never send loopback RPC (and unlock-capable APIs) through a proxy.
            .no_proxy()
            .build()
            .expect("the HTTP client builds (rustls, no proxy)")
    })
}

/// A block as consort needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub number: u64,
    pub hash: String,
    pub timestamp: u64,
    /// Always zero under Clique (the sealer is in the extra-data signature).
    pub miner: Address,
    /// 0x-hex; under Clique: 32 vanity bytes ‖ (signers at epoch blocks) ‖ 65-byte seal.
    pub extra_data: String,
    /// Chain weight up to this block (geth 1.13 reports it; Clique: in-turn blocks weigh 2).
    pub total_difficulty: Option<u128>,
}

/// `latest`, `earliest`, `pending` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockId {
    Latest,
    Number(u64),
}

impl BlockId {
    fn param(self) -> Value {
        match self {
            BlockId::Latest => json!("latest"),
            BlockId::Number(n) => json!(format!("{n:#x}")),
        }
    }
}

/// One entry of `admin_peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `enode://<128 hex pubkey>@ip:port`.
    pub enode: String,
    /// geth's node id: keccak256 of the public key (64 hex).
    pub id: String,
    pub remote_address: String,
    pub inbound: bool,
    pub is_static: bool,
}

impl Peer {
    /// The 128-hex public key from the enode URL (what `SecretKey::enode_id` gives).
    pub fn pubkey(&self) -> Option<&str> {
        enode_pubkey(&self.enode)
    }
}

/// The 128-hex public key of `enode://<pubkey>@host:port[?...]`.
pub fn enode_pubkey(enode: &str) -> Option<&str> {
    let rest = enode.strip_prefix("enode://")?;
    let key = rest.split('@').next()?;
    (key.len() == 128 && key.bytes().all(|b| b.is_ascii_hexdigit())).then_some(key)
}

/// `admin_nodeInfo`, the parts consort uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub enode: String,
    pub id: String,
    /// `protocols.eth.genesis`: the genesis hash this node runs.
    pub genesis: Option<String>,
    pub listen_addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub transaction_hash: String,
    pub block_number: u64,
    pub block_hash: String,
    /// `true` for status 0x1.
    pub success: bool,
    pub gas_used: u64,
}

/// A pending Clique vote on a node: `authorize` true = add the signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliqueProposal {
    pub address: Address,
    pub authorize: bool,
}

/// A JSON-RPC endpoint: `http://127.0.0.1:<port>` or the path of a geth IPC socket.
#[derive(Debug, Clone)]
pub struct RpcClient {
    /// The URL, or the socket's path (what errors name).
    url: String,
    ipc: bool,
    timeout: Duration,
}

impl RpcClient {
    /// An endpoint: `http://` or `https://` URLs speak HTTP; anything else is taken as the
    /// path of a geth IPC socket.
    pub fn new(endpoint: impl Into<String>) -> RpcClient {
        let url = endpoint.into();
        let ipc = !(url.starts_with("http://") || url.starts_with("https://"));
        RpcClient {
            url,
            ipc,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// geth's IPC socket at `path` (`--ipcpath`).
    pub fn ipc(path: impl AsRef<std::path::Path>) -> RpcClient {
        RpcClient {
            url: path.as_ref().to_string_lossy().into_owned(),
            ipc: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Whether this client talks to an IPC socket.
    pub fn is_ipc(&self) -> bool {
        self.ipc
    }

    /// `http://127.0.0.1:<port>`.
    pub fn local(port: u16) -> RpcClient {
        RpcClient::new(format!("http://127.0.0.1:{port}"))
    }

    pub fn with_timeout(mut self, timeout: Duration) -> RpcClient {
        self.timeout = timeout;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn decode_err(&self, method: &str, reason: impl Into<String>) -> RpcError {
        RpcError::Decode {
            url: self.url.clone(),
            method: method.to_string(),
            reason: reason.into(),
        }
    }

    /// Calls `method`; the raw `result` (may be `null`).
    pub fn call_raw(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let v = if self.ipc {
            self.send_ipc(method, &body)?
        } else {
            self.send_http(method, &body)?
        };
        self.answer(method, v)
    }

    /// The `result` of one JSON-RPC answer, or its `error`.
    fn answer(&self, method: &str, mut v: Value) -> Result<Value, RpcError> {
        if let Some(err) = v.get("error") {
            return Err(RpcError::Node {
                url: self.url.clone(),
                method: method.to_string(),
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_string(),
            });
        }
        match v.get_mut("result") {
            Some(r) => Ok(r.take()),
            None => Err(self.decode_err(method, "no `result` in the answer")),
        }
    }

    /// Several calls as one JSON-RPC batch: one request (over IPC one connection) instead of
    /// one per call. Each call's raw `result` or error, in the order given; the outer error
    /// is the transport's. Answers are matched by id: the JSON-RPC 2.0 spec lets a server
    /// answer a batch in any order (geth keeps it).
    pub fn call_batch(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, RpcError>>, RpcError> {
        let label = calls.iter().map(|(m, _)| *m).collect::<Vec<_>>().join("+");
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({"jsonrpc": "2.0", "id": i, "method": m, "params": p}))
            .collect();
        let body = Value::Array(body);
        let v = if self.ipc {
            self.send_ipc(&label, &body)?
        } else {
            self.send_http(&label, &body)?
        };
        let Value::Array(answers) = v else {
            return Err(self.decode_err(&label, "the answer to a batch is not an array"));
        };
        let mut by_id: Vec<Option<Value>> = vec![None; calls.len()];
        for a in answers {
            if let Some(slot) = a
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|i| by_id.get_mut(i as usize))
            {
                *slot = Some(a);
            }
        }
        Ok(calls
            .iter()
            .zip(by_id)
            .map(|((m, _), a)| match a {
                Some(a) => self.answer(m, a),
                None => Err(self.decode_err(m, "no answer for it in the batch")),
            })
            .collect())
    }

    fn transport_err(&self, method: &str, reason: impl Into<String>) -> RpcError {
        RpcError::Transport {
            url: self.url.clone(),
            method: method.to_string(),
            reason: reason.into(),
        }
    }

    fn send_http(&self, method: &str, body: &Value) -> Result<Value, RpcError> {
        let resp = http()
            .post(&self.url)
            .timeout(self.timeout)
            .json(body)
            .send()
            // Without the URL (we print it ourselves) and never with the body.
            .map_err(|e| self.transport_err(method, root_cause(&e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(RpcError::Status {
                url: self.url.clone(),
                method: method.to_string(),
                status: status.as_u16(),
            });
        }
        resp.json().map_err(|e| {
            self.decode_err(
                method,
                format!("not JSON: {}", root_cause(&e.without_url())),
            )
        })
    }

    /// One request on a fresh connection to geth's IPC socket: geth reads a stream of
    /// JSON values and answers each with one JSON value.
    fn send_ipc(&self, method: &str, body: &Value) -> Result<Value, RpcError> {
        use std::io::Write;
        use std::os::unix::net::UnixStream;
        let mut sock = UnixStream::connect(&self.url).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no socket there".to_string(),
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                _ => e.to_string(),
            };
            self.transport_err(method, why)
        })?;
        let io = |e: std::io::Error| {
            let why = match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("no answer within {:?}", self.timeout)
                }
                _ => e.to_string(),
            };
            self.transport_err(method, why)
        };
        sock.set_read_timeout(Some(self.timeout)).map_err(io)?;
        sock.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
        sock.write_all(&bytes).map_err(io)?;
        let mut answers = serde_json::Deserializer::from_reader(std::io::BufReader::new(&sock))
            .into_iter::<Value>();
        match answers.next() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) if e.is_io() => Err(io(e.into())),
            Some(Err(e)) => Err(self.decode_err(method, format!("not JSON: {e}"))),
            None => Err(self.transport_err(method, "the node closed the connection")),
        }
    }

    /// Calls `method` and decodes `result` as `T`.
    pub fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, RpcError> {
        let v = self.call_raw(method, params)?;
        self.decode(method, v)
    }

    /// `result` of `method` as `T`.
    fn decode<T: DeserializeOwned>(&self, method: &str, v: Value) -> Result<T, RpcError> {
        serde_json::from_value(v).map_err(|e| self.decode_err(method, e.to_string()))
    }

    fn quantity(&self, method: &str, params: Value) -> Result<u64, RpcError> {
        let s: String = self.call(method, params)?;
        parse_quantity(&s)
            .ok_or_else(|| self.decode_err(method, format!("{s:?} is not a hex quantity")))
    }

    fn quantity_u128(&self, method: &str, params: Value) -> Result<u128, RpcError> {
        let s: String = self.call(method, params)?;
        parse_quantity_u128(&s)
            .ok_or_else(|| self.decode_err(method, format!("{s:?} is not a hex quantity")))
    }

    pub fn chain_id(&self) -> Result<u64, RpcError> {
        self.quantity("eth_chainId", json!([]))
    }

    pub fn block_number(&self) -> Result<u64, RpcError> {
        self.quantity("eth_blockNumber", json!([]))
    }

    /// `None` if the node has no such block yet.
    pub fn block_by_number(&self, id: BlockId) -> Result<Option<Block>, RpcError> {
        let (m, params) = Self::block_call(id);
        self.decode_block(self.call_raw(m, params)?)
    }

    /// The `eth_getBlockByNumber` call [`block_by_number`](Self::block_by_number) makes.
    pub fn block_call(id: BlockId) -> (&'static str, Value) {
        ("eth_getBlockByNumber", json!([id.param(), false]))
    }

    /// An `eth_getBlockByNumber` result (without transactions).
    pub fn decode_block(&self, v: Value) -> Result<Option<Block>, RpcError> {
        const M: &str = "eth_getBlockByNumber";
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            number: String,
            hash: String,
            timestamp: String,
            miner: String,
            extra_data: String,
            total_difficulty: Option<String>,
        }
        let raw: Option<Raw> = self.decode(M, v)?;
        let Some(r) = raw else { return Ok(None) };
        let bad = |what: &str, v: &str| self.decode_err(M, format!("{what} {v:?} is not valid"));
        Ok(Some(Block {
            number: parse_quantity(&r.number).ok_or_else(|| bad("number", &r.number))?,
            timestamp: parse_quantity(&r.timestamp)
                .ok_or_else(|| bad("timestamp", &r.timestamp))?,
            miner: parse_address(&r.miner).ok_or_else(|| bad("miner", &r.miner))?,
            hash: r.hash,
            extra_data: r.extra_data,
            total_difficulty: r.total_difficulty.as_deref().and_then(parse_quantity_u128),
        }))
    }

    /// The genesis block's hash.
    pub fn genesis_hash(&self) -> Result<String, RpcError> {
        self.block_by_number(BlockId::Number(0))?
            .map(|b| b.hash)
            .ok_or_else(|| self.decode_err("eth_getBlockByNumber", "the node has no block 0"))
    }

    pub fn net_peer_count(&self) -> Result<u64, RpcError> {
        self.quantity("net_peerCount", json!([]))
    }

    pub fn admin_peers(&self) -> Result<Vec<Peer>, RpcError> {
        self.decode_peers(self.call_raw("admin_peers", json!([]))?)
    }

    /// An `admin_peers` result.
    pub fn decode_peers(&self, v: Value) -> Result<Vec<Peer>, RpcError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RawNet {
            #[serde(default)]
            remote_address: String,
            #[serde(default)]
            inbound: bool,
            #[serde(default, rename = "static")]
            is_static: bool,
        }
        #[derive(Deserialize)]
        struct Raw {
            enode: String,
            id: String,
            network: RawNet,
        }
        let raw: Vec<Raw> = self.decode("admin_peers", v)?;
        Ok(raw
            .into_iter()
            .map(|r| Peer {
                enode: r.enode,
                id: r.id,
                remote_address: r.network.remote_address,
                inbound: r.network.inbound,
                is_static: r.network.is_static,
            })
            .collect())
    }

    pub fn admin_node_info(&self) -> Result<NodeInfo, RpcError> {
        let v = self.call_raw("admin_nodeInfo", json!([]))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(NodeInfo {
            enode: s("enode").ok_or_else(|| self.decode_err("admin_nodeInfo", "no enode"))?,
            id: s("id").unwrap_or_default(),
            listen_addr: s("listenAddr").unwrap_or_default(),
            genesis: v
                .pointer("/protocols/eth/genesis")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Adds a (static) peer; geth dials it and keeps redialling.
    pub fn admin_add_peer(&self, enode: &str) -> Result<bool, RpcError> {
        self.call("admin_addPeer", json!([enode]))
    }

    pub fn admin_remove_peer(&self, enode: &str) -> Result<bool, RpcError> {
        self.call("admin_removePeer", json!([enode]))
    }

    /// Trusted peers may connect even when the node is at MaxPeers.
    pub fn admin_add_trusted_peer(&self, enode: &str) -> Result<bool, RpcError> {
        self.call("admin_addTrustedPeer", json!([enode]))
    }

    pub fn admin_remove_trusted_peer(&self, enode: &str) -> Result<bool, RpcError> {
        self.call("admin_removeTrustedPeer", json!([enode]))
    }

    pub fn clique_get_signers(&self) -> Result<Vec<Address>, RpcError> {
        self.decode_signers(self.call_raw("clique_getSigners", json!([null]))?)
    }

    /// A `clique_getSigners` result.
    pub fn decode_signers(&self, v: Value) -> Result<Vec<Address>, RpcError> {
        const M: &str = "clique_getSigners";
        let raw: Vec<String> = self.decode(M, v)?;
        raw.iter()
            .map(|s| {
                parse_address(s)
                    .ok_or_else(|| self.decode_err(M, format!("{s:?} is not an address")))
            })
            .collect()
    }

    /// Votes to add (`authorize`) or drop `address` as a signer; returns once recorded.
    pub fn clique_propose(&self, address: &Address, authorize: bool) -> Result<(), RpcError> {
        let _: Value = self.call("clique_propose", json!([hex_address(address), authorize]))?;
        Ok(())
    }

    pub fn clique_discard(&self, address: &Address) -> Result<(), RpcError> {
        let _: Value = self.call("clique_discard", json!([hex_address(address)]))?;
        Ok(())
    }

    pub fn clique_proposals(&self) -> Result<Vec<CliqueProposal>, RpcError> {
        self.decode_proposals(self.call_raw("clique_proposals", json!([]))?)
    }

    /// A `clique_proposals` result.
    pub fn decode_proposals(&self, v: Value) -> Result<Vec<CliqueProposal>, RpcError> {
        const M: &str = "clique_proposals";
        let raw: std::collections::BTreeMap<String, bool> = self.decode(M, v)?;
        raw.into_iter()
            .map(|(a, authorize)| {
                Ok(CliqueProposal {
                    address: parse_address(&a)
                        .ok_or_else(|| self.decode_err(M, format!("{a:?} is not an address")))?,
                    authorize,
                })
            })
            .collect()
    }

    pub fn eth_get_balance(&self, address: &Address, block: BlockId) -> Result<u128, RpcError> {
        self.quantity_u128(
            "eth_getBalance",
            json!([hex_address(address), block.param()]),
        )
    }

    pub fn eth_get_transaction_count(
        &self,
        address: &Address,
        block: BlockId,
    ) -> Result<u64, RpcError> {
        self.quantity(
            "eth_getTransactionCount",
            json!([hex_address(address), block.param()]),
        )
    }

    /// Nonce including transactions still in the pool.
    pub fn eth_get_pending_nonce(&self, address: &Address) -> Result<u64, RpcError> {
        self.quantity(
            "eth_getTransactionCount",
            json!([hex_address(address), "pending"]),
        )
    }

    pub fn eth_gas_price(&self) -> Result<u128, RpcError> {
        self.quantity_u128("eth_gasPrice", json!([]))
    }

    /// Signs `data` (EIP-191 personal message) with an account the node holds unlocked;
    /// fails with "authentication needed" while it is locked. Nothing is broadcast.
    pub fn eth_sign(&self, address: &Address, data_hex: &str) -> Result<String, RpcError> {
        self.call("eth_sign", json!([hex_address(address), data_hex]))
    }

    /// Sends a signed transaction (`0x…` raw bytes); returns its hash.
    pub fn eth_send_raw_transaction(&self, raw_hex: &str) -> Result<String, RpcError> {
        self.call("eth_sendRawTransaction", json!([raw_hex]))
    }

    /// `None` while the transaction is not mined.
    pub fn eth_get_transaction_receipt(&self, tx_hash: &str) -> Result<Option<Receipt>, RpcError> {
        const M: &str = "eth_getTransactionReceipt";
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            transaction_hash: String,
            block_number: String,
            block_hash: String,
            status: Option<String>,
            gas_used: String,
        }
        let raw: Option<Raw> = match self.call(M, json!([tx_hash])) {
            Ok(r) => r,
            // geth 1.13 answers this instead of null while its transaction index is still
            // being built (a node that just started): not known to this node yet.
            Err(RpcError::Node { message, .. })
                if message.contains("transaction indexing is in progress") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let Some(r) = raw else { return Ok(None) };
        let bad = |what: &str, v: &str| self.decode_err(M, format!("{what} {v:?} is not valid"));
        Ok(Some(Receipt {
            block_number: parse_quantity(&r.block_number)
                .ok_or_else(|| bad("blockNumber", &r.block_number))?,
            gas_used: parse_quantity(&r.gas_used).ok_or_else(|| bad("gasUsed", &r.gas_used))?,
            success: r.status.as_deref() == Some("0x1"),
            transaction_hash: r.transaction_hash,
            block_hash: r.block_hash,
        }))
    }
}

/// The innermost error message (reqwest wraps hyper wraps io).
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    let mut msg = cur.to_string();
    while let Some(next) = cur.source() {
        cur = next;
        msg = cur.to_string();
    }
    msg
}

/// `0x`-prefixed hex quantity → u64.
pub fn parse_quantity(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

pub fn parse_quantity_u128(s: &str) -> Option<u128> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() {
        return None;
    }
    u128::from_str_radix(h, 16).ok()
}

/// `0x` + 40 hex (any case; RPC answers carry no checksum to verify) → Address.
pub fn parse_address(s: &str) -> Option<Address> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    let mut out = [0u8; 20];
    hex::decode_to_slice(h, &mut out).ok()?;
    Some(Address(out))
}

/// `0x` + lowercase hex: what geth accepts without checksum questions.
pub fn hex_address(a: &Address) -> String {
    format!("0x{}", a.to_lower_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_addresses_parse() {
        assert_eq!(parse_quantity("0x0"), Some(0));
        assert_eq!(parse_quantity("0x1b4"), Some(436));
        assert_eq!(parse_quantity("1b4"), None);
        assert_eq!(parse_quantity("0x"), None);
        assert_eq!(
            parse_quantity_u128("0x52b7d2dcc80cd2e4000000"),
            Some(100_000_000 * 1_000_000_000_000_000_000u128)
        );
        let a = parse_address("0x00000000000000000000000000000000000000Ff").unwrap();
        assert_eq!(a.0[19], 0xff);
        assert_eq!(
            hex_address(&a),
            "0x00000000000000000000000000000000000000ff"
        );
        assert!(parse_address("0x1234").is_none());
    }

    /// A batch over IPC: one connection, one request; answers matched by id whatever their
    /// order, a call's error kept to that call.
    #[test]
    fn a_batch_is_one_request_and_its_answers_are_matched_by_id() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("geth.ipc");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reqs = serde_json::Deserializer::from_reader(&conn).into_iter::<Value>();
            let Value::Array(calls) = reqs.next().unwrap().unwrap() else {
                panic!("not a batch")
            };
            // Answered backwards; the second call fails.
            let answers: Vec<Value> = calls
                .iter()
                .rev()
                .map(|c| match c["id"].as_u64().unwrap() {
                    1 => json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no such method"}}),
                    i => json!({"jsonrpc": "2.0", "id": i, "result": c["method"]}),
                })
                .collect();
            conn.write_all(&serde_json::to_vec(&answers).unwrap())
                .unwrap();
            // A second connection would be a second request: there must be none.
            listener.set_nonblocking(true).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            assert!(listener.accept().is_err(), "a second connection");
            calls.len()
        });
        let rpc = RpcClient::ipc(&path).with_timeout(Duration::from_secs(5));
        let got = rpc
            .call_batch(&[
                ("eth_blockNumber", json!([])),
                ("nope", json!([])),
                ("admin_peers", json!([])),
            ])
            .unwrap();
        assert_eq!(server.join().unwrap(), 3);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap(), &json!("eth_blockNumber"));
        match &got[1] {
            Err(RpcError::Node { method, code, .. }) => {
                assert_eq!((method.as_str(), *code), ("nope", -32601))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got[2].as_ref().unwrap(), &json!("admin_peers"));
    }

    /// A JSON-RPC endpoint on 127.0.0.1 answering every call with `answer`.
    fn fake_node(answer: Value) -> RpcClient {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/",
                    axum::routing::post(move || {
                        let a = answer.clone();
                        async move { axum::Json(a) }
                    }),
                );
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap();
            });
        });
        RpcClient::local(port)
    }

    #[test]
    fn receipt_of_a_transaction_not_indexed_yet_is_not_mined_yet() {
        // What geth 1.13.15 answers on a node that just started.
        let rpc = fake_node(json!({"jsonrpc": "2.0", "id": 1, "error": {
            "code": -32000, "message": "transaction indexing is in progress"}}));
        assert_eq!(rpc.eth_get_transaction_receipt("0x12").unwrap(), None);
        // Any other error is still an error.
        let rpc = fake_node(json!({"jsonrpc": "2.0", "id": 1, "error": {
            "code": -32000, "message": "something else"}}));
        let e = rpc.eth_get_transaction_receipt("0x12").unwrap_err();
        assert!(e.to_string().contains("something else"), "{e}");
    }

    #[test]
    fn enode_pubkey_is_extracted() {
        let k = "a".repeat(128);
        assert_eq!(
            enode_pubkey(&format!("enode://{k}@127.0.0.1:30303?discport=0")),
            Some(k.as_str())
        );
        assert_eq!(enode_pubkey("enode://abc@127.0.0.1:1"), None);
    }

    #[test]
    fn unreachable_node_error_names_url_and_method_not_params() {
        // A port we just bound and released: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = RpcClient::local(port).with_timeout(Duration::from_secs(2));
        let err = c
            .eth_send_raw_transaction("0xdeadbeefsecretish")
            .unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("http://127.0.0.1:{port}")), "{msg}");
        assert!(msg.contains("eth_sendRawTransaction"), "{msg}");
        assert!(!msg.contains("deadbeef"), "params leaked: {msg}");
    }
}
