//! Human rendering of a plan.
