//! Minimal RLP encoding (what transaction signing needs). Bodies by the crypto work.
