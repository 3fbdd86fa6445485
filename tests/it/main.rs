//! The one integration test binary: starts the real `assetd` on port 0.

mod harness;

mod cli;
mod crash;
mod serving;
