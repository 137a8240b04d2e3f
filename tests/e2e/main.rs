//! End-to-end tests: the real gateway binary on port 0 in front of mock
//! providers on port 0 that speak the providers' real wire formats.

mod balance;
mod core;
mod durability;
mod edges;
mod errors;
mod failover;
mod fleet;
mod governance;
mod hardening;
mod integrity;
mod local_model;
mod ops;
mod providers;
mod sdk;
mod sdk_translated;
mod streaming;
mod support;
mod translate;
mod usage;
