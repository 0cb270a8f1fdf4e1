//! The topology file: model, loading with positions, validation, editing.

pub mod model;
pub use model::*;
