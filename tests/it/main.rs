//! The integration test binary (one binary for all areas; shared helpers in `support/`).
mod support;
mod systemd_e2e;
mod systemd_units;
