//! Integration tests: one binary driving real `openclaw` processes over loopback.
#![allow(unreachable_pub, missing_debug_implementations)]
mod support;

mod gateway_http;
mod gateway_startup;
mod gateway_ws;
mod ops_client;
mod ops_doctor;
mod ops_logs;
mod ops_status;
mod ops_support;
