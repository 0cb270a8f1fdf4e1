//! Integration tests: one binary, one module per area.

mod support;

mod local_geth;
mod local_provider;
mod readme;
