//! Rewinding a validator stuck on a rival Clique head of equal weight, over its IPC socket
//! (`debug_setHead` is served there only): the repair [`crate::consensus::forks::plan`]
//! chooses as [`Repair::Rewind`](crate::consensus::forks::Repair::Rewind).

use crate::rpc::{RpcClient, RpcError};
use serde_json::json;

/// How far back the common ancestor is looked for. A stalled Clique fork is a few blocks
/// deep (each side stalls once its signers have signed `signers/2 + 1` blocks).
pub const MAX_DEPTH: u64 = 256;

/// The highest block number at which `a` and `b` have the same block, looking back at most
/// [`MAX_DEPTH`] blocks from the lower head `from`.
pub fn common_ancestor(a: &RpcClient, b: &RpcClient, from: u64) -> Result<Option<u64>, RpcError> {
    use crate::rpc::BlockId;
    let hash = |c: &RpcClient, n: u64| -> Result<Option<String>, RpcError> {
        Ok(c.block_by_number(BlockId::Number(n))?.map(|b| b.hash))
    };
    let mut n = from;
    loop {
        let (x, y) = (hash(a, n)?, hash(b, n)?);
        if x.is_some() && x == y {
            return Ok(Some(n));
        }
        if n == 0 || from - n >= MAX_DEPTH {
            return Ok(None);
        }
        n -= 1;
    }
}

/// Rewinds `node` to the last block it shares with `winner` (`debug_setHead`); returns that
/// block's number. `head` is the lower of the two heads' numbers. Its sealing stops first
/// (`miner_stop`; the caller restarts it without sealing): a signer rewound below its own
/// block is no longer "recently signed" and may at once seal a new rival of equal weight.
pub fn rewind_to_common_ancestor(
    node: &RpcClient,
    winner: &RpcClient,
    head: u64,
) -> Result<u64, String> {
    let ancestor = common_ancestor(node, winner, head)
        .map_err(|e| format!("cannot compare its chain with the winning one: {e}"))?
        .ok_or_else(|| {
            format!("its chain and the winning one share no block in the last {MAX_DEPTH}")
        })?;
    node.call_raw("miner_stop", json!([]))
        .map_err(|e| format!("miner_stop failed: {e}"))?;
    node.call_raw("debug_setHead", json!([format!("{ancestor:#x}")]))
        .map_err(|e| format!("debug_setHead({ancestor}) failed: {e}"))?;
    Ok(ancestor)
}
