//! Chain artefacts: genesis, geth config, the geth binary.
pub mod genesis;
pub mod geth;
