//! Integration tests: one binary driving real `openclaw` processes over loopback.
#![allow(unreachable_pub, missing_debug_implementations)]
mod support;

mod agent_common;
mod agent_http;
mod agent_ws;
mod gateway_http;
mod gateway_startup;
mod gateway_ws;
