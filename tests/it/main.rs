//! Integration tests: one binary, one module per area.

mod support;

mod apps;

#[cfg(feature = "azure")]
mod arm_schema;
#[cfg(feature = "azure")]
mod azure_arm;
#[cfg(feature = "azure")]
mod azure_behaviours;
#[cfg(feature = "azure")]
mod azure_cli;
#[cfg(feature = "azure")]
mod azure_health;
#[cfg(feature = "azure")]
mod azure_provider;
#[cfg(feature = "azure")]
mod azure_stop_start;
mod cli;
mod closed_stdout;
#[cfg(feature = "azure")]
mod cloud_init;
mod conveniences;
mod crypto_geth;
mod crypto_vectors;
mod dashboard;
mod doc_shell;
mod docs;
#[cfg(feature = "azure")]
mod fake_arm;
mod faults;
mod forks;
mod graph;
mod intruders;
mod kept;
mod key_restore;
mod layers;
mod least_privilege;
mod local_cli;
mod local_geth;
mod local_provider;
mod membership;
mod operators;
mod ports;
mod readme;
mod safety;
mod scale;
mod topology;
mod truth;
mod upgrade;
