//! Clique genesis.
