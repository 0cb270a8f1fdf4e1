//! consort: deploy private Ethereum consortium networks (geth, Clique PoA) as
//! infrastructure-as-code. See DESIGN.md in the shared folder for the pipeline.

pub mod chain;
pub mod cli;
pub mod consensus;
pub mod crypto;
pub mod dashboard;
pub mod events;
pub mod graph;
pub mod join;
pub mod ops;
pub mod parallel;
pub mod plan;
pub mod provider;
pub mod render;
pub mod rpc;
pub mod state;
pub mod topology;
