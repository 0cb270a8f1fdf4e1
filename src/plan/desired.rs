//! The provider-independent desired resources of a topology.
