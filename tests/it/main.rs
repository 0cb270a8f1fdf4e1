//! The one integration-test binary: each module is one area.

#[cfg(feature = "azure")]
mod azure_arm;
#[cfg(feature = "azure")]
mod fake_arm;
