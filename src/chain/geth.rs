//! Finding, checking and installing geth 1.13.x.
