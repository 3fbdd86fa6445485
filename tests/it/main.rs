//! The one integration test binary: starts the real `assetd` on port 0.

mod harness;

mod acme;
mod api_accounts;
mod api_resources;
mod api_sync;
mod cli;
mod console;
mod crash;
mod deploy;
mod disk;
mod engine;
mod https;
mod monitoring;
mod newcomer;
mod pebble;
mod readme;
mod security;
mod service_unit;
mod serving;
mod share;
mod toolkit;
