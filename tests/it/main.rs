//! The one integration-test binary; each module is a group of tests.

mod support;

mod local_geth;
