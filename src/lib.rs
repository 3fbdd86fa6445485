//! assetd: hosts assets the way Twilio Serverless Assets does, on a box you own.
//!
//! Content-addressed asset versions, immutable builds and per-environment deployments live in
//! one redb file ([`store`]); the rules they obey are pure functions ([`model`]); assets are
//! served over HTTP with `X-Twilio-Signature` checks for protected ones ([`http`], [`sign`]);
//! the command line drives it all ([`cli`]); [`toolkit_proxy`] lets Twilio's Serverless Toolkit
//! deploy to it unmodified.

pub mod builder;
pub mod cli;
pub mod client;
pub mod compress;
pub mod http;
pub mod metrics;
pub mod model;
pub mod project;
#[cfg(test)]
mod proptests;
pub mod sign;
pub mod store;
pub mod toolkit_proxy;
pub mod ui;
