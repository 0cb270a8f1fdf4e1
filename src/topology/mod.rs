//! The topology file: model, loading with positions, validation, editing.
//!
//! [`load`] / [`parse`] turn `consort.yaml` into a validated [`Topology`] or a
//! [`LoadError`] listing every problem found, each with file, line, column, the source
//! line and a hint. [`starter()`] writes what `consort init` saves; [`edit`] adds and removes
//! members while keeping every other byte of the file.

mod address;
pub mod balance;
pub mod diagnostic;
pub mod edit;
pub mod model;
mod raw;
pub mod schema;
mod spans;
mod starter;
pub mod validate;

pub use address::check_local_address;
pub use balance::parse_balance;
pub use diagnostic::{Diagnostic, LoadError, Severity};
pub use model::*;
pub use starter::starter;
pub use validate::{check_name, load, parse, Loaded};

#[cfg(test)]
mod tests;
