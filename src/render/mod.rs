//! tera templates embedded in the binary.
