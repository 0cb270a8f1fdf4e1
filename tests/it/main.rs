//! Integration tests: one binary, one module per area.

mod crypto_geth;
mod readme;
