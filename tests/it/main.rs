//! Integration tests: one binary, one module per area.

mod support;

mod cli;
mod cloud_init;
mod crypto_geth;
mod local_cli;
mod local_geth;
mod local_provider;
mod membership;
mod readme;
mod topology;
