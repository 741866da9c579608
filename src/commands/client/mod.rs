//! Client verbs against a running gateway: `health`, `gateway call|probe|health`, `status`,
//! `logs`, `channels status`, and the `--url` side of `gateway status`.
//!
//! Each verb resolves its target with `ops::target`, talks to the gateway through the
//! [`crate::ops`] client library (rpc session, reach/probe, status gathering, logs
//! follow) and prints its own output here.
pub(crate) mod call;
pub(crate) mod channels;
pub(crate) mod health;
pub(crate) mod logs;
pub(crate) mod probe;
pub(crate) mod status;

pub(crate) use probe::GatewayStatusOptions;
pub(crate) use probe::remote_status;
