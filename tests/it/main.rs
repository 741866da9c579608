//! Integration tests: one binary driving real `openclaw` processes over loopback, plus the
//! service-manager suites (launchd simulated behind the command runner).
#![allow(unreachable_pub, missing_debug_implementations)]
mod support;

mod agent_common;
mod agent_http;
mod agent_ws;
mod architecture;
mod gateway_http;
mod gateway_session;
mod gateway_startup;
mod gateway_ws;
mod launchd;
mod ops_client;
mod ops_doctor;
mod ops_logs;
mod ops_status;
mod ops_support;
mod ops_systemd;
mod packaging;
mod reliability_degraded;
mod reliability_faults;
mod reliability_fuzz_corpus;
mod reliability_load;
mod reload;
mod secrets;
mod security_admission;
mod security_auth;
mod security_perms;
mod security_secrets;
mod systemd_e2e;
mod systemd_manager;
mod systemd_units;
mod systemd_zdt;
mod ui_methods_boot;
mod ui_methods_config;
mod ui_methods_sessions;
