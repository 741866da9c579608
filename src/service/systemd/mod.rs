//! systemd: units, socket activation, sd_notify, and the user-manager driver.
pub mod activation;
pub mod journal;
pub mod manager;
pub mod notify;
pub mod unit;
pub mod watchdog;
