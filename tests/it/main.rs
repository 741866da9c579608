//! The integration test binary (one binary for all areas; shared helpers in `support/`).
#![allow(unreachable_pub)]
mod support;
mod systemd_e2e;
mod systemd_units;
