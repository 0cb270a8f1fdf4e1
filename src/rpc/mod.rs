//! JSON-RPC client for geth.
