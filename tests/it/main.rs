//! Integration tests: one binary driving real `openclaw` processes over loopback, plus the
//! service-manager suites (launchd simulated behind the command runner).
#![allow(unreachable_pub, missing_debug_implementations)]
mod support;

mod gateway_http;
mod gateway_startup;
mod gateway_ws;
mod launchd;
mod reload;
mod secrets;
mod systemd_e2e;
mod systemd_units;
mod systemd_zdt;
