//! Snapshot and property tests of what users read.
